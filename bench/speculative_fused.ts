/**
 * Speculative decoding at the bundled size with fused drafts (issue #7, lib/decode/fused_draft.ts):
 * tokens/s of a distilled 50% hybrid generating greedily alone and with small Llama drafts whose whole
 * round is one dispatch, at K = 1..6, f32 and f16 drafts, against the same drafts unfused.
 *
 *   deno run -A bench/speculative_fused.ts OUT.json [--quick] [--tokens N] [--draft-steps N] [--new N]
 *
 * `--max-k` (default 6) caps K (a check of the harness on the CPU adapter); `--modes` (default
 * fused,fused-f16,unfused) picks the draft modes measured.
 *
 * Everything is made in the run: the target is distilled from the bundled teacher (end-to-end KD,
 * `--tokens`, as bench/speculative.ts), and each small draft is trained from random weights by KD
 * from the target (KL to its next-token distribution on Brown windows, 16 × 256, `--draft-steps`
 * steps); `--draft-data` (default brown,gen) trains each on Brown windows, on the target's own text
 * (`-gen` drafts: `--pool-batches` × 16 continuations of Brown prompts, half greedy and half sampled,
 * bench/students.ts `targetContinuations`), or both. The teacher's first two layers (early exit) are
 * one more draft. `--save-models DIR` writes the target, the drafts and the prompts with the target's
 * tokens for bench/pytorch_speculative.py (PyTorch decoding the same weights). Every speculative output is
 * checked to equal the target's own greedy output token for token, on 8 prompts from Brown's validation
 * text (512 new tokens each by default; `--prompts N`, `--new N`); tokens/s is over all of them.
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { FusedDraft } from "../lib/decode/fused_draft.ts";
import { encodePrompt, generate } from "../lib/decode/generate.ts";
import { speculativeGenerate } from "../lib/decode/speculative.ts";
import { brownIdsForModel } from "../lib/distill/data.ts";
import { saveStudent } from "../lib/distill/student.ts";
import { distillTask } from "../lib/distill/tasks.ts";
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { loadTokenizer } from "../lib/io/tokenizer.ts";
import { DEFAULT_MODEL_DIR } from "../lib/models/default_model.ts";
import { LlamaModel } from "../lib/models/llama.ts";
import { train } from "../lib/train/loop.ts";
import {
  distilledStudent,
  draftConfig,
  earlyExit,
  saveDraft,
  targetContinuations,
  TINY_DRAFTS,
} from "./students.ts";
import { QUICK, timeSustained } from "./timing.ts";
import { Tensor } from "../lib/tensor/tensor.ts";

const [outPath, ...rest] = Deno.args;
if (!outPath) {
  throw new Error("usage: speculative_fused.ts OUT.json [--quick] [--tokens N] [--draft-steps N]");
}
const f = parseFlags("speculative_fused", rest, {
  tokens: "number",
  "draft-steps": "number",
  new: "number",
  "max-k": "number",
  drafts: "string",
  prompts: "number",
  modes: "string",
  "draft-data": "string",
  "pool-batches": "number",
  "save-models": "string",
  quick: "boolean",
});
const modeNames = String(f.modes ?? "fused,fused-f16,unfused").split(",");
const draftData = String(f["draft-data"] ?? "brown,gen").split(",");
const saveDir = f["save-models"] as string | undefined;
for (
  const [flag, given, known] of [
    ["--modes", modeNames, ["fused", "fused-f16", "unfused"]],
    ["--draft-data", draftData, ["brown", "gen"]],
  ] as const
) {
  const bad = given.filter((x) => !(known as readonly string[]).includes(x));
  if (bad.length) throw new Error(`${flag}: unknown ${bad.join(", ")} (known: ${known.join(", ")})`);
}
const maxK = (f["max-k"] as number) ?? 6;
// --drafts a,b: only these drafts (tiny-1x128, tiny-2x128, early-exit-2); --prompts N (default 8).
const only = f.drafts ? String(f.drafts).split(",") : null;
const quick = f.quick === true;
const tokens = (f.tokens as number) ?? (quick ? 2 ** 16 : 2 ** 19);
const draftSteps = (f["draft-steps"] as number) ?? (quick ? 150 : 1500);
const N = (f.new as number) ?? 512;
const ctx = await initGpu();
const tmp = await Deno.makeTempDir();
const t0 = performance.now();
const log = (l: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(1)} s] ${l}`);

const hybrid = await distilledStudent(`${tmp}/hybrid-50`, [1, 3, 5], {
  tokens,
  evalWindows: quick ? 64 : undefined,
  log,
});
await earlyExit(DEFAULT_MODEL_DIR, `${tmp}/early-2`, 2);
const tok = await loadTokenizer(DEFAULT_MODEL_DIR);
using target = await LlamaModel.load(hybrid.dir);
using early = await LlamaModel.load(`${tmp}/early-2`);
const brown = await brownIdsForModel(DEFAULT_MODEL_DIR);
const ids = brown.train;

const drafts: { name: string; model: LlamaModel; train_s?: number; final_kl?: number }[] = [];
// The target's own text (the `-gen` drafts' data): continuations of Brown prompts, half greedy (the
// contexts greedy decoding meets) and half sampled at temperature 1 (more varied ones).
const wanted = TINY_DRAFTS.flatMap((s) =>
  draftData.map((data) => ({ shape: s, data, name: data === "gen" ? `${s.name}-gen` : s.name }))
).filter((d) => !only || only.includes(d.name));
let pool: Int32Array | null = null;
let pool_s = 0;
if (wanted.some((d) => d.data === "gen")) {
  const t = performance.now();
  pool = await targetContinuations(target, ids, {
    batches: (f["pool-batches"] as number) ?? (quick ? 2 : 64),
    seqLen: quick ? 32 : 256, // 32: a check of the harness (each step is slow on the CPU adapter)
    promptLen: 8,
    temperatures: [0, 1],
    seed: 1,
  });
  pool_s = (performance.now() - t) / 1000;
  log(`the target's text: ${pool.length} tokens in ${pool_s.toFixed(1)} s`);
}
// The small drafts, each trained by KD from the target.
for (const { shape: s, data, name } of wanted) {
  const model = LlamaModel.random(draftConfig(target.config, s), 0, 0.02);
  const task = distillTask(target, model, data === "gen" ? pool! : ids, {
    batch: 16,
    seqLen: 256,
    klWeight: 1,
    ceWeight: 0,
  });
  const t = performance.now();
  const run = await train(task, {
    steps: draftSteps,
    lr: { peak: 3e-3, warmup: Math.min(100, draftSteps / 10), min: 3e-4 },
    adamw: { betas: [0.9, 0.95], weightDecay: 0.1, maxGradNorm: 1 },
    logEvery: 50,
  });
  const train_s = (performance.now() - t) / 1000;
  log(`${name}: ${draftSteps} KD steps in ${train_s.toFixed(1)} s, last KL ${run.lastLoss.toFixed(3)}`);
  drafts.push({ name, model, train_s, final_kl: run.lastLoss });
}
if (!only || only.includes("early-exit-2")) drafts.push({ name: "early-exit-2", model: early });

// Prompts: the first 8 tokens of validation windows 2,048 tokens apart (text none of the models trained
// on), so that the acceptance is not that of one continuation (a small model's greedy text can loop).
const prompts = Array.from(
  { length: (f.prompts as number) ?? (quick ? 3 : 8) },
  (_, i) => tok.decode(brown.validation.subarray(1 + 2048 * i, 9 + 2048 * i)).trim(),
);
const greedy = { temperature: 0, maxTokens: N, stopAtEos: false };
const warm = { ...greedy, maxTokens: 32 };
for (const m of [target, ...drafts.map((d) => d.model)]) await generate(m, tok, prompts[0], warm);
for (const d of drafts) {
  for (const fusedDraft of [false, true, "half"] as const) {
    await speculativeGenerate(target, d.model, tok, prompts[0], { ...warm, lookahead: 3, fusedDraft });
  }
}

/** Every prompt once; tokens/s over all of them (their tokens ÷ their timed seconds), best of `reps`. */
async function overPrompts<T extends { tokens: number[]; tokensPerSecond: number }>(
  fn: (prompt: string) => Promise<T>,
  reps: number,
): Promise<{ tokensPerSecond: number; results: T[] }> {
  let top: { tokensPerSecond: number; results: T[] } | null = null;
  for (let i = 0; i < reps; i++) {
    const results: T[] = [];
    for (const prompt of prompts) results.push(await fn(prompt));
    const tokens = results.reduce((n, r) => n + r.tokens.length, 0);
    const seconds = results.reduce((t, r) => t + r.tokens.length / r.tokensPerSecond, 0);
    if (!top || tokens / seconds > top.tokensPerSecond) top = { tokensPerSecond: tokens / seconds, results };
  }
  return top!;
}
/** Distinct 4-grams ÷ 4-grams of a continuation (1: no repeats; a loop is far below). */
const distinct4 = (t: number[]) => {
  const grams = new Set<string>();
  for (let i = 0; i + 4 <= t.length; i++) grams.add(t.slice(i, i + 4).join(","));
  return t.length >= 4 ? grams.size / (t.length - 3) : 1;
};
const reps = quick ? 1 : 2;
const plain = await overPrompts((pr) => generate(target, tok, pr, greedy), reps);
log(
  `plain ${plain.tokensPerSecond.toFixed(0)} tokens/s over ${prompts.length} prompts; distinct 4-grams ` +
    plain.results.map((r) => distinct4(r.tokens).toFixed(2)).join(" "),
);
if (saveDir) {
  // PyTorch's inputs (bench/pytorch_speculative.py): the same weights, prompts and expected tokens.
  await saveStudent(target, `${saveDir}/target`, hybrid.dir);
  for (const d of drafts) {
    if (d.model === early) await saveStudent(early, `${saveDir}/drafts/${d.name}`, `${tmp}/early-2`);
    else await saveDraft(d.model, `${saveDir}/drafts/${d.name}`);
  }
  await Deno.writeTextFile(
    `${saveDir}/prompts.json`,
    JSON.stringify({
      prompt_ids: prompts.map((p) => encodePrompt(target, tok, p)),
      toolkit_tokens: plain.results.map((r) => r.tokens),
      new_tokens: N,
    }),
  );
}
const rows: Record<string, unknown>[] = [];
const profiles: Record<string, unknown> = {};
const save = () =>
  Deno.writeTextFile(
    outPath,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        adapter: adapterName(ctx),
        new_tokens: N,
        distill_tokens: tokens,
        draft_kd_steps: draftSteps,
        target_text_tokens: pool?.length ?? 0,
        target_text_s: pool_s,
        target_ppl: hybrid.ppl,
        prompts,
        target_plain_tokens_per_s: plain.tokensPerSecond,
        target_distinct_4grams: plain.results.map((r) => distinct4(r.tokens)),
        target_text_0: plain.results[0].text,
        drafts: drafts.map((d) => ({
          name: d.name,
          config: d.model.config,
          train_s: d.train_s,
          final_kl: d.final_kl,
        })),
        rows,
        drafts_alone: profiles,
      },
      null,
      1,
    ),
  );
