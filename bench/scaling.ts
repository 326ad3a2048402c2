/**
 * Time per token against sequence length for one layer's sequence mixer, attention against the Mamba
 * layers it is converted into (issue #8), at batch 1 in the shape of a 1B Llama (Llama-3.2-1B: d_model
 * 2048, 32 query heads, 8 key/value heads, head dim 64):
 *
 *   - attention: q/k/v projections, RoPE, causal GQA softmax attention, o_proj (`LlamaModel.mixerForward`
 *     of a one-layer random model);
 *   - Mamba-2: the MambaInLlama conversion of that attention layer (`convertAttentionToMamba2`: d_inner
 *     2048, d_xb 512, 32 heads of 64, d_state 64), `mamba2Forward`;
 *   - Mamba-1: its Mamba-1 conversion (`convertAttentionToMamba1`: d_state 16, dt_rank 128),
 *     `mamba1Forward`.
 *
 * For each L: the prefill forward over (1, L, 2048), the forward + backward (every weight of the mixer
 * and the input get gradients; dy random), and one decoding step of a single token after L tokens — for
 * attention with a KV cache of L positions (its cost grows with L), for the Mamba layers with their
 * fixed-size conv + SSM state after a prefill of L tokens (`mamba2Decode` / `mamba1Decode`). The
 * attention step makes the calls `LlamaModel`'s attention block makes with a cache (lib/models/llama.ts):
 * projections, RoPE at position L, `KVCache.append`, `attention` over L + 1 keys, o_proj.
 *
 * Every workload runs once and its output is read back before it is timed: a GPU error (a buffer over the
 * device's limits: the unfused attention's probabilities (1, 32, L, L) f32 are 2 GiB at L = 4096) or a
 * non-finite value makes that point an `error` entry instead of a time. µs per token = time / L for
 * prefill, the step's time for decoding.
 *
 *   deno run -A bench/scaling.ts [--json FILE] [--quick] [--lengths 256,512,…] [--warm-ms N] [--samples N]
 *
 * `--quick`: bench/timing.ts's QUICK options (all lengths unless `--lengths`); `--warm-ms`, `--samples`
 * override their warm-up per point and number of samples (each sample ≥ 5 ms of calls; JSON keeps the
 * fastest and slowest sample beside the median: the fused attention's long calls vary by up to 2× at
 * L ≥ 4096 on the H200). bench/scaling_plot.ts
 * turns the JSON into docs/scaling.svg.
 *
 * @module
 */
import { adapterName, gpu, initGpu } from "../lib/gpu/device.ts";
import { parseFlags } from "../lib/cli/args.ts";
import { parseLlamaConfig } from "../lib/io/config.ts";
import { LlamaModel } from "../lib/models/llama.ts";
import { KVCache } from "../lib/models/kv_cache.ts";
import { mamba2Forward, type Mamba2Weights } from "../lib/models/mamba2_layer.ts";
import { mamba1Forward, type Mamba1Weights } from "../lib/models/mamba1_layer.ts";
import { Mamba2Cache, mamba2Decode } from "../lib/models/mamba2_decode.ts";
import { Mamba1Cache, mamba1Decode } from "../lib/models/mamba1_decode.ts";
import { convertAttentionToMamba2, mamba2Dims } from "../lib/distill/convert_mamba2.ts";
import { convertAttentionToMamba1, mamba1Dims } from "../lib/distill/convert_mamba1.ts";
import { attention, linear, rope } from "../lib/autograd/ops.ts";
import { GradTape } from "../lib/autograd/tape.ts";
import { sync } from "../lib/gpu/commands.ts";
import { uploadHost } from "../lib/tensor/convert.ts";
import type { Weight } from "../lib/tensor/matmul.ts";
import { readTensors, Tensor } from "../lib/tensor/tensor.ts";
import type { HostTensor } from "../lib/io/safetensors.ts";
import { Rng } from "../lib/random.ts";
import { timeSustained, type Timing, TIMING_FLAGS, timingOptions } from "./timing.ts";

