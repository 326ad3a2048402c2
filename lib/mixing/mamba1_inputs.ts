/**
 * What a MambaInLlama Mamba-1 layer feeds its selective scan for a given layer input (method.md §3.3),
 * in float64 on the host: the operands of its per-channel mixing matrices (`mamba1MixingRef`).
 *
 *   x = silu(conv1d(repeat(in_proj_x(u))))   x block ⌊d/(N·r)⌋, row d mod N for channel d (r = d_inner/d_xb)
 *   z = in_proj_z(u);  C group j = C_proj(u) block j;  B group j = B_proj(u) block ⌊j/r⌋
 *   δ_raw = dt_proj(dt_proj_down(u)) (with dt_proj's bias), Δ = softplus(δ_raw + dt_proj.bias)
 *   y_d = M_d u_d with M_d[t][s] = Σ_n C_t[n] B_s[n] exp(Σ_{s<r≤t} Δ_r A[d,n]) Δ_s + D[d]·[t = s]
 *   out = out_proj(y ⊙ silu(z))
 *
 * As in the reference, dt_proj's bias enters twice (the Linear and the scan's δ bias). Layouts are the
 * selective scan's: u, δ, z (B, D, T); A (D, N); B, C (B, G, N, T) with G = d_inner / N.
 *
 * @module
 */
import type { Mamba1Dims } from "../distill/convert_mamba1.ts";
import { causalConv1dRef } from "../ssm/conv1d_ref.ts";
import { linearRef } from "./mamba2_inputs.ts";
import type { Mamba1MixInputs } from "./mixing_ref.ts";

/** The projections of the layer input, rows (B·T) row-major: what the GPU computes for us. */
export interface Mamba1Projections {
  /** in_proj_x(u) (B·T, d_xb). */
  x0: ArrayLike<number>;
  /** in_proj_z(u) (B·T, d_inner). */
  z: ArrayLike<number>;
  /** B_proj(u) (B·T, d_xb). */
  b0: ArrayLike<number>;
  /** C_proj(u) (B·T, d_inner). */
  c0: ArrayLike<number>;
  /** dt_proj(dt_proj_down(u)) + dt_proj.bias (B·T, d_inner). */
  dt: ArrayLike<number>;
}

/** The small host tensors the glue needs (names as under `mamba.`). */
export interface Mamba1SmallWeights {
  /** conv1d weight (d_inner, W). */
  convWeight: ArrayLike<number>;
  /** conv1d bias (d_inner). */
  convBias: ArrayLike<number>;
  /** dt_proj.bias (d_inner), the scan's δ bias. */
  dtBias: ArrayLike<number>;
  /** A_log (d_inner, N). */
  aLog: ArrayLike<number>;
  /** Skip D (d_inner). */
  D: ArrayLike<number>;
}

/** Operands of a Mamba-1 layer's mixing matrices, plus the scan input u and gate z (B, D, T). */
export interface Mamba1LayerOperands extends Mamba1MixInputs {
  /** The scan input silu(conv(x)) (B, D, T). */
  u: Float64Array;
  /** The gate z (B, D, T). */
  z: Float64Array;
}

/** From the projections to the scan's operands: repeat, conv, SiLU, group gathers, layouts. */
export function mamba1InputsFromProjections(
  p: Mamba1Projections,
  w: Mamba1SmallWeights,
  d: Mamba1Dims,
  shape: { batch: number; T: number },
): Mamba1LayerOperands {
  const { batch, T } = shape;
  const { dInner: D, dXb, dState: N } = d;
  const R = batch * T;
  const r = D / dXb;
  const G = D / N;
  const xr = new Float64Array(R * D);
  for (let i = 0; i < R; i++) {
    for (let c = 0; c < D; c++) xr[i * D + c] = p.x0[i * dXb + Math.floor(c / (N * r)) * N + (c % N)];
  }
  const xc = causalConv1dRef(xr, w.convWeight, { B: batch, L: T, C: D, W: d.convWidth }, {
    bias: w.convBias,
    activation: "silu",
  }).y;
  const first = (a: ArrayLike<number>) => {
    const o = new Float64Array(R * D);
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < T; t++) for (let c = 0; c < D; c++) o[(b * D + c) * T + t] = a[(b * T + t) * D + c];
    }
    return o;
  };
  const B = new Float64Array(batch * G * N * T);
  const C = new Float64Array(batch * G * N * T);
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < G; j++) {
      for (let n = 0; n < N; n++) {
        for (let t = 0; t < T; t++) {
          const o = ((b * G + j) * N + n) * T + t;
          B[o] = p.b0[(b * T + t) * dXb + Math.floor(j / r) * N + n];
          C[o] = p.c0[(b * T + t) * D + j * N + n];
        }
      }
    }
  }
  return {
    dims: { batch, D, T, N, G },
    delta: first(p.dt),
    A: Float64Array.from(w.aLog, (v) => -Math.exp(v)),
    B,
    C,
    D: Float64Array.from(w.D),
    deltaBias: Float64Array.from(w.dtBias),
    deltaSoftplus: true,
    u: first(xc),
    z: first(p.z),
  };
}

/** The operands for a layer input u (B, T, d_model), every product on the host (the twin of the GPU path). */
export function mamba1InputsRef(
  u: ArrayLike<number>,
  w: Record<string, ArrayLike<number>>,
  d: Mamba1Dims,
  shape: { batch: number; T: number },
): Mamba1LayerOperands {
  const low = linearRef(u, w["dt_proj_down.weight"], d.dModel, d.dtRank);
  const dt = linearRef(low, w["dt_proj.weight"], d.dtRank, d.dInner).map((v, i) =>
    v + w["dt_proj.bias"][i % d.dInner]
  );
  return mamba1InputsFromProjections(
    {
      x0: linearRef(u, w["in_proj_x.weight"], d.dModel, d.dXb),
      z: linearRef(u, w["in_proj_z.weight"], d.dModel, d.dInner),
      b0: linearRef(u, w["B_proj.weight"], d.dModel, d.dXb),
      c0: linearRef(u, w["C_proj.weight"], d.dModel, d.dInner),
      dt,
    },
    {
      convWeight: w["conv1d.weight"],
      convBias: w["conv1d.bias"],
      dtBias: w["dt_proj.bias"],
      aLog: w["A_log"],
      D: w["D"],
    },
    d,
    shape,
  );
}
