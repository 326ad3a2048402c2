/**
 * Attention → Mamba-2 weight transfer, exactly as MambaInLlama's `mamba2/hybrid_wrapper.py` with
 * `init_with_kqvo=True` (method.md §3.2), on host arrays.
 *
 *   in_proj (2·d_inner + 2·d_xb + H, d_model), rows [ z | x ← v_proj | B ← k_proj | C ← q_proj | dt ]
 *   out_proj ← o_proj;  input/post norms and the MLP are copied by the caller
 *
 * New parameters, initialised as the reference does (seeded):
 *   z and dt rows: PyTorch's Linear default, U(±1/√d_model)
 *   conv1d (C, 1, 4) over [x | B | C]: PyTorch's Conv1d default, weight and bias U(±1/√4)
 *   dt_bias = softplus⁻¹(dt), dt = exp(U(log 1e-3, log 0.1)) floored at 1e-4
 *   A_log = log U(1, 16);  D = 1;  norm.weight = 1
 *
 * With d_inner = H_q·P, d_xb = H_kv·P, d_state = P (the head dim), ngroups = H_q heads of P: per head
 * the layer is linear attention with x = v, B = k, C = q (no softmax, no 1/√P, no RoPE); x and B are
 * repeated so that query head h reads kv head ⌊h·H_kv/H_q⌋ (done by the layer's forward).
 *
 * The `linear-attention` init (not in the reference) makes every other stage of the layer neutral, so
 * that it computes gated causal linear attention of the teacher's q, k, v; see
 * {@linkcode linearAttentionScales} for the construction and exactly what is equal.
 *
 * @module
 */
import type { LlamaConfig } from "../io/config.ts";
import type { HostTensor } from "../io/safetensors.ts";
import type { Rng } from "../random.ts";
import { ShapeError } from "../errors.ts";

/** The Mamba-2 dimensions of a converted layer (the fields of `mamba_config.json`). */
export interface Mamba2Dims {
  dModel: number;
  dInner: number;
  dXb: number;
  dState: number;
  nHeads: number;
  headDim: number;
  nGroups: number;
  convWidth: number;
}

/** Dimensions derived from the teacher's config (MambaInLlama: expand 1, d_state = head_dim). */
export function mamba2Dims(c: LlamaConfig): Mamba2Dims {
  const dInner = c.numHeads * c.headDim;
  return {
    dModel: c.hiddenSize,
    dInner,
    dXb: c.numKvHeads * c.headDim,
    dState: c.headDim,
    nHeads: c.numHeads,
    headDim: c.headDim,
    nGroups: c.numHeads,
    convWidth: 4,
  };
}

/** The teacher attention weights a conversion reads (row-major (out, in), f32). */
export interface AttentionHost {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  /** The layer's input_layernorm weight (d_model): needed by the `linear-attention` init only. */
  inputNorm?: Float32Array;
}

/**
 * How new parameters start: from attention (the reference, default), all random, or as exact (gated)
 * causal linear attention of the teacher's q, k, v.
 */
export type Mamba2Init = "attention" | "random" | "linear-attention";

/** Bound τ on |α·a| for every SiLU input a of the x, B, C channels under the `linear-attention` init. */
export const LINEAR_ATTENTION_TAU = 2 ** -20;
/** A_log of the `linear-attention` init: A = −exp(−50) ≈ −2e-22, so every decay exp(A·dt) is 1 in f32. */
export const LINEAR_ATTENTION_A_LOG = -50;

/** The scales of the `linear-attention` init and the bounds they come from. */
export interface LinearAttentionScales {
  /** Scale of the v, k, q rows placed in x, B, C. */
  alphaV: number;
  alphaK: number;
  alphaQ: number;
  /** Largest |v_i|, |k_i|, |q_i| over every possible layer input (see below). */
  boundV: number;
  boundK: number;
  boundQ: number;
  /** Weight of the gated norm that undoes the scales: 8·√ε / (α_v α_k α_q). */
  normWeight: number;
}

/**
 * Scales of the `linear-attention` init. The construction, stage by stage (u is the layer's input):
 *
 *   in_proj rows x ← α_v·v_proj, B ← α_k·k_proj, C ← α_q·q_proj, dt rows ← 0, z rows ← reference init
 *   conv1d: identity (weight [0, 0, 0, 1], bias 0), then the layer's SiLU
 *   dt = softplus(dt_bias) = 1;  A_log = −50 (decay 1 in f32);  D = 0
 *   norm.weight = 8·√ε / (α_v α_k α_q)
 *
 * 1. SiLU. u = w ⊙ h / √(mean h² + ε) is RMS-normalised, so Σ_j (u_j / w_j)² < d_model and every
 *    projection obeys |W_i·u| ≤ √d_model·‖W_i ⊙ w‖ =: bound. With α = τ / bound, each SiLU input a
 *    has |a| ≤ τ and silu(a) = a·σ(a) = (a/2)(1 + tanh(a/2)) = (a/2)(1 + η), |η| ≤ τ/2: the SiLU is
 *    the linear map a ↦ a/2 to a relative 2^-21, for every input.
 * 2. SSD with dt = 1, decay 1, D = 0: y_t = Σ_{s≤t} (C_t·B_s) x_s = (α_v α_k α_q / 8)·LA_t, with
 *    LA_t = Σ_{s≤t} (q_t·k_s) v_s per head (query head h with kv head ⌊h·H_kv/H_q⌋).
 * 3. Gated RMSNorm, g = y ⊙ silu(z), out = weight ⊙ g / √(mean_group g² + ε). By 1 and 2,
 *    |y_t| ≤ (t + 1)·P·τ³/8 ≈ 1e-19·(t + 1)·P, so for any sequence a model takes mean g² is below ε·2^-24 and
 *    ε + mean g² rounds to ε in f32: the norm is the linear map g ↦ g/√ε, and the weight undoes
 *    every scale.
 *
 * So for every input the layer's output is out_proj(silu(z_t) ⊙ LA_t) = o_proj(silu(z_t) ⊙ LA_t)
 * within float error. The gate cannot be made neutral: z = W_z u has no bias and is odd in u
 * (u ↦ −u is a valid input), so silu(z) is a constant only when it is silu(0) = 0. What equals the
 * teacher's plain linear attention o_proj(LA_t) exactly is the layer with its gate factor silu(z)
 * divided out, i.e. LA_t = y_t·8/(α_v α_k α_q) before the gate — and the output up to that per-channel
 * factor. This is a verification construction (tiny x/B/C scales, a huge norm weight), not a good
 * training start.
 */