/** The sequence lengths of a full run. */
export const SCALING_LENGTHS = [256, 512, 1024, 2048, 4096, 8192];

/** Layer kinds compared. */
export const LAYER_KINDS = ["attention", "mamba2", "mamba1"] as const;
/** One of {@linkcode LAYER_KINDS}. */
export type LayerKind = typeof LAYER_KINDS[number];
/** What is timed: prefill forward, prefill forward + backward, one decoding step after L tokens. */
export const PHASES = ["prefill_fwd", "prefill_fwdbwd", "decode"] as const;
/** One of {@linkcode PHASES}. */
export type Phase = typeof PHASES[number];

/** One point: a layer kind, a phase and a length, with its timing, or the error that prevented it. */
export type ScalingResult =
  & { name: string; kind: LayerKind; phase: Phase; L: number }
  & ({ us_per_token: number } & Timing | { error: string });

/** The 1B-shaped config of the one-layer model (Llama-3.2-1B widths; a small MLP and vocabulary, unused). */
function config(positions: number) {
  return parseLlamaConfig({
    vocab_size: 256,
    hidden_size: 2048,
    intermediate_size: 256,
    num_hidden_layers: 1,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    max_position_embeddings: positions,
    tie_word_embeddings: true,
  }, "bench/scaling");
}

const matrix = (t: HostTensor): Weight => ({ parts: [uploadHost(t)], shape: [t.shape[0], t.shape[1]] });
/** conv1d.weight (C, 1, W) as the layers hold it, (C, W). */
const conv = (t: HostTensor): Tensor => uploadHost({ ...t, shape: [t.shape[0], t.shape[2]] });

/** The three mixers: the model's attention layer and its two conversions, on the GPU. */
async function buildLayers(positions: number) {
  const cfg = config(positions);
  const model = LlamaModel.random(cfg, 0, 0.02);
  const attn = model.layers[0].attn!;
  const [q, k, v, o] = await readTensors([
    attn.q.parts[0],
    attn.k.parts[0],
    attn.v.parts[0],
    attn.o.parts[0],
  ]);
  const host = { q, k, v, o } as { q: Float32Array; k: Float32Array; v: Float32Array; o: Float32Array };
  const rng = new Rng(1);
  const d2 = mamba2Dims(cfg);
  const m2 = convertAttentionToMamba2(host, d2, rng);
  const w2: Mamba2Weights = {
    inProj: matrix(m2["in_proj.weight"]),
    convWeight: conv(m2["conv1d.weight"]),
    convBias: uploadHost(m2["conv1d.bias"]),
    dtBias: uploadHost(m2["dt_bias"]),
    aLog: uploadHost(m2["A_log"]),
    D: uploadHost(m2["D"]),
    norm: uploadHost(m2["norm.weight"]),
    outProj: matrix(m2["out_proj.weight"]),
  };
  const d1 = mamba1Dims(cfg);
  const m1 = convertAttentionToMamba1(host, d1, rng, { headDim: cfg.headDim });
  const w1: Mamba1Weights = {
    inProjX: matrix(m1["in_proj_x.weight"]),
    inProjZ: matrix(m1["in_proj_z.weight"]),
    convWeight: conv(m1["conv1d.weight"]),
    convBias: uploadHost(m1["conv1d.bias"]),
    bProj: matrix(m1["B_proj.weight"]),
    cProj: matrix(m1["C_proj.weight"]),
    dtDown: matrix(m1["dt_proj_down.weight"]),
    dtProj: matrix(m1["dt_proj.weight"]),
    dtBias: uploadHost(m1["dt_proj.bias"]),
    aLog: uploadHost(m1["A_log"]),
    D: uploadHost(m1["D"]),
    outProj: matrix(m1["out_proj.weight"]),
  };
  const o2 = { dims: d2, kvHeads: cfg.numKvHeads, eps: cfg.rmsNormEps };
  const params = {
    attention: [attn.q, attn.k, attn.v, attn.o].map((w) => w.parts[0]),
    mamba2: [
      w2.inProj.parts[0],
      w2.convWeight,
      w2.convBias,
      w2.dtBias,
      w2.aLog,
      w2.D,
      w2.norm,
      w2.outProj.parts[0],
    ],
    mamba1: [
      ...[w1.inProjX, w1.inProjZ, w1.bProj, w1.cProj, w1.dtDown, w1.dtProj, w1.outProj].map((w) =>
        w.parts[0]
      ),
      w1.convWeight,
      w1.convBias,
      w1.dtBias,
      w1.aLog,
      w1.D,
    ],
  };
  const forward: Record<LayerKind, (x: Tensor) => Tensor> = {
    attention: (x) => model.mixerForward(0, x),
    mamba2: (x) => mamba2Forward(x, w2, o2),
    mamba1: (x) => mamba1Forward(x, w1, d1),
  };
  const dispose = () => {
    model.dispose();
    for (const t of [...params.mamba2, ...params.mamba1]) t.dispose();
  };
  return { cfg, model, attn, w2, o2, d1, w1, d2, params, forward, dispose };
}

