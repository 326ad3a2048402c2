/**
 * Training-step benchmarks (issue #8): GPU time per step, tokens/s and the peak bytes of live tensors of
 *
 * - `llama_train`: a Llama forward + backward (mean next-token CE) + AdamW update (every parameter);
 * - `distill`: the full distillation step of MambaInLlama's `train_hybrid.py`: the teacher's forward
 *   without gradients, the 50% hybrid student's forward + backward, CE + 0.1·KL (KL summed over
 *   positions ÷ batch, "batchmean"), AdamW with gradient clipping at 1 — the converted layers' Mamba-2
 *   mixers train (`model.layers.*.mamba.*`, MambaInLlama's stepwise setting), or with `train: "all"`
 *   every student parameter;
 *
 * for (a) brown-llama-6m (teacher → hybrid with attention at layers 1, 3, 5, converted from attention)
 * at 32 × 256 (performance.md's row) and at sequence lengths 256 … 4096 with 16384 tokens per step,
 * and (b) a model with Llama-3.2-1B's shapes and random weights (16 layers, d 2048, 32 heads, 8 KV
 * heads, head dim 64, intermediate 8192, vocabulary 128256, rope θ 500000 with llama3 scaling, tied
 * embeddings as Llama-3.2-1B), student = the same conversion with attention at the odd layers. The
 * distillation step computes both LM heads and the loss in chunks of rows (`lmHeadLoss`,
 * lib/autograd/lm_loss.ts; the 1B model's logits, 16384 × 128256 f32 = 8.4 GB, exceed one buffer);
 * rows named `_head-full` keep whole logits instead, for comparison.
 *
 * Each step is one call recording all of its GPU work, no readback; `time` measures GPU time per call
 * (bench/timing.ts). The 1B steps take seconds each, so they are timed over one call after one
 * untimed call (`ONE_SHOT`). Standalone:
 *
 *   deno run -A bench/steps.ts [--quick] [--warm-ms N] [--samples N] [--json FILE] [--only 6m|1b]
 *     [--breakdown]
 *
 * `--quick` (≈ 60 s on an H200): brown-llama-6m at 32 × 256 and T = 1024, 4096; the 1B distillation
 * step at 8 × 2048 and its training step at 2 × 2048. `--breakdown` adds where the 32 × 256 step's
 * time goes (teacher forward, student loss + backward, split-K off, a weight-gradient product).
 *
 * The PyTorch side of the same steps is bench/pytorch_steps.py.
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { UsageError } from "../lib/errors.ts";
import { GradTape } from "../lib/autograd/tape.ts";
import { convertTeacher, hybridMambaConfig } from "../lib/distill/convert.ts";
import { convertAttentionToMamba2, mamba2Dims } from "../lib/distill/convert_mamba2.ts";
import { parseLlamaConfig } from "../lib/io/config.ts";
import { Rng } from "../lib/random.ts";
import { distillLoss, type LmHeadMode } from "../lib/distill/tasks.ts";
import { gpuMemory, resetPeak, trimPool } from "../lib/gpu/buffers.ts";
import { flush, sync } from "../lib/gpu/commands.ts";
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import type { HostTensor } from "../lib/io/dtype.ts";
import { writeSafetensors } from "../lib/io/safetensors.ts";
import { LlamaModel } from "../lib/models/llama.ts";
import { DEFAULT_MODEL_DIR } from "../lib/models/default_model.ts";
import { matmulStrided, useSplitK } from "../lib/tensor/matmul.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { nextTokenLoss } from "../lib/train/next_token.ts";
import { AdamW, selectTrainable } from "../lib/train/optim.ts";
import { type SustainedOptions, timeSustained, type Timing, TIMING_FLAGS, timingOptions } from "./timing.ts";

/** One benchmark row. */
export type StepResult = {
  name: string;
  model: "brown-llama-6m" | "llama-3.2-1b-shape";
  step: "llama_train" | "distill" | "part";
  batch: number;
  seq: number;
  tokens_per_s: number;
  /** Highest bytes held by live tensors during the timed steps (weights, optimizer state included). */
  peak_bytes: number;
  /** Bytes of live tensors before the first step (weights and, for distill, both models). */
  base_bytes: number;
  /** Host wall-clock ms per step over consecutive steps (one sync at the end), and tokens/s from it. */
  wall_ms?: number;
  tokens_per_s_wall?: number;
  /** Which student parameters train (distill) and how the LM head ran. */
  train?: string;
  lm_head?: string;
} & Timing;

