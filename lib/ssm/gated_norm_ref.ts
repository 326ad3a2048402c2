/**
 * The gated RMSNorm of Mamba-2 layers as plain loops in float64: the specification that
 * `kernels/gated_norm.wgsl` is tested against. Ground truth: `rms_norm_ref` of state-spaces/mamba
 * `mamba_ssm/ops/triton/layernorm_gated.py` with `norm_before_gate=False` (method.md §2.2):
 *
 *   g = x · silu(z)
 *   r = rsqrt(mean_{d in group} g² + ε)      per group of `groupSize` consecutive channels
 *   y = g · r · w
 *
 * Rows are everything but the last dimension D = G · groupSize; w is (D).
 *
 * @module
 */

/** Options of the gated RMSNorm: ε (inside the square root) and the group size (default D). */
export interface GatedNormRefOptions {
  eps: number;
  groupSize?: number;
}

function sigmoid(v: number): number {
  return 1 / (1 + Math.exp(-v));
}

/** y (R, D) for x, z (R, D) and w (D). */
export function gatedRmsNormRef(
  x: ArrayLike<number>,
  z: ArrayLike<number>,
  w: ArrayLike<number>,
  D: number,
  o: GatedNormRefOptions,
): Float64Array {
  const gs = o.groupSize ?? D;
  const y = new Float64Array(x.length);
  const g = new Float64Array(gs);
  for (let base = 0; base < x.length; base += gs) {
    let ss = 0;
    for (let j = 0; j < gs; j++) {
      const zz = z[base + j];
      g[j] = x[base + j] * zz * sigmoid(zz);
      ss += g[j] * g[j];
    }
    const r = 1 / Math.sqrt(ss / gs + o.eps);
    for (let j = 0; j < gs; j++) y[base + j] = g[j] * r * w[(base + j) % D];
  }
  return y;
}

/**
 * Gradients of Σ y · dy: dx, dz (R, D) and dw (D). With du = dy · w and per group
 * dg = r · du − g · r³ · mean(du · g), then dx = dg · silu(z), dz = dg · x · silu'(z),
 * silu'(z) = σ(z)(1 + z(1 − σ(z))), and dw = Σ_rows dy · g · r.
 */
export function gatedRmsNormBackwardRef(
  x: ArrayLike<number>,
  z: ArrayLike<number>,
  w: ArrayLike<number>,
  dy: ArrayLike<number>,
  D: number,
  o: GatedNormRefOptions,
): { x: Float64Array; z: Float64Array; weight: Float64Array } {
  const gs = o.groupSize ?? D;
  const dx = new Float64Array(x.length);
  const dz = new Float64Array(x.length);
  const dw = new Float64Array(D);
  const g = new Float64Array(gs);
  for (let base = 0; base < x.length; base += gs) {
    let ss = 0;
    let sdg = 0;
    for (let j = 0; j < gs; j++) {
      const zz = z[base + j];
      g[j] = x[base + j] * zz * sigmoid(zz);
      ss += g[j] * g[j];
      sdg += dy[base + j] * w[(base + j) % D] * g[j];
    }
    const r = 1 / Math.sqrt(ss / gs + o.eps);
    const m = sdg / gs;
    for (let j = 0; j < gs; j++) {
      const d = (base + j) % D;
      const dg = r * dy[base + j] * w[d] - g[j] * r * r * r * m;
      const zz = z[base + j];
      const sz = sigmoid(zz);
      dx[base + j] = dg * zz * sz;
      dz[base + j] = dg * x[base + j] * sz * (1 + zz * (1 - sz));
      dw[d] += dy[base + j] * g[j] * r;
    }
  }
  return { x: dx, z: dz, weight: dw };
}