for (const d of drafts) {
  // The draft alone: plain greedy decoding (its unfused step, wall time) and its fused round's GPU time
  // at K = 1 and 3 with 64 and 256 positions cached (timed under sustained load).
  const alone = await overPrompts((pr) => generate(d.model, tok, pr, greedy), 1);
  const kernel: Record<string, number> = {};
  for (const half of [false, true]) {
    for (const pos of [64, 256]) {
      using fd = await FusedDraft.create(d.model, pos + 8, { half });
      using pre = Tensor.from(brown.validation.subarray(0, pos - 1), [1, pos - 1], "i32");
      fd.prefill(pre);
      using next = Tensor.from([1, 2], [1, 2], "i32");
      using state = Tensor.from([pos, 0, 0, 0, 0], [5], "i32");
      for (const K of [1, 3]) {
        using toks = Tensor.zeros([1, K + 1], "i32");
        const t = await timeSustained(() => fd.round(toks, next, state, K), { ...QUICK, warmMs: 200 });
        kernel[`${half ? "f16" : "f32"}_pos${pos}_K${K}_us`] = 1000 * t.ms;
      }
    }
  }
  log(`${d.name} alone ${alone.tokensPerSecond.toFixed(0)} tokens/s; fused round ${JSON.stringify(kernel)}`);
  profiles[`${d.name}/alone`] = { tokens_per_s: alone.tokensPerSecond, fused_round_us: kernel };
  using packed = await FusedDraft.create(d.model, 8);
  using packedHalf = await FusedDraft.create(d.model, 8, { half: true });
  const modes = ([
    ["fused", true, [1, 2, 3, 4, 5, 6]],
    ["fused-f16", "half", [1, 2, 3, 4, 5, 6]],
    ["unfused", false, [1, 2, 3, 4, 5, 6]],
  ] as const).filter(([m]) => modeNames.includes(m));
  for (const [mode, fusedDraft, Ks] of modes) {
    for (const K of Ks.filter((k) => k <= maxK)) {
      const r = await overPrompts(
        (pr) => speculativeGenerate(target, d.model, tok, pr, { ...greedy, lookahead: K, fusedDraft }),
        reps,
      );
      r.results.forEach((x, i) => {
        const want = plain.results[i].tokens;
        if (x.tokens.length !== want.length || x.tokens.some((t, j) => t !== want[j])) {
          throw new Error(`${d.name} ${mode} K=${K}: prompt ${i}'s output differs from greedy decoding`);
        }
      });
      const rounds = r.results.reduce((n, x) => n + x.rounds.length, 0);
      const accepted = r.results.reduce((n, x) => n + x.meanAccepted * x.rounds.length, 0);
      const row = {
        draft: d.name,
        mode,
        K,
        tokens_per_s: r.tokensPerSecond,
        speedup: r.tokensPerSecond / plain.tokensPerSecond,
        acceptance_rate: accepted / (rounds * K),
        mean_accepted: accepted / rounds,
        acceptance_by_prompt: r.results.map((x) => x.acceptanceRate),
        ms_per_round: r.results.reduce((t, x) => t + x.msPerRound, 0) / r.results.length,
        draft_step_bytes: mode === "unfused" ? undefined : (mode === "fused" ? packed : packedHalf).stepBytes,
      };
      rows.push(row);
      log(
        `${d.name} ${mode} K=${K}: ${r.tokensPerSecond.toFixed(0)} tokens/s (${row.speedup.toFixed(2)}×), ` +
          `acceptance ${row.acceptance_rate.toFixed(2)}, ${row.ms_per_round.toFixed(3)} ms a round`,
      );
    }
    await save();
  }
  await save();
}
for (const d of drafts) if (d.model !== early) d.model[Symbol.dispose]();
log("done");
