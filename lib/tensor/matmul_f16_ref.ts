/**
 * Plain-loop reference of `matmulF16`: the inputs rounded to f16 (nearest, ties to even, as torch's
 * `.half()`), then the product in float64. The specification `kernels/matmul_f16.wgsl` is tested against.
 *
 * @module
 */
import { matmulRef } from "./matmul_ref.ts";

/** Each value rounded to the nearest IEEE half (ties to even), as a float64 array. */
export function roundToF16(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => Math.f16round(v));
}

/** C = α·f16(A)·f16(B) in float64 for row-major A (M, K) and B (K, N), optionally transposed; (M, N). */
export function matmulF16Ref(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  dims: { M: number; N: number; K: number; transA?: boolean; transB?: boolean; alpha?: number },
): Float64Array {
  return matmulRef(roundToF16(a), roundToF16(b), dims);
}
