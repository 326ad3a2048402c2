/**
 * Sequence-level pseudo-labels on the GPU (lib/distill/pseudo_labels.ts): the time to continue a batch of
 * prompts with the bundled teacher, `pseudoLabelBatch` (steps recorded once and replayed) against the
 * same steps with every step's commands built afresh (host positions, `GpuSampler.sample`; what
 * `pseudoLabelBatch` did before). Both end with one readback of the tokens. The two paths use different
 * decoding kernels (device positions fuse more), so sampled text may part at a near-tie: the JSON
 * reports how many rows agree token for token. JSON on stdout.
 *
 *   deno run -A bench/pseudo_labels.ts [--batch 16] [--prompt 32] [--seq 288] [--reps 3] [--breakdown]
 *
 * `--breakdown` adds where one replayed step's GPU time goes, kernel by kernel (bench/timing.ts
 * `kernelBreakdown`; the step resets its position counter first, so every replay is the same step).
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { GpuSampler } from "../lib/decode/gpu_sampler.ts";
import { pseudoLabelBatch, pseudoLabelStep } from "../lib/distill/pseudo_labels.ts";
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { DEFAULT_MODEL_DIR } from "../lib/models/default_model.ts";
import { LlamaModel } from "../lib/models/llama.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { copyBuffer } from "../lib/gpu/commands.ts";
import { kernelBreakdown, kernelBreakdownTiming } from "./timing.ts";

const f = parseFlags("pseudo_labels", Deno.args, {
  batch: "number",
  prompt: "number",
  seq: "number",
  reps: "number",
  breakdown: "boolean",
});
const B = (f.batch as number | undefined) ?? 16;
const P = (f.prompt as number | undefined) ?? 32;
const T = (f.seq as number | undefined) ?? 288;
const reps = (f.reps as number | undefined) ?? 3;
const ctx = await initGpu();
using teacher = await LlamaModel.load(DEFAULT_MODEL_DIR);
const V = teacher.config.vocabSize;
const G = T - P + 1;
const prompts = Int32Array.from({ length: B * P }, (_, i) => (7919 * i + 13) % V);
const o = { temperature: 1, seed: 5 };

/** The continuation with every step's commands built afresh. */
async function afresh(): Promise<Int32Array[]> {
  const caches = teacher.createCache(B, P + G);
  using sampler = new GpuSampler(B, V, G);
  try {
    for (let step = 0; step < G; step++) {
      using prompt = step === 0 ? Tensor.from(prompts, [B, P], "i32") : null;
      const { logits } = teacher.forward(prompt ?? sampler.next, { cache: caches, lastOnly: true });
      sampler.sample(logits, step, o);
      logits.dispose();
    }
    return await sampler.read(0, G - 1);
  } finally {
    for (const c of caches) c[Symbol.dispose]();
  }
}

/** The continuation through pseudoLabelBatch (its generated part of x, row by row). */
async function replayed(): Promise<Int32Array[]> {
  const { x, y } = pseudoLabelBatch(teacher, prompts, B, T, { promptLen: P, ...o });
  const xs = (await x.toArray()) as Int32Array;
  x.dispose();
  y.dispose();
  return Array.from({ length: B }, (_, b) => xs.slice(b * T + P, (b + 1) * T));
}

const time = async (fn: () => Promise<Int32Array[]>) => {
  const ms: number[] = [];
  let out: Int32Array[] = [];
  for (let r = 0; r <= reps; r++) { // the first run compiles the pipelines: not counted
    const t0 = performance.now();
    out = await fn();
    if (r > 0) ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { ms: ms[Math.floor(ms.length / 2)], out };
};
const a = await time(afresh);
const r = await time(replayed);
/** One replayed step's kernels: prefill, then (position reset, forward, sampleNext) captured. */
async function breakdown() {
  const caches = teacher.createCache(B, P + G);
  using sampler = new GpuSampler(B, V, G);
  using position = Tensor.from([P], [1], "i32");
  using start = Tensor.from([P], [1], "i32");
  try {
    using prompt = Tensor.from(prompts, [B, P], "i32");
    teacher.forward(prompt, { cache: caches, lastOnly: true }).logits.dispose();
    return await kernelBreakdown(() => {
      copyBuffer(start.buffer, 0, position.buffer, 0, 4);
      pseudoLabelStep(teacher, caches, sampler, position, P, o);
    }, kernelBreakdownTiming);
  } finally {
    for (const c of caches) c[Symbol.dispose]();
  }
}

const sameRows = a.out.filter((row, b) => row.every((t, i) => t === r.out[b][i])).length;
const result = {
  date: new Date().toISOString(),
  adapter: adapterName(ctx),
  model: DEFAULT_MODEL_DIR,
  batch: B,
  prompt: P,
  seq: T,
  steps: G,
  afresh_ms: a.ms,
  replayed_ms: r.ms,
  afresh_ms_per_step: a.ms / G,
  replayed_ms_per_step: r.ms / G,
  speedup: a.ms / r.ms,
  rows_same_tokens: sameRows,
  step_kernels: f.breakdown ? await breakdown() : undefined,
};
console.log(JSON.stringify(result, null, 2));