/** A failed row: what was attempted and the error's first line (ms NaN, so that loggers print it). */
export type StepError = { name: string; error: string; ms: number; ms_single: number };

/** One untimed call, then one timed call: for steps of seconds. */
export const ONE_SHOT: SustainedOptions = { warmMs: 0, sampleMs: 0, samples: 1, singles: 0 };

/** Llama-3.2-1B's config.json with its shapes (weights here are random). */
export const LLAMA_3_2_1B_CONFIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  attention_bias: false,
  mlp_bias: false,
  hidden_act: "silu",
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 64,
  vocab_size: 128256,
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-5,
  rope_theta: 500000.0,
  rope_scaling: {
    rope_type: "llama3",
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
  },
  tie_word_embeddings: true,
  bos_token_id: 128000,
  eos_token_id: 128001,
};

/**
 * Random bf16 weights, uniform in ±std·√3 (standard deviation `std`, transformers' 0.02 init): a pool
 * of 2²⁶ values from xorshift32, copied into each tensor from a random offset (fast enough for 1.2
 * billion values; only the time of the steps matters here, not the weights' statistics).
 */
function randomBf16(n: number, state: { s: number }, std = 0.02): Uint16Array {
  const pool = randomPool(state, std);
  const out = new Uint16Array(n);
  for (let i = 0; i < n;) {
    state.s ^= state.s << 13;
    state.s ^= state.s >>> 17;
    state.s ^= state.s << 5;
    const off = (state.s >>> 0) % (pool.length >>> 1);
    const len = Math.min(n - i, pool.length - off);
    out.set(pool.subarray(off, off + len), i);
    i += len;
  }
  return out;
}

let poolCache: Uint16Array | null = null;

function randomPool(state: { s: number }, std: number): Uint16Array {
  if (poolCache) return poolCache;
  const pool = new Uint16Array(2 ** 26);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const a = std * Math.sqrt(3) * 2 / 4294967296;
  let s = state.s | 0;
  for (let i = 0; i < pool.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    f[0] = (s >>> 0) * a - std * Math.sqrt(3);
    pool[i] = u[0] >>> 16;
  }
  state.s = s;
  poolCache = pool;
  return pool;
}

/** The tensors of a random-weight Llama checkpoint with `config` (bf16). */
function randomLlamaTensors(config: typeof LLAMA_3_2_1B_CONFIG, seed: number): Record<string, HostTensor> {
  const c = config;
  const D = c.hidden_size;
  const st = { s: seed * 2654435761 | 1 };
  const t: Record<string, HostTensor> = {};
  const mat = (name: string, rows: number, cols: number) =>
    t[name] = { dtype: "BF16", shape: [rows, cols], data: randomBf16(rows * cols, st) };
  const ones = (name: string, n: number) =>
    t[name] = { dtype: "BF16", shape: [n], data: new Uint16Array(n).fill(0x3f80) };
  mat("model.embed_tokens.weight", c.vocab_size, D);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    ones(`${p}.input_layernorm.weight`, D);
    ones(`${p}.post_attention_layernorm.weight`, D);
    mat(`${p}.self_attn.q_proj.weight`, c.num_attention_heads * c.head_dim, D);
    mat(`${p}.self_attn.k_proj.weight`, c.num_key_value_heads * c.head_dim, D);
    mat(`${p}.self_attn.v_proj.weight`, c.num_key_value_heads * c.head_dim, D);
    mat(`${p}.self_attn.o_proj.weight`, D, c.num_attention_heads * c.head_dim);
    mat(`${p}.mlp.gate_proj.weight`, c.intermediate_size, D);
    mat(`${p}.mlp.up_proj.weight`, c.intermediate_size, D);
    mat(`${p}.mlp.down_proj.weight`, D, c.intermediate_size);
  }
  ones("model.norm.weight", D);
  if (!c.tie_word_embeddings) mat("lm_head.weight", c.vocab_size, D);
  return t;
}

