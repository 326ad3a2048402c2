/**
 * The fused draft kernel's time per draft step (kernels/fused_draft.wgsl), on random-weight Llama drafts
 * of a few sizes: one round at K = 1 and at K = 6 after a prefill of `--pos` tokens, timed under
 * sustained load (bench/timing.ts); a step is (t₆ − t₁) / 5. With `--parts`, the same with the
 * attention blocks, the head's products or the MLP blocks left out (timing-only `SKIP` bits).
 *
 *   deno run -A bench/fused_draft_step.ts OUT.json [--pos N] [--parts] [--quick]
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { FusedDraft } from "../lib/decode/fused_draft.ts";
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { parseLlamaConfig, readJsonFile } from "../lib/io/config.ts";
import { DEFAULT_MODEL_DIR } from "../lib/models/default_model.ts";
import { LlamaModel } from "../lib/models/llama.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { FULL, QUICK, timeSustained } from "./timing.ts";
import { draftConfig, type DraftShape, TINY_DRAFTS } from "./students.ts";

const [outPath, ...rest] = Deno.args;
if (!outPath) throw new Error("usage: fused_draft_step.ts OUT.json [--pos N] [--parts] [--quick]");
const f = parseFlags("fused_draft_step", rest, { pos: "number", parts: "boolean", quick: "boolean" });
const pos = (f.pos as number) ?? 300;
const timing = f.quick ? QUICK : { ...FULL, warmMs: 300 };
const ctx = await initGpu();
const base = parseLlamaConfig(await readJsonFile(`${DEFAULT_MODEL_DIR}/config.json`), "config.json");
const shapes: DraftShape[] = [
  ...TINY_DRAFTS,
  { name: "1x256", layers: 1, hidden: 256, heads: 8, kvHeads: 4, mlp: 688 },
  { name: "6x256 (the bundled teacher's shape)", layers: 6, hidden: 256, heads: 8, kvHeads: 4, mlp: 688 },
];
const variants = f.parts
  ? [["whole", 0], ["no attention", 1], ["no head products", 2], ["no MLP", 4]] as const
  : [["whole", 0]] as const;
const rows: Record<string, unknown>[] = [];
for (const s of shapes) {
  const config = draftConfig(base, s);
  using model = LlamaModel.random(config, 0, 0.02);
  for (const half of [false, true]) {
    for (const [variant, skip] of variants) {
      using draft = await FusedDraft.create(model, pos + 8, { half, skipForTiming: skip });
      using ids = Tensor.from(Array.from({ length: pos - 1 }, (_, i) => (i * 37) % config.vocabSize), [
        1,
        pos - 1,
      ], "i32");
      draft.prefill(ids);
      using next = Tensor.from([1, 2], [1, 2], "i32");
      using state = Tensor.from([pos, 0, 0, 0, 0], [5], "i32");
      const us: Record<number, number> = {};
      for (const K of [1, 6]) {
        using tokens = Tensor.zeros([1, K + 1], "i32");
        us[K] = 1000 * (await timeSustained(() => draft.round(tokens, next, state, K), timing)).ms;
      }
      const row = {
        shape: s.name,
        f16: half,
        variant,
        step_bytes: draft.stepBytes,
        round_us_K1: us[1],
        round_us_K6: us[6],
        step_us: (us[6] - us[1]) / 5,
        step_gb_per_s: draft.stepBytes / ((us[6] - us[1]) / 5) / 1e3,
      };
      rows.push(row);
      console.error(
        `${s.name} ${half ? "f16" : "f32"} ${variant}: K=1 ${us[1].toFixed(1)} µs, K=6 ${
          us[6].toFixed(1)
        } µs, ` +
          `step ${row.step_us.toFixed(1)} µs (${row.step_gb_per_s.toFixed(0)} GB/s of matrices)`,
      );
    }
  }
}
await Deno.writeTextFile(
  outPath,
  JSON.stringify({ date: new Date().toISOString(), adapter: adapterName(ctx), pos, rows }, null, 1),
);
