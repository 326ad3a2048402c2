/**
 * Plain-loop reference of `matmul` (float64 accumulation): the specification the kernel is tested
 * against.
 *
 * @module
 */

/** C = α·A·B for row-major A (M, K) and B (K, N), optionally transposed; returns (M, N). */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  dims: { M: number; N: number; K: number; transA?: boolean; transB?: boolean; alpha?: number },
): Float64Array {
  const { M, N, K } = dims;
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const av = dims.transA ? a[k * M + m] : a[m * K + k];
        const bv = dims.transB ? b[n * K + k] : b[k * N + n];
        s += av * bv;
      }
      out[m * N + n] = (dims.alpha ?? 1) * s;
    }
  }
  return out;
}