/** bf16 bit patterns → f32. */
function bf16ToF32(bits: Uint16Array): Float32Array {
  const u = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return new Float32Array(u.buffer);
}

/**
 * Writes a random-weight Llama checkpoint with `config` to `<root>/teacher` and its hybrid student with
 * attention kept at `attentionLayers` to `<root>/student` (MambaInLlama's layout, as `lab convert`
 * writes it). The student shares every kept tensor with the teacher; its Mamba-2 layers are converted
 * from the first converted layer's attention (convertAttentionToMamba2, the reference init) and that
 * conversion is used for every converted layer — the weights are random, only their shapes matter
 * here, and one conversion of a 2048-wide layer takes seconds on the host.
 */
export async function writeRandomHybridPair(
  root: string,
  config: typeof LLAMA_3_2_1B_CONFIG,
  attentionLayers: number[],
  seed = 1,
): Promise<{ teacherDir: string; studentDir: string }> {
  const t = randomLlamaTensors(config, seed);
  const c = parseLlamaConfig(config, "config");
  const d = mamba2Dims(c);
  const converted = Array.from({ length: c.numLayers }, (_, i) => i).filter((i) =>
    !attentionLayers.includes(i)
  );
  const s: Record<string, HostTensor> = {};
  for (const [name, x] of Object.entries(t)) {
    const m = /^model\.layers\.(\d+)\.self_attn\./.exec(name);
    if (!m || attentionLayers.includes(Number(m[1]))) s[name] = x;
  }
  if (converted.length > 0) {
    const a = `model.layers.${converted[0]}.self_attn`;
    const f32 = (n: string) => bf16ToF32(t[`${a}.${n}_proj.weight`].data as Uint16Array);
    const mamba = convertAttentionToMamba2(
      { q: f32("q"), k: f32("k"), v: f32("v"), o: f32("o") },
      d,
      new Rng(seed),
      "attention",
      c.rmsNormEps,
    );
    for (const i of converted) {
      for (const [k, x] of Object.entries(mamba)) s[`model.layers.${i}.mamba.${k}`] = x;
    }
  }
  const teacherDir = `${root}/teacher`;
  const studentDir = `${root}/student`;
  for (const [dir, tensors] of [[teacherDir, t], [studentDir, s]] as const) {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config, null, 2));
    await writeSafetensors(`${dir}/model.safetensors`, tensors, { format: "pt" });
  }
  await Deno.writeTextFile(
    `${studentDir}/mamba_config.json`,
    JSON.stringify(hybridMambaConfig(c, d, null, attentionLayers), null, 4),
  );
  return { teacherDir, studentDir };
}

/** Ids (B, T) and next-token targets (B·T) of a fixed pseudo-random stream, on the GPU. */
function batchOf(B: number, T: number, V: number): { x: Tensor; y: Tensor } {
  const ids = Int32Array.from({ length: B * T + 1 }, (_, i) => (i * 7919 + 13) % V);
  return {
    x: Tensor.from(ids.subarray(0, B * T), [B, T], "i32"),
    y: Tensor.from(ids.subarray(1), [B * T], "i32"),
  };
}

/** A copy of a checkpoint directory with a longer `max_position_embeddings` (same weights). */
async function withPositions(dir: string, positions: number): Promise<string> {
  const out = await Deno.makeTempDir({ prefix: "steps-teacher-" });
  for (const f of ["model.safetensors", "tokenizer.json"]) await Deno.copyFile(`${dir}/${f}`, `${out}/${f}`);
  const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  config.max_position_embeddings = Math.max(config.max_position_embeddings, positions);
  await Deno.writeTextFile(`${out}/config.json`, JSON.stringify(config));
  return out;
}

