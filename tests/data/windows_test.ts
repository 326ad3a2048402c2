import assert from "node:assert/strict";
import { DataError } from "../../lib/errors.ts";
import { evalWindow, evalWindowCount, randomWindows } from "../../lib/data/mod.ts";
import { Rng } from "../../lib/random.ts";

const ids = Int32Array.from({ length: 23 }, (_, i) => 100 + i);

Deno.test("evalWindowCount: floor((n-1)/seqLen)", () => {
  assert.equal(evalWindowCount(23, 5), 4);
  assert.equal(evalWindowCount(21, 5), 4);
  assert.equal(evalWindowCount(20, 5), 3);
  assert.equal(evalWindowCount(1, 5), 0);
  assert.equal(evalWindowCount(0, 5), 0);
  assert.equal(evalWindowCount(83_774, 256), 327);
  assert.throws(() => evalWindowCount(10, 0), DataError);
  assert.throws(() => evalWindowCount(-1, 4), DataError);
  assert.throws(() => evalWindowCount(10, 2.5), DataError);
});

Deno.test("evalWindow: consecutive non-overlapping windows, targets shifted by one", () => {
  const n = evalWindowCount(ids.length, 5);
  for (let i = 0; i < n; i++) {
    const { input, target } = evalWindow(ids, 5, i);
    assert.deepEqual([...input], [0, 1, 2, 3, 4].map((k) => 100 + 5 * i + k));
    assert.deepEqual([...target], [1, 2, 3, 4, 5].map((k) => 100 + 5 * i + k));
  }
  // The last window's final target is ids[20]; ids[21..22] are never read.
  assert.equal(evalWindow(ids, 5, 3).target[4], 120);
  assert.throws(() => evalWindow(ids, 5, 4), DataError);
  assert.throws(() => evalWindow(ids, 5, -1), DataError);
  assert.throws(() => evalWindow(ids, 5, 0.5), DataError);
});

Deno.test("randomWindows: B x T row-major, target = input shifted, starts cover [0, n-T-1]", () => {
  const rng = new Rng(7);
  const seen = new Set<number>();
  for (let step = 0; step < 200; step++) {
    const { input, target } = randomWindows(ids, { batch: 3, seqLen: 5, rng });
    assert.equal(input.length, 15);
    assert.equal(target.length, 15);
    for (let b = 0; b < 3; b++) {
      const s = input[b * 5] - 100;
      seen.add(s);
      for (let t = 0; t < 5; t++) {
        assert.equal(input[b * 5 + t], 100 + s + t);
        assert.equal(target[b * 5 + t], 100 + s + t + 1);
      }
    }
  }
  assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 18 }, (_, i) => i)); // 0..n-T-1 = 17
  // Deterministic given the RNG state.
  const a = randomWindows(ids, { batch: 4, seqLen: 6, rng: new Rng(1) });
  const b = randomWindows(ids, { batch: 4, seqLen: 6, rng: new Rng(1) });
  assert.deepEqual(a, b);
});

Deno.test("randomWindows: argument validation", () => {
  const rng = new Rng(0);
  assert.deepEqual(
    randomWindows(ids.subarray(0, 6), { batch: 2, seqLen: 5, rng }).input,
    Int32Array.from([100, 101, 102, 103, 104, 100, 101, 102, 103, 104]),
  );
  assert.throws(() => randomWindows(ids.subarray(0, 5), { batch: 1, seqLen: 5, rng }), DataError);
  assert.throws(() => randomWindows(ids, { batch: 0, seqLen: 5, rng }), DataError);
  assert.throws(() => randomWindows(ids, { batch: 1, seqLen: 0, rng }), DataError);
  assert.throws(() => randomWindows(ids, { batch: 1.5, seqLen: 4, rng }), DataError);
});