export function linearAttentionScales(
  att: AttentionHost,
  d: Mamba2Dims,
  eps: number,
): LinearAttentionScales {
  if (!att.inputNorm || att.inputNorm.length !== d.dModel) {
    throw new ShapeError(
      "linear-attention init",
      `needs the layer's input_layernorm weight (${d.dModel} values)`,
    );
  }
  const w = att.inputNorm;
  const bound = (W: Float32Array) => {
    let most = 0;
    for (let r = 0; r < W.length / d.dModel; r++) {
      let ss = 0;
      for (let j = 0; j < d.dModel; j++) ss += (W[r * d.dModel + j] * w[j]) ** 2;
      most = Math.max(most, Math.sqrt(ss * d.dModel));
    }
    return most || 1;
  };
  const [boundV, boundK, boundQ] = [bound(att.v), bound(att.k), bound(att.q)];
  const tau = LINEAR_ATTENTION_TAU;
  const alphaV = tau / boundV, alphaK = tau / boundK, alphaQ = tau / boundQ;
  return {
    alphaV,
    alphaK,
    alphaQ,
    boundV,
    boundK,
    boundQ,
    normWeight: 8 * Math.sqrt(eps) / (alphaV * alphaK * alphaQ),
  };
}

/** softplus⁻¹(y) = y + log(−expm1(−y)), as the reference computes dt_bias. */
export function inverseSoftplus(y: number): number {
  return y + Math.log(-Math.expm1(-y));
}

/** The converted layer's `mamba.*` tensors (names without the `model.layers.{i}.mamba.` prefix). */
export function convertAttentionToMamba2(
  att: AttentionHost,
  d: Mamba2Dims,
  rng: Rng,
  init: Mamba2Init = "attention",
  eps = 1e-5,
): Record<string, HostTensor> {
  const { dModel, dInner, dXb, nHeads, convWidth } = d;
  const rows = 2 * dInner + 2 * dXb + nHeads;
  const linearBound = 1 / Math.sqrt(dModel);
  const uniform = (n: number, bound: number) =>
    Float32Array.from({ length: n }, () => rng.uniformRange(-bound, bound));
  const inProj = uniform(rows * dModel, linearBound); // z, dt (and all rows for a random init)
  const fromAttention = init !== "random";
  const outProj = fromAttention ? Float32Array.from(att.o) : uniform(dModel * dInner, 1 / Math.sqrt(dInner));
  const la = init === "linear-attention" ? linearAttentionScales(att, d, eps) : null;
  const scaled = (W: Float32Array, a: number) => la ? W.map((v) => v * a) : W;
  if (fromAttention) {
    inProj.set(scaled(att.v, la?.alphaV ?? 1), dInner * dModel);
    inProj.set(scaled(att.k, la?.alphaK ?? 1), (dInner + dXb) * dModel);
    inProj.set(scaled(att.q, la?.alphaQ ?? 1), (dInner + 2 * dXb) * dModel);
  }
  const convChannels = dInner + 2 * dXb;
  const convBound = 1 / Math.sqrt(convWidth);
  // The draws happen in the same order for every init, so a seed gives the same z rows in each.
  let convWeight = uniform(convChannels * convWidth, convBound);
  let convBias = uniform(convChannels, convBound);
  let dtBias = Float32Array.from({ length: nHeads }, () => {
    const dt = Math.max(Math.exp(rng.uniformRange(Math.log(1e-3), Math.log(0.1))), 1e-4);
    return inverseSoftplus(dt);
  });
  let aLog = Float32Array.from({ length: nHeads }, () => Math.log(rng.uniformRange(1, 16)));
  let D = new Float32Array(nHeads).fill(1);
  let norm = new Float32Array(dInner).fill(1);
  if (la) {
    inProj.fill(0, (2 * dInner + 2 * dXb) * dModel); // dt rows: dt = softplus(dt_bias) for every input
    convWeight = new Float32Array(convChannels * convWidth);
    for (let c = 0; c < convChannels; c++) convWeight[c * convWidth + convWidth - 1] = 1; // identity
    convBias = new Float32Array(convChannels);
    dtBias = new Float32Array(nHeads).fill(inverseSoftplus(1));
    aLog = new Float32Array(nHeads).fill(LINEAR_ATTENTION_A_LOG);
    D = new Float32Array(nHeads);
    norm = new Float32Array(dInner).fill(la.normWeight);
  }
  const f32 = (shape: number[], data: Float32Array): HostTensor => ({ dtype: "F32", shape, data });
  return {
    "in_proj.weight": f32([rows, dModel], inProj),
    "conv1d.weight": f32([convChannels, 1, convWidth], convWeight),
    "conv1d.bias": f32([convChannels], convBias),
    "dt_bias": f32([nHeads], dtBias),
    "A_log": f32([nHeads], aLog),
    "D": f32([nHeads], D),
    "norm.weight": f32([dInner], norm),
    "out_proj.weight": f32([dModel, dInner], outProj),
  };
}