type TimeFn = (fn: () => void) => Promise<Timing>;

/**
 * Times one step closure: GPU time per step (`time`), the peak bytes of live tensors meanwhile, and,
 * when `wallMs` > 0, the host's wall-clock time per step over about that many ms of steps back to back (2
 * to 30 steps, from the GPU time) with one
 * sync at the end. GPU timestamps span the recorded work only; a step whose recording on the host
 * (~6 µs per dispatch) takes longer than its GPU work runs at the wall-clock rate in a training loop,
 * so both are reported (tokens/s from each).
 */
async function measure(
  time: TimeFn,
  step: () => void,
  row: Omit<StepResult, keyof Timing | "tokens_per_s" | "peak_bytes" | "base_bytes">,
  wallMs = 0,
): Promise<StepResult> {
  await sync();
  const base = gpuMemory().inUse;
  resetPeak();
  const t = await time(step);
  const peak = gpuMemory().peak;
  let wall: { wall_ms: number; tokens_per_s_wall: number } | undefined;
  if (wallMs > 0) {
    const wallSteps = Math.min(30, Math.max(2, Math.ceil(wallMs / t.ms)));
    await sync();
    const t0 = performance.now();
    // A submit per step, as in the training loop (whose next batch upload submits the recorded step):
    // the GPU runs step i while the host records step i + 1.
    for (let i = 0; i < wallSteps; i++) {
      step();
      flush();
    }
    await sync();
    const ms = (performance.now() - t0) / wallSteps;
    wall = { wall_ms: ms, tokens_per_s_wall: row.batch * row.seq / (ms / 1e3) };
  }
  return {
    ...row,
    ...t,
    tokens_per_s: row.batch * row.seq / (t.ms / 1e3),
    ...wall,
    peak_bytes: peak,
    base_bytes: base,
  };
}

/** The Llama training step (every parameter trains): a closure and its optimizer (to dispose). */
export function llamaTrainStep(model: LlamaModel, x: Tensor, y: Tensor) {
  const params = selectTrainable(model.namedParameters());
  const opt = new AdamW(params, { maxGradNorm: 1 });
  const one = Tensor.from([1], [1]);
  const step = () => {
    using tape = new GradTape();
    const loss = tape.run(() => nextTokenLoss(model, x, y));
    tape.backward(loss, one);
    opt.update(1e-4);
    loss.dispose();
  };
  return { step, dispose: () => (opt.dispose(), one.dispose()) };
}

/** The distillation step: teacher forward, student forward + backward, CE + 0.1·KL (batchmean), AdamW. */
export function distillStep(
  teacher: LlamaModel,
  student: LlamaModel,
  x: Tensor,
  y: Tensor,
  train: "mixers" | "all",
  lmHead: LmHeadMode,
) {
  const params = selectTrainable(student.namedParameters(), {
    train: train === "mixers" ? ["model.layers.*.mamba.*"] : undefined,
  });
  const opt = new AdamW(params, { maxGradNorm: 1 });
  const one = Tensor.from([1], [1]);
  const step = () => {
    using tape = new GradTape();
    const { loss, parts } = tape.run(() =>
      distillLoss(teacher, student, x, y, { ceWeight: 1, klWeight: 0.1, klReduction: "batchmean", lmHead })
    );
    tape.backward(loss, one);
    opt.update(1e-4);
    loss.dispose();
    for (const p of Object.values(parts)) p.dispose();
  };
  return { step, dispose: () => (opt.dispose(), one.dispose()) };
}

function errorRow(name: string, e: unknown): StepError {
  const msg = e instanceof Error ? e.message : String(e);
  console.error(`${name}: FAILED ${msg.split("\n")[0]}`);
  return { name, error: msg.split("\n")[0].slice(0, 300), ms: NaN, ms_single: NaN };
}

