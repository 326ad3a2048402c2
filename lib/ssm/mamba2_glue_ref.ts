/**
 * The element-wise steps of a Mamba-2 layer as plain float64 loops: the specification that
 * `kernels/mamba2_glue.wgsl` and `kernels/mamba2_glue_bwd.wgsl` are tested against (method.md §3.2,
 * MambaInLlama `mamba2/hybrid_mamba_layer.py`). Layouts and names as in `mamba2_glue.ts`; here dt_raw
 * is always its own (R, H) array.
 *
 *   dt = softplus(dt_raw + dt_bias)            softplus(v) = v above 20, as the official kernels
 *   X[h, p] = x[g, p] · dt[h],  A[h] = −exp(A_log[h]) · dt[h],  B_h[h] = B[g],  C_h[h] = C[h]
 *   y[h, p] = Y[h, p] + D[h] · x[g, p]          with g = ⌊h·H_kv/H⌋
 *
 * @module
 */

/** Head counts and widths: H heads of dim P, H_kv kv heads, state size N. */
export interface GlueRefDims {
  H: number;
  Hkv: number;
  P: number;
  N: number;
}

/** softplus with the official kernels' threshold (v above 20 is returned as is). */
export function softplusRef(v: number): number {
  return v > 20 ? v : Math.log1p(Math.exp(v));
}

function sigmoid(v: number): number {
  return 1 / (1 + Math.exp(-v));
}

const kvOf = (d: GlueRefDims, h: number) => Math.floor(h * d.Hkv / d.H);
const width = (d: GlueRefDims) => 2 * d.Hkv * d.P + d.H * d.N;

/** Columns [col0, col0 + n) of rows of `cols` values. */
export function sliceColumnsRef(src: ArrayLike<number>, cols: number, col0: number, n: number): Float64Array {
  const R = src.length / cols;
  const out = new Float64Array(R * n);
  for (let r = 0; r < R; r++) for (let j = 0; j < n; j++) out[r * n + j] = src[r * cols + col0 + j];
  return out;
}

/** X (R, H, P), A (R, H), B and C (R, H, N) from xBC (R, C_xbc) and dt_raw (R, H). */
export function ssdInputsRef(
  xbc: ArrayLike<number>,
  dtRaw: ArrayLike<number>,
  dtBias: ArrayLike<number>,
  aLog: ArrayLike<number>,
  d: GlueRefDims,
): { X: Float64Array; A: Float64Array; B: Float64Array; C: Float64Array } {
  const { H, Hkv, P, N } = d;
  const W = width(d);
  const R = xbc.length / W;
  const X = new Float64Array(R * H * P);
  const A = new Float64Array(R * H);
  const B = new Float64Array(R * H * N);
  const C = new Float64Array(R * H * N);
  for (let r = 0; r < R; r++) {
    for (let h = 0; h < H; h++) {
      const g = kvOf(d, h);
      const dt = softplusRef(dtRaw[r * H + h] + dtBias[h]);
      for (let p = 0; p < P; p++) X[(r * H + h) * P + p] = xbc[r * W + g * P + p] * dt;
      A[r * H + h] = -Math.exp(aLog[h]) * dt;
      for (let n = 0; n < N; n++) {
        B[(r * H + h) * N + n] = xbc[r * W + Hkv * P + g * N + n];
        C[(r * H + h) * N + n] = xbc[r * W + 2 * Hkv * P + h * N + n];
      }
    }
  }
  return { X, A, B, C };
}

/**
 * Gradients of Σ X·dX + Σ A·dA + Σ B·dB + Σ C·dC with respect to xBC, dt_raw, dt_bias and A_log:
 * d dt = Σ_p dX·x_g + dA·(−exp(A_log)), d dt_raw = d dt · σ(dt_raw + dt_bias), d dt_bias = Σ_rows d dt_raw,
 * d A_log = Σ_rows dA · A, d x_g = Σ_{h in g} dX·dt, d B_g = Σ_{h in g} dB_h, d C = dC.
 */
export function ssdInputsBackwardRef(
  xbc: ArrayLike<number>,
  dtRaw: ArrayLike<number>,
  dtBias: ArrayLike<number>,
  aLog: ArrayLike<number>,
  grads: { X: ArrayLike<number>; A: ArrayLike<number>; B: ArrayLike<number>; C: ArrayLike<number> },
  d: GlueRefDims,
): { xbc: Float64Array; dtRaw: Float64Array; dtBias: Float64Array; aLog: Float64Array } {
  const { H, Hkv, P, N } = d;
  const W = width(d);
  const R = xbc.length / W;
  const dxbc = new Float64Array(R * W);
  const ddtRaw = new Float64Array(R * H);
  const ddtBias = new Float64Array(H);
  const daLog = new Float64Array(H);
  for (let r = 0; r < R; r++) {
    for (let h = 0; h < H; h++) {
      const g = kvOf(d, h);
      const raw = dtRaw[r * H + h] + dtBias[h];
      const dt = softplusRef(raw);
      const a = -Math.exp(aLog[h]);
      let ddt = grads.A[r * H + h] * a;
      for (let p = 0; p < P; p++) {
        const dX = grads.X[(r * H + h) * P + p];
        ddt += dX * xbc[r * W + g * P + p];
        dxbc[r * W + g * P + p] += dX * dt;
      }
      // softplus'(v) = σ(v); above the threshold softplus is the identity (σ(v) ≈ 1 there too).
      const dr = ddt * (raw > 20 ? 1 : sigmoid(raw));
      ddtRaw[r * H + h] = dr;
      ddtBias[h] += dr;
      daLog[h] += grads.A[r * H + h] * a * dt;
      for (let n = 0; n < N; n++) {
        dxbc[r * W + Hkv * P + g * N + n] += grads.B[(r * H + h) * N + n];
        dxbc[r * W + 2 * Hkv * P + h * N + n] += grads.C[(r * H + h) * N + n];
      }
    }
  }
  return { xbc: dxbc, dtRaw: ddtRaw, dtBias: ddtBias, aLog: daLog };
}

/** y = Y + D · x_g for Y (R, H, P) and xBC (R, C_xbc). */
export function addSkipRef(
  Y: ArrayLike<number>,
  xbc: ArrayLike<number>,
  D: ArrayLike<number>,
  d: GlueRefDims,
): Float64Array {
  const { H, P } = d;
  const W = width(d);
  const R = xbc.length / W;
  const y = Float64Array.from(Y);
  for (let r = 0; r < R; r++) {
    for (let h = 0; h < H; h++) {
      for (let p = 0; p < P; p++) y[(r * H + h) * P + p] += D[h] * xbc[r * W + kvOf(d, h) * P + p];
    }
  }
  return y;
}

/** Gradients of Σ y · dy for {@linkcode addSkipRef}: xBC (x columns only) and D; dY passes through. */
export function addSkipBackwardRef(
  xbc: ArrayLike<number>,
  D: ArrayLike<number>,
  dY: ArrayLike<number>,
  d: GlueRefDims,
): { xbc: Float64Array; D: Float64Array } {
  const { H, P } = d;
  const W = width(d);
  const R = xbc.length / W;
  const dxbc = new Float64Array(R * W);
  const dD = new Float64Array(H);
  for (let r = 0; r < R; r++) {
    for (let h = 0; h < H; h++) {
      const x0 = r * W + kvOf(d, h) * P;
      for (let p = 0; p < P; p++) {
        const g = dY[(r * H + h) * P + p];
        dD[h] += g * xbc[x0 + p];
        dxbc[x0 + p] += D[h] * g;
      }
    }
  }
  return { xbc: dxbc, D: dD };
}
