/**
 * Scalar helpers of the mixing references (module-private: not re-exported by `mod.ts`).
 *
 * @module
 */

/** softplus with the threshold of torch and the CUDA kernels (x above 20), as the scans use it. */
export function softplus(x: number): number {
  return x > 20 ? x : Math.log1p(Math.exp(x));
}
