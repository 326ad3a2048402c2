/**
 * Float64 plain-loop reference of the Mamba-1 mixer ({@linkcode mamba1Forward}'s twin), from the
 * checkpoint's host tensors, written directly from `mamba/hybrid_mamba_layer.py`'s forward:
 * projections as row-major products, x repeated in blocks of d_state before the conv, B blocks
 * repeated to the C groups, then the reference selective scan (`selective_scan_ref`).
 *
 * @module
 */
import { causalConv1dRef } from "../ssm/conv1d_ref.ts";
import { selectiveScanRef } from "../ssm/selective_scan_ref.ts";
import type { Mamba1Dims } from "../distill/convert_mamba1.ts";

/** Host tensors of one mixer, by their names under `mamba.` (e.g. "in_proj_x.weight"). */
export type Mamba1HostWeights = Record<string, ArrayLike<number>>;

/** y (R, out) = x (R, in) Wᵀ (+ b), W (out, in). */
function project(
  x: ArrayLike<number>,
  R: number,
  W: ArrayLike<number>,
  out: number,
  bias?: ArrayLike<number>,
) {
  const inF = W.length / out;
  const y = new Float64Array(R * out);
  for (let i = 0; i < R; i++) {
    for (let o = 0; o < out; o++) {
      let s = bias ? bias[o] : 0;
      for (let j = 0; j < inF; j++) s += x[i * inF + j] * W[o * inF + j];
      y[i * out + o] = s;
    }
  }
  return y;
}

/** The mixer's output (B, L, d_model) for u (B, L, d_model), in float64. */
export function mamba1ForwardRef(
  u: ArrayLike<number>,
  sizes: { B: number; L: number },
  w: Mamba1HostWeights,
  d: Mamba1Dims,
): Float64Array {
  const { B, L } = sizes;
  const { dModel, dInner: D, dXb, dState: N, dtRank } = d;
  const R = B * L;
  const r = D / dXb;
  const G = D / N;
  const x0 = project(u, R, w["in_proj_x.weight"], dXb);
  // repeat_kv on blocks of N before the conv: channel d reads x block ⌊d/(N·r)⌋, row d mod N.
  const xr = new Float64Array(R * D);
  for (let i = 0; i < R; i++) {
    for (let c = 0; c < D; c++) xr[i * D + c] = x0[i * dXb + Math.floor(c / (N * r)) * N + (c % N)];
  }
  const xc = causalConv1dRef(xr, w["conv1d.weight"], { B, L, C: D, W: d.convWidth }, {
    bias: w["conv1d.bias"],
    activation: "silu",
  }).y;
  const z = project(u, R, w["in_proj_z.weight"], D);
  const b0 = project(u, R, w["B_proj.weight"], dXb);
  const c0 = project(u, R, w["C_proj.weight"], D);
  const low = project(u, R, w["dt_proj_down.weight"], dtRank);
  const dt = project(low, R, w["dt_proj.weight"], D, w["dt_proj.bias"]);
  const first = (a: Float64Array) => {
    const o = new Float64Array(R * D);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < L; t++) for (let c = 0; c < D; c++) o[(b * D + c) * L + t] = a[(b * L + t) * D + c];
    }
    return o;
  };
  // B (B, G, N, L): group j reads B_proj block ⌊j/r⌋; C (B, G, N, L): group j reads C_proj block j.
  const Bg = new Float64Array(B * G * N * L);
  const Cg = new Float64Array(B * G * N * L);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < G; j++) {
      for (let n = 0; n < N; n++) {
        for (let t = 0; t < L; t++) {
          const o = ((b * G + j) * N + n) * L + t;
          Bg[o] = b0[(b * L + t) * dXb + Math.floor(j / r) * N + n];
          Cg[o] = c0[(b * L + t) * D + j * N + n];
        }
      }
    }
  }
  const A = Array.from(w["A_log"], (v) => -Math.exp(v));
  const { y } = selectiveScanRef({
    dims: { batch: B, D, L, N, G },
    u: first(xc),
    delta: first(dt),
    A,
    B: Bg,
    C: Cg,
    D: w["D"],
    z: first(z),
    deltaBias: w["dt_proj.bias"],
  }, { deltaSoftplus: true });
  const yl = new Float64Array(R * D);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) for (let c = 0; c < D; c++) yl[(b * L + t) * D + c] = y[(b * D + c) * L + t];
  }
  return project(yl, R, w["out_proj.weight"], dModel);
}