type Layers = Awaited<ReturnType<typeof buildLayers>>;

/**
 * One token x (1, 1, D) through the attention block with a KV cache, as LlamaModel's attention block
 * does it: q, k, v projections, RoPE at position `cache.length`, append k and v, attention over the
 * cache, o_proj. Returns (1, 1, D).
 */
function attentionStep(l: Layers, x: Tensor, cache: KVCache): Tensor {
  const { numHeads: H, numKvHeads: Hkv, headDim: P } = l.cfg;
  const pos = cache.length;
  using q0 = linear(x, l.attn.q);
  using k0 = linear(x, l.attn.k);
  using v = linear(x, l.attn.v);
  using q = rope(q0.view([1, 1, H, P]), l.model.rope, pos);
  using k = rope(k0.view([1, 1, Hkv, P]), l.model.rope, pos);
  cache.append(k, v.view([1, 1, Hkv, P]));
  const r = attention(q, cache.k, cache.v, { keyLength: cache.length });
  using out = r.out;
  return linear(out.view([1, 1, H * P]), l.attn.o);
}

function random(shape: number[], rng: Rng, scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(Float32Array.from({ length: n }, () => rng.normal() * scale), shape);
}

/** Runs `run` once and reads its output back: null when finite, else the reason it cannot be timed. */
async function check(run: () => Tensor): Promise<string | null> {
  try {
    using y = run();
    const v = await y.toArray();
    const bad = v.findIndex((x) => !Number.isFinite(x));
    return bad < 0 ? null : `non-finite output at index ${bad} (${v[bad]})`;
  } catch (e) {
    return (e as Error).message.slice(0, 300);
  }
}

/**
 * Times every layer kind and phase at each length (default {@linkcode SCALING_LENGTHS}; `quick`:
 * 256, 1024 and 4096). `time` measures GPU time per call (bench/timing.ts). Points that cannot run
 * (e.g. over the device's buffer limits) are returned with their error.
 */