/**
 * The brown-llama-6m rows: distillation at 32 × 256 (mixers only and every parameter; the LM head
 * chunked and whole), then both steps at T = 256 … 4096 with 16384 tokens per step.
 */
async function bench6m(
  time: TimeFn,
  quick: boolean,
  breakdown: boolean,
): Promise<(StepResult | StepError)[]> {
  const out: (StepResult | StepError)[] = [];
  const teacherDir = await withPositions(DEFAULT_MODEL_DIR, 4096);
  const studentDir = await Deno.makeTempDir({ prefix: "steps-student-" });
  await convertTeacher(teacherDir, studentDir, { attentionLayers: [1, 3, 5] });
  using teacher = await LlamaModel.load(teacherDir);
  using student = await LlamaModel.load(studentDir);
  using llama = await LlamaModel.load(teacherDir); // a separate copy that trains
  const V = teacher.config.vocabSize;
  const model = "brown-llama-6m" as const;
  const wallMs = quick ? 200 : 1000; // ms of consecutive steps for the wall-clock figure
  const runDistill = async (B: number, T: number, train: "mixers" | "all", lmHead: LmHeadMode) => {
    const name = `distill_6m_B${B}_T${T}_${train}${lmHead === "auto" ? "" : `_head-${lmHead}`}`;
    try {
      const { x, y } = batchOf(B, T, V);
      using _x = x;
      using _y = y;
      const s = distillStep(teacher, student, x, y, train, lmHead);
      try {
        const r = await measure(time, s.step, {
          name,
          model,
          step: "distill",
          batch: B,
          seq: T,
          train,
          lm_head: lmHead,
        }, wallMs);
        console.error(
          `${name}: ${r.ms.toFixed(3)} ms GPU, ${r.wall_ms?.toFixed(3)} ms wall, ${
            Math.round(r.tokens_per_s)
          } tokens/s`,
        );
        out.push(r);
      } finally {
        s.dispose();
      }
    } catch (e) {
      out.push(errorRow(name, e));
    }
  };
  const runLlama = async (B: number, T: number) => {
    const name = `llama_train_6m_B${B}_T${T}`;
    try {
      const { x, y } = batchOf(B, T, V);
      using _x = x;
      using _y = y;
      const s = llamaTrainStep(llama, x, y);
      try {
        const r = await measure(
          time,
          s.step,
          { name, model, step: "llama_train", batch: B, seq: T },
          wallMs,
        );
        console.error(
          `${name}: ${r.ms.toFixed(3)} ms GPU, ${r.wall_ms?.toFixed(3)} ms wall, ${
            Math.round(r.tokens_per_s)
          } tokens/s`,
        );
        out.push(r);
      } finally {
        s.dispose();
      }
    } catch (e) {
      out.push(errorRow(name, e));
    }
  };
  await runDistill(32, 256, "mixers", "auto");
  await runDistill(32, 256, "mixers", "full");
  await runDistill(32, 256, "all", "auto");
  await runLlama(32, 256);
  // Where the 32 × 256 distillation step's time goes, and what split-K is worth there.
  if (breakdown) {
    const [B, T] = [32, 256];
    const { x, y } = batchOf(B, T, V);
    using _x = x;
    using _y = y;
    const part = async (name: string, fn: () => void) => {
      try {
        const r = await measure(time, fn, { name, model, step: "part", batch: B, seq: T }, wallMs);
        console.error(`${name}: ${r.ms.toFixed(3)} ms GPU, ${r.wall_ms?.toFixed(3)} ms wall`);
        out.push(r);
      } catch (e) {
        out.push(errorRow(name, e));
      }
    };
    await part("part_teacher_forward_6m_B32_T256", () => teacher.forward(x).logits.dispose());
    const trainable = selectTrainable(student.namedParameters(), { train: ["model.layers.*.mamba.*"] });
    using one = Tensor.from([1], [1]);
    await part("part_student_loss_fwd_bwd_6m_B32_T256_mixers", () => {
      using tape = new GradTape();
      const { loss, parts } = tape.run(() =>
        distillLoss(teacher, student, x, y, { ceWeight: 1, klWeight: 0.1, klReduction: "batchmean" })
      );
      tape.backward(loss, one);
      loss.dispose();
      for (const p of Object.values(parts)) p.dispose();
      for (const [, p] of trainable) {
        p.grad?.dispose();
        p.grad = null;
      }
    });
    // A weight gradient's product (MLP gate: dW (688, 256) over K = 8192 tokens) with dY read transposed
    // (as linear's backward reads it) and from a contiguous (M, K) copy, split-K on and off.
    {
      const [M, N, K] = [688, 256, B * T];
      using g = Tensor.from(new Float32Array(K * M).fill(0.01), [K, M]);
      using gT = Tensor.from(new Float32Array(K * M).fill(0.01), [M, K]);
      using xs = Tensor.from(new Float32Array(K * N).fill(0.02), [K, N]);
      for (
        const [layout, a] of [["transA", { t: g, rowStride: 1, colStride: M }], ["contiguous", {
          t: gT,
          rowStride: K,
          colStride: 1,
        }]] as const
      ) {
        for (const split of [true, false]) {
          const prev = useSplitK(split);
          try {
            await part(`part_matmul_dW_${M}x${N}xK${K}_${layout}_${split ? "split-k" : "no-split-k"}`, () => {
              const c = Tensor.empty([M, N]);
              matmulStrided({
                M,
                N,
                K,
                a,
                b: { t: xs, rowStride: N, colStride: 1 },
                c: { t: c, rowStride: N, colStride: 1 },
              });
              c.dispose();
            });
          } finally {
            useSplitK(prev);
          }
        }
      }
    }
    const prev = useSplitK(false);
    try {
      const s = distillStep(teacher, student, x, y, "mixers", "auto");
      await part("part_distill_6m_B32_T256_mixers_no-split-k", s.step);
      s.dispose();
      const l = llamaTrainStep(llama, x, y);
      await part("part_llama_train_6m_B32_T256_no-split-k", l.step);
      l.dispose();
    } finally {
      useSplitK(prev);
    }
  }
  const tokens = 16384;
  for (const T of quick ? [1024, 4096] : [256, 512, 1024, 2048, 4096]) {
    await runDistill(tokens / T, T, "mixers", "auto");
    await runLlama(tokens / T, T);
  }
  for (const d of [teacherDir, studentDir]) await Deno.remove(d, { recursive: true });
  return out;
}

