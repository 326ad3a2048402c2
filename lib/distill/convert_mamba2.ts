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
 * @module
 */
import type { LlamaConfig } from "../io/config.ts";
import type { HostTensor } from "../io/safetensors.ts";
import type { Rng } from "../random.ts";

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
}

/** How new parameters start: from attention (the default) or all random. */
export type Mamba2Init = "attention" | "random";

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
): Record<string, HostTensor> {
  const { dModel, dInner, dXb, nHeads, convWidth } = d;
  const rows = 2 * dInner + 2 * dXb + nHeads;
  const linearBound = 1 / Math.sqrt(dModel);
  const uniform = (n: number, bound: number) =>
    Float32Array.from({ length: n }, () => rng.uniformRange(-bound, bound));
  const inProj = uniform(rows * dModel, linearBound); // z, dt (and all rows for a random init)
  const outProj = init === "attention"
    ? Float32Array.from(att.o)
    : uniform(dModel * dInner, 1 / Math.sqrt(dInner));
  if (init === "attention") {
    inProj.set(att.v, dInner * dModel);
    inProj.set(att.k, (dInner + dXb) * dModel);
    inProj.set(att.q, (dInner + 2 * dXb) * dModel);
  }
  const convChannels = dInner + 2 * dXb;
  const convBound = 1 / Math.sqrt(convWidth);
  const dtBias = Float32Array.from({ length: nHeads }, () => {
    const dt = Math.max(Math.exp(rng.uniformRange(Math.log(1e-3), Math.log(0.1))), 1e-4);
    return inverseSoftplus(dt);
  });
  const aLog = Float32Array.from({ length: nHeads }, () => Math.log(rng.uniformRange(1, 16)));
  const f32 = (shape: number[], data: Float32Array): HostTensor => ({ dtype: "F32", shape, data });
  return {
    "in_proj.weight": f32([rows, dModel], inProj),
    "conv1d.weight": f32([convChannels, 1, convWidth], uniform(convChannels * convWidth, convBound)),
    "conv1d.bias": f32([convChannels], uniform(convChannels, convBound)),
    "dt_bias": f32([nHeads], dtBias),
    "A_log": f32([nHeads], aLog),
    "D": f32([nHeads], new Float32Array(nHeads).fill(1)),
    "norm.weight": f32([dInner], new Float32Array(dInner).fill(1)),
    "out_proj.weight": f32([dModel, dInner], outProj),
  };
}
