/**
 * The one numeric comparison of the test suite: max absolute / relative error and the first failing
 * index, and a guard against kernels that wrote nothing (NaN-prefilled or all-zero outputs).
 *
 * @module
 */
import assert from "node:assert/strict";
import { Rng } from "../lib/random.ts";

/** Tolerances: |a − e| ≤ atol + rtol · |e| element-wise. */
export interface Tolerance {
  atol?: number;
  rtol?: number;
}

/** Asserts `actual` ≈ `expected` element-wise, reporting max abs/rel error and the first failure. */
export function assertAllclose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance & { name?: string } = {},
): { maxAbs: number; maxRel: number } {
  const { atol = 1e-5, rtol = 1e-4, name = "values" } = tol;
  assert.equal(actual.length, expected.length, `${name}: length ${actual.length} ≠ ${expected.length}`);
  let maxAbs = 0;
  let maxRel = 0;
  let first = -1;
  let nonzero = false;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (a !== 0) nonzero = true;
    const d = Math.abs(a - e);
    if (!Number.isFinite(a) && a !== e) {
      if (first < 0) first = i;
      continue;
    }
    maxAbs = Math.max(maxAbs, d);
    if (e !== 0) maxRel = Math.max(maxRel, d / Math.abs(e));
    if (d > atol + rtol * Math.abs(e) && first < 0) first = i;
  }
  const expectNonzero = Array.prototype.some.call(expected, (e: number) => e !== 0);
  assert.ok(!expectNonzero || nonzero, `${name}: all zeros (did the kernel write anything?)`);
  assert.ok(
    first < 0,
    `${name}: mismatch at index ${first}: got ${actual[first]}, expected ${expected[first]} ` +
      `(max abs err ${maxAbs.toExponential(2)}, max rel err ${
        maxRel.toExponential(2)
      }, atol ${atol}, rtol ${rtol})`,
  );
  return { maxAbs, maxRel };
}

/** Seeded uniform values in [-scale, scale), from the project's {@linkcode Rng}. */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.uniformRange(-scale, scale));
}