/**
 * The Llama-3.2-1B-shaped rows: the distillation step at 8 × 2048 (then, when not quick, at 16384
 * tokens for T = 256 … 4096) and the Llama training step; a row that fails (out of memory, a binding
 * limit) is reported with its error and the next smaller batch is tried.
 */
async function bench1b(quick: boolean): Promise<(StepResult | StepError)[]> {
  const out: (StepResult | StepError)[] = [];
  const time: TimeFn = (fn) => timeSustained(fn, ONE_SHOT);
  await sync();
  trimPool(); // buffers other benchmarks left in the pool would otherwise count against the device
  // In memory (tmpfs) where there is one: 6 GB of checkpoints are written, converted and read once.
  const shm = await Deno.stat("/dev/shm").then((s) => s.isDirectory, () => false);
  const root = await Deno.makeTempDir({ prefix: "steps-1b-", dir: shm ? "/dev/shm" : undefined });
  const t0 = performance.now();
  const odd = Array.from({ length: 8 }, (_, i) => 2 * i + 1);
  const dirs = await writeRandomHybridPair(root, LLAMA_3_2_1B_CONFIG, odd);
  const t1 = performance.now();
  const teacher = await LlamaModel.load(dirs.teacherDir);
  const student = await LlamaModel.load(dirs.studentDir);
  await Deno.remove(root, { recursive: true });
  const secs = (a: number, b: number) => ((b - a) / 1e3).toFixed(1);
  console.error(
    `1b: random checkpoints written in ${secs(t0, t1)} s, loaded in ${secs(t1, performance.now())} s`,
  );

  const V = teacher.config.vocabSize;
  const model = "llama-3.2-1b-shape" as const;
  /** Runs one row; false when it failed. */
  const row = async (kind: "distill" | "llama_train", B: number, T: number): Promise<boolean> => {
    const name = `${kind}_1b_B${B}_T${T}${kind === "distill" ? "_mixers" : ""}`;
    try {
      const { x, y } = batchOf(B, T, V);
      using _x = x;
      using _y = y;
      const s = kind === "distill"
        ? distillStep(teacher, student, x, y, "mixers", "auto")
        : llamaTrainStep(teacher, x, y);
      try {
        const r = await measure(time, s.step, {
          name,
          model,
          step: kind,
          batch: B,
          seq: T,
          train: kind === "distill" ? "mixers" : "all",
          lm_head: "auto",
        });
        console.error(
          `${name}: ${r.ms.toFixed(1)} ms, ${Math.round(r.tokens_per_s)} tokens/s, peak ${
            (r.peak_bytes / 2 ** 30).toFixed(1)
          } GiB`,
        );
        out.push(r);
        return true;
      } finally {
        s.dispose();
        await sync().catch(() => {});
        trimPool();
      }
    } catch (e) {
      out.push(errorRow(name, e));
      await sync().catch(() => {});
      trimPool();
      return false;
    }
  };
  /** The row at B × T, and on failure at B/2, B/4, … down to 1. */
  const withFallback = async (kind: "distill" | "llama_train", B: number, T: number) => {
    for (let b = B; b >= 1; b = Math.floor(b / 2)) if (await row(kind, b, T)) return;
  };
  // The issue's 8 × 2048, then sequence lengths 256 … 4096 at a fixed number of tokens per step
  // (16384; quick: 4096, so that the sweep costs seconds, not minutes, of GPU time).
  const perStep = quick ? 4096 : 16384;
  await withFallback("distill", 8, 2048);
  for (const T of quick ? [256, 1024, 4096] : [256, 512, 1024, 4096]) {
    await withFallback("distill", perStep / T, T);
  }
  // The teacher trains last (its weights change).
  await withFallback("llama_train", quick ? 2 : 8, 2048);
  for (const T of [256, 1024, 4096]) await withFallback("llama_train", perStep / T, T);
  student.dispose();
  teacher.dispose();
  return out;
}

