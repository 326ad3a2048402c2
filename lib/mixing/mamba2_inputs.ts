/**
 * What a MambaInLlama Mamba-2 layer feeds its SSD, per head, for a given layer input: the quantities
 * its mixing matrix is made of (method.md §3.2), in float64 on the host.
 *
 *   zxbcdt = in_proj(u)                      rows [ z | x | B | C | dt_raw ]
 *   xBC = silu(causal_conv1d(x | B | C))     depthwise, width 4, with bias
 *   per head h, kv head g = ⌊h·H_kv/H⌋:  dt = softplus(dt_raw_h + dt_bias_h),  A = −exp(A_log_h)·dt
 *                                        x_h = x_g,  B_h = B_g,  C_h = C_h
 *   y = M x with M[t][s] = (C_t·B_s)·exp(Σ_{s<r≤t} A_r)·dt_s + D_h·[t = s]   (ssdMixingRef)
 *   out = out_proj(RMSNormGated(y, z))
 *
 * Shapes: u (B, T, d_model); x (B, T, H, P); z (B, T, d_inner); A, dt (B, T, H); B, C (B, T, H, N).
 * The expensive in_proj can run on the GPU (`layer_mixing.ts`); the rest is linear in T and runs here.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import type { Mamba2Dims } from "../distill/convert_mamba2.ts";
import type { Checkpoint } from "../io/checkpoint.ts";
import { causalConv1dRef } from "../ssm/conv1d_ref.ts";
import { softplus } from "./_numerics.ts";

/** A Mamba-2 mixer's weights on the host (`model.layers.{i}.mamba.*`, row-major). */
export interface Mamba2HostWeights {
  /** in_proj (2·d_inner + 2·d_xb + H, d_model). */
  inProj: ArrayLike<number>;
  /** conv1d weight (d_inner + 2·d_xb, W). */
  convWeight: ArrayLike<number>;
  /** conv1d bias (d_inner + 2·d_xb). */
  convBias: ArrayLike<number>;
  /** dt_bias (H). */
  dtBias: ArrayLike<number>;
  /** A_log (H). */
  aLog: ArrayLike<number>;
  /** D (H). */
  D: ArrayLike<number>;
  /** Gated-norm weight (d_inner). */
  norm: ArrayLike<number>;
  /** out_proj (d_model, d_inner). */
  outProj: ArrayLike<number>;
}

/** The SSD's operands for one layer input, per head (layouts in the module doc). */
export interface Mamba2MixerInputs {
  /** Batch, length T, heads H, head dim P, state size N. */
  dims: { batch: number; T: number; H: number; P: number; N: number };
  /** x per head (B, T, H, P), repeated from its kv head. */
  x: Float64Array;
  /** The gate z (B, T, d_inner). */
  z: Float64Array;
  /** Log-decay A = −exp(A_log)·dt (B, T, H). */
  A: Float64Array;
  /** Step dt = softplus(dt_raw + dt_bias) (B, T, H). */
  dt: Float64Array;
  /** B per head (B, T, H, N), repeated from its kv head. */
  B: Float64Array;
  /** C per head (B, T, H, N). */
  C: Float64Array;
  /** Skip D (H). */
  D: Float64Array;
}

/** Reads layer i's `mamba.*` tensors from a checkpoint as float32 host arrays. */
export async function readMamba2HostWeights(ckpt: Checkpoint, i: number): Promise<Mamba2HostWeights> {
  const pre = `model.layers.${i}.mamba`;
  const r = (n: string) => ckpt.readF32(`${pre}.${n}`);
  return {
    inProj: await r("in_proj.weight"),
    convWeight: await r("conv1d.weight"),
    convBias: await r("conv1d.bias"),
    dtBias: await r("dt_bias"),
    aLog: await r("A_log"),
    D: await r("D"),
    norm: await r("norm.weight"),
    outProj: await r("out_proj.weight"),
  };
}