export async function benchScaling(
  time: (fn: () => void) => Promise<Timing>,
  quick: boolean,
  lengths: number[] = quick ? [256, 1024, 4096] : SCALING_LENGTHS,
): Promise<ScalingResult[]> {
  const maxL = Math.max(...lengths);
  const l = await buildLayers(maxL + 1);
  const rng = new Rng(2);
  const D = l.cfg.hiddenSize;
  const out: ScalingResult[] = [];
  const log = (r: ScalingResult) => {
    out.push(r);
    console.error(
      `${r.name}: ${
        "error" in r ? `error: ${r.error}` : `${r.ms.toFixed(4)} ms, ${r.us_per_token.toFixed(3)} µs/token`
      }`,
    );
  };
  const point = async (kind: LayerKind, phase: Phase, L: number, run: () => Tensor) => {
    const name = `scaling_${kind}_${phase}_L${L}`;
    const err = await check(run);
    if (err) return log({ name, kind, phase, L, error: err });
    const t = await time(() => run().dispose());
    log({ name, kind, phase, L, ...t, us_per_token: t.ms * 1e3 / (phase === "decode" ? 1 : L) });
  };
  // The attention cache: capacity for the longest prompt and one more token; its K and V random (the
  // values do not change the work).
  using kv = new KVCache(1, maxL + 1, l.cfg.numKvHeads, l.cfg.headDim);
  kv.k.write(Float32Array.from({ length: kv.k.size }, () => rng.normal()));
  kv.v.write(Float32Array.from({ length: kv.v.size }, () => rng.normal()));
  using x1 = random([1, 1, D], rng);
  try {
    // ≥ 1.5 s of GPU work before the first point (the clocks ramp up only under load; the per-point
    // warm-up of quick timing options is 0.1 s).
    {
      using xw = random([1, maxL, D], rng);
      const t0 = performance.now();
      while (performance.now() - t0 < 1500) {
        for (let i = 0; i < 10; i++) l.forward.mamba2(xw).dispose();
        await sync();
      }
    }
    for (const L of lengths) {
      using x = random([1, L, D], rng);
      using dy = random([1, L, D], rng, 1e-2);
      for (const kind of LAYER_KINDS) {
        await point(kind, "prefill_fwd", L, () => l.forward[kind](x));
        const params = l.params[kind];
        // Forward + backward: returns dx (every parameter's gradient is computed and freed as well).
        await point(kind, "prefill_fwdbwd", L, () => {
          for (const p of params) p.requiresGrad = true;
          x.requiresGrad = true;
          try {
            using tape = new GradTape();
            const y = tape.run(() => l.forward[kind](x));
            tape.backward(y, dy);
            y.dispose();
            const dx = x.grad!;
            x.grad = null;
            for (const p of params) {
              p.grad?.dispose();
              p.grad = null;
            }
            return dx;
          } finally {
            for (const p of params) p.requiresGrad = false;
            x.requiresGrad = false;
          }
        });
      }
      // Decoding one token after L: the KV cache holds L positions (reset before each step); the Mamba
      // states come from a real prefill of x (their size does not depend on L).
      await point("attention", "decode", L, () => {
        kv.length = L;
        return attentionStep(l, x1, kv);
      });
      {
        using c2 = new Mamba2Cache(1, l.d2);
        mamba2Decode(x, l.w2, l.o2, c2).dispose();
        await point("mamba2", "decode", L, () => mamba2Decode(x1, l.w2, l.o2, c2));
      }
      {
        using c1 = new Mamba1Cache(1, l.d1, l.w1);
        mamba1Decode(x, l.w1, l.d1, c1).dispose();
        await point("mamba1", "decode", L, () => mamba1Decode(x1, l.w1, l.d1, c1));
      }
    }
  } finally {
    l.dispose();
  }
  return out;
}

if (import.meta.main) {
  const flags = parseFlags("scaling", Deno.args, { json: "string", lengths: "string", ...TIMING_FLAGS });
  const opts = timingOptions(flags);
  const ctx = await initGpu();
  const lengths = typeof flags.lengths === "string" ? flags.lengths.split(",").map(Number) : SCALING_LENGTHS;
  const results = await benchScaling((fn) => timeSustained(fn, opts), !!flags.quick, lengths);
  const text = JSON.stringify(
    {
      date: new Date().toISOString(),
      adapter: adapterName(ctx),
      shapes: {
        batch: 1,
        d_model: 2048,
        attention: { heads: 32, kv_heads: 8, head_dim: 64 },
        mamba2: { d_inner: 2048, d_xb: 512, heads: 32, head_dim: 64, d_state: 64, chunk: 64 },
        mamba1: { d_inner: 2048, d_xb: 512, d_state: 16, dt_rank: 128 },
      },
      method: { ...opts, note: "ms: median GPU time per call after a sustained warm-up (bench/timing.ts)" },
      limits: { maxBindingBytes: gpu().maxBindingBytes, maxBufferBytes: gpu().maxBufferBytes },
      results,
    },
    null,
    2,
  );
  if (typeof flags.json === "string") await Deno.writeTextFile(flags.json, text);
  console.log(text);
}
