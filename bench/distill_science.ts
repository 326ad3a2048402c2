/**
 * The distillation experiments of docs/results.md, run on the GPU in one process:
 *
 * 1. End-to-end KD (`--recipe kd`) of the bundled teacher into students keeping 50%, 25%, 12.5% and
 *    0% attention, each initialised from attention and at random, under one token budget.
 * 2. MOHAWK on the pure-Mamba (0% attention) student with all three stages and with each stage left
 *    out, under the same budget (the budget of a left-out stage goes to the others, in proportion).
 *
 *   deno run -A bench/distill_science.ts OUTDIR [--tokens N] [--batch B] [--seq T] [--seconds S]
 *     [--eval-windows N] [--only NAME] [--set stepwise]
 *
 * `--set stepwise` runs MambaInLlama's stepwise recipe at 50% and 0% attention instead (docs/results.md §3).
 *
 * Writes OUTDIR/results.json (one entry per run: settings, teacher and student perplexity, per-stage
 * results, seconds, tokens/s) after every run, so a run cut short keeps what finished; runs that would
 * not fit in `--seconds` are skipped and listed. Each run's metrics.jsonl is kept as
 * OUTDIR/<name>.metrics.jsonl.
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { attentionLayersByShare } from "../lib/distill/plan.ts";
import { runDistillation } from "../lib/distill/run.ts";
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { DEFAULT_MODEL_DIR } from "../lib/models/default_model.ts";

const [outDir, ...rest] = Deno.args;
if (!outDir) {
  throw new Error("usage: distill_science.ts OUTDIR [--tokens N] [--batch B] [--seq T] [--seconds S]");
}
const f = parseFlags("distill_science", rest, {
  tokens: "number",
  batch: "number",
  seq: "number",
  seconds: "number",
  "eval-windows": "number",
  only: "string",
  set: "string",
});
const tokens = (f.tokens as number) ?? 2 ** 20;
const batch = (f.batch as number) ?? 16;
const seqLen = (f.seq as number) ?? 256;
const seconds = (f.seconds as number) ?? 420;
const evalWindows = (f["eval-windows"] as number) ?? 327;
const ctx = await initGpu();
await Deno.mkdir(outDir, { recursive: true });

interface Run {
  name: string;
  recipe: "kd" | "mohawk" | "stepwise";
  share: number;
  init: "attention" | "random";
  mohawkStages?: number[];
}
const runs: Run[] = [];
for (const share of [0.5, 0.25, 0.125, 0]) {
  for (const init of ["attention", "random"] as const) {
    runs.push({ name: `kd-${share * 100}pct-${init}`, recipe: "kd", share, init });
  }
}
for (const stages of [[1, 2, 3], [2, 3], [1, 3], [1, 2]]) {
  runs.push({
    name: `mohawk-0pct-stages${stages.join("")}`,
    recipe: "mohawk",
    share: 0,
    init: "attention",
    mohawkStages: stages,
  });
}

for (const share of [0.5, 0]) {
  runs.push({ name: `stepwise-${share * 100}pct-attention`, recipe: "stepwise", share, init: "attention" });
}
const selected = f.set === "stepwise"
  ? runs.filter((r) => r.recipe === "stepwise")
  : runs.filter((r) => r.recipe !== "stepwise" && (!f.only || r.name === f.only));

const started = performance.now();
const results: Record<string, unknown>[] = [];
const skipped: string[] = [];
let perRun = 0; // seconds of the slowest run so far
const save = () =>
  Deno.writeTextFile(
    `${outDir}/results.json`,
    JSON.stringify(
      { date: new Date().toISOString(), adapter: adapterName(ctx), tokens, batch, seqLen, results, skipped },
      null,
      2,
    ),
  );
for (const run of selected) {
  const elapsed = (performance.now() - started) / 1000;
  if (elapsed + perRun * 1.2 > seconds) {
    skipped.push(run.name);
    continue;
  }
  const t0 = performance.now();
  const dir = await Deno.makeTempDir();
  const r = await runDistillation({
    teacherDir: DEFAULT_MODEL_DIR,
    outDir: dir,
    recipe: run.recipe,
    attentionLayers: attentionLayersByShare(6, run.share),
    tokens,
    init: run.init,
    mohawkStages: run.mohawkStages,
    batch,
    seqLen,
    evalWindows,
    report: false,
    log: (l) => console.error(`[${run.name}] ${l}`),
  });
  const s = (performance.now() - t0) / 1000;
  perRun = Math.max(perRun, s);
  const trained = r.stages.reduce((a, st) => a + st.seconds, 0);
  results.push({
    ...run,
    attentionLayers: attentionLayersByShare(6, run.share),
    teacherPpl: r.teacherPpl,
    studentPpl: r.studentPpl,
    stages: r.stages,
    seconds: s,
    tokensPerSecond: r.stages.reduce((a, st) => a + st.tokens, 0) / trained,
  });
  await Deno.copyFile(`${dir}/metrics.jsonl`, `${outDir}/${run.name}.metrics.jsonl`);
  await Deno.remove(dir, { recursive: true });
  await save();
  console.error(
    `${run.name}: student ppl ${r.studentPpl.toFixed(2)} (teacher ${r.teacherPpl.toFixed(2)}), ${
      s.toFixed(0)
    } s`,
  );
}
await save();