/**
 * The per-head operands from the in_proj output zxbcdt (B·T, 2·d_inner + 2·d_xb + H): the conv and
 * SiLU over x | B | C, dt's softplus, A = −exp(A_log)·dt, and the GQA repeat of x and B.
 */
export function mamba2InputsFromProjection(
  zxbcdt: ArrayLike<number>,
  w: Pick<Mamba2HostWeights, "convWeight" | "convBias" | "dtBias" | "aLog" | "D">,
  d: Mamba2Dims,
  shape: { batch: number; T: number; kvHeads: number },
): Mamba2MixerInputs {
  const { batch, T, kvHeads } = shape;
  const { dInner, dXb, nHeads: H, headDim: P, dState: N, convWidth: W } = d;
  const cols = 2 * dInner + 2 * dXb + H;
  const Cc = 2 * dXb + dInner;
  const R = batch * T;
  const xbcIn = new Float64Array(R * Cc);
  const z = new Float64Array(R * dInner);
  for (let r = 0; r < R; r++) {
    for (let j = 0; j < dInner; j++) z[r * dInner + j] = zxbcdt[r * cols + j];
    for (let j = 0; j < Cc; j++) xbcIn[r * Cc + j] = zxbcdt[r * cols + dInner + j];
  }
  const { y: xbc } = causalConv1dRef(xbcIn, w.convWeight, { B: batch, L: T, C: Cc, W }, {
    bias: w.convBias,
    activation: "silu",
  });
  const out: Mamba2MixerInputs = {
    dims: { batch, T, H, P, N },
    x: new Float64Array(R * H * P),
    z,
    A: new Float64Array(R * H),
    dt: new Float64Array(R * H),
    B: new Float64Array(R * H * N),
    C: new Float64Array(R * H * N),
    D: Float64Array.from(w.D),
  };
  // d_xb = H_kv·P: x and B hold H_kv heads, C holds H.
  if (dXb !== kvHeads * P || dXb !== kvHeads * N || dInner !== H * N) {
    throw new ShapeError(
      "mamba2Inputs",
      `d_xb ${dXb} must be kv heads ${kvHeads} × head dim ${P} (= d_state ${N}), d_inner ${dInner} = H ${H} × ${N}`,
    );
  }
  for (let r = 0; r < R; r++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h * kvHeads / H);
      const dt = softplus(zxbcdt[r * cols + cols - H + h] + w.dtBias[h]);
      out.dt[r * H + h] = dt;
      out.A[r * H + h] = -Math.exp(w.aLog[h]) * dt;
      for (let p = 0; p < P; p++) out.x[(r * H + h) * P + p] = xbc[r * Cc + g * P + p];
      for (let n = 0; n < N; n++) {
        out.B[(r * H + h) * N + n] = xbc[r * Cc + dXb + g * N + n];
        out.C[(r * H + h) * N + n] = xbc[r * Cc + 2 * dXb + h * N + n];
      }
    }
  }
  return out;
}

/** y (R, out) = x (R, in) Wᵀ for W (out, in), in float64. */
export function linearRef(
  x: ArrayLike<number>,
  W: ArrayLike<number>,
  inF: number,
  outF: number,
): Float64Array {
  const R = x.length / inF;
  const y = new Float64Array(R * outF);
  for (let r = 0; r < R; r++) {
    for (let o = 0; o < outF; o++) {
      let s = 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * W[o * inF + i];
      y[r * outF + o] = s;
    }
  }
  return y;
}

/** The per-head operands of a layer input u (B, T, d_model), every step on the host in float64. */
export function mamba2InputsRef(
  u: ArrayLike<number>,
  w: Mamba2HostWeights,
  d: Mamba2Dims,
  shape: { batch: number; T: number; kvHeads: number },
): Mamba2MixerInputs {
  const cols = 2 * d.dInner + 2 * d.dXb + d.nHeads;
  return mamba2InputsFromProjection(linearRef(u, w.inProj, d.dModel, cols), w, d, shape);
}