/**
 * Every step benchmark: brown-llama-6m with `time` (sustained timing), then the Llama-3.2-1B-shaped
 * model (one-shot timing). `only` restricts to one model.
 */
export async function benchSteps(
  time: TimeFn,
  quick: boolean,
  only?: "6m" | "1b",
  breakdown = false,
): Promise<(StepResult | StepError)[]> {
  const out: (StepResult | StepError)[] = [];
  if (only !== "1b") out.push(...await bench6m(time, quick, breakdown));
  if (only !== "6m") out.push(...await bench1b(quick));
  return out;
}

if (import.meta.main) {
  const flags = parseFlags("steps", Deno.args, {
    ...TIMING_FLAGS,
    json: "string",
    only: "string",
    breakdown: "boolean",
  });
  if (flags.only !== undefined && flags.only !== "6m" && flags.only !== "1b") {
    throw new UsageError("bench/steps.ts", `--only takes 6m or 1b, not ${JSON.stringify(flags.only)}`);
  }
  const only = flags.only as "6m" | "1b" | undefined;
  const ctx = await initGpu();
  const opts = timingOptions(flags);
  const results = await benchSteps((fn) => timeSustained(fn, opts), !!flags.quick, only, !!flags.breakdown);
  const report = {
    date: new Date().toISOString(),
    adapter: adapterName(ctx),
    method: {
      ...opts,
      note: "ms: median GPU time per step (bench/timing.ts); 1B rows: one timed step after one untimed",
    },
    results,
  };
  const text = JSON.stringify(report, null, 2);
  if (typeof flags.json === "string") await Deno.writeTextFile(flags.json, text);
  console.log(text);
}
