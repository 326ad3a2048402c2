/**
 * Fixed-length windows over a token-id stream for next-token prediction: consecutive
 * non-overlapping windows for evaluation, random windows for training batches. A window of length
 * T reads T + 1 tokens: inputs are tokens s .. s+T-1, targets are tokens s+1 .. s+T.
 *
 * @module
 */

import { DataError } from "../errors.ts";
import type { Rng } from "../random.ts";

/** One window, or a batch of windows stored row-major. */
export interface Window {
  /** Input ids. */
  input: Int32Array;
  /** Target ids: the inputs shifted left by one token. */
  target: Int32Array;
}

function checkPositiveInt(where: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) {
    throw new DataError(where, `${name} must be a positive integer, got ${v}`);
  }
}

/** Number of consecutive non-overlapping evaluation windows of `seqLen` in `n` tokens: floor((n-1)/seqLen). */
export function evalWindowCount(n: number, seqLen: number): number {
  checkPositiveInt("evalWindowCount", "seqLen", seqLen);
  if (!Number.isInteger(n) || n < 0) {
    throw new DataError("evalWindowCount", `n must be an integer >= 0, got ${n}`);
  }
  return n === 0 ? 0 : Math.floor((n - 1) / seqLen);
}

/**
 * Evaluation window `i`: input `ids[i*seqLen, i*seqLen+seqLen)`, target the same range shifted by
 * one. Both are views into `ids` (no copy); copy them before mutating.
 */
export function evalWindow(ids: Int32Array, seqLen: number, i: number): Window {
  const count = evalWindowCount(ids.length, seqLen);
  if (!Number.isInteger(i) || i < 0 || i >= count) {
    throw new DataError(
      "evalWindow",
      `window ${i} out of range: ${count} windows of ${seqLen} in ${ids.length} ids`,
    );
  }
  const start = i * seqLen;
  return { input: ids.subarray(start, start + seqLen), target: ids.subarray(start + 1, start + seqLen + 1) };
}

/** Options of {@linkcode randomWindows}. */
export interface RandomWindowOptions {
  /** Rows in the batch (B). */
  batch: number;
  /** Tokens per row (T). */
  seqLen: number;
  /** Source of the random starts; advanced by `batch` draws. */
  rng: Rng;
}

/**
 * A training batch of `batch` random windows, B×T row-major: row b is `ids[s, s+T)` with target
 * `ids[s+1, s+T+1)`, for a start s drawn uniformly from [0, n-T-1]. Needs at least T+1 ids.
 */
export function randomWindows(ids: Int32Array, opts: RandomWindowOptions): Window {
  const { batch, seqLen, rng } = opts;
  checkPositiveInt("randomWindows", "batch", batch);
  checkPositiveInt("randomWindows", "seqLen", seqLen);
  if (ids.length < seqLen + 1) {
    throw new DataError("randomWindows", `need at least seqLen + 1 = ${seqLen + 1} ids, got ${ids.length}`);
  }
  const input = new Int32Array(batch * seqLen);
  const target = new Int32Array(batch * seqLen);
  const starts = ids.length - seqLen; // s in [0, n-T-1]
  for (let b = 0; b < batch; b++) {
    const s = rng.int(starts);
    input.set(ids.subarray(s, s + seqLen), b * seqLen);
    target.set(ids.subarray(s + 1, s + seqLen + 1), b * seqLen);
  }
  return { input, target };
}
