import assert from "node:assert/strict";
import { Rng } from "../lib/random.ts";

Deno.test("Rng: xoshiro128** reference outputs from state [1, 2, 3, 4]", () => {
  const rng = Rng.fromState([1, 2, 3, 4]);
  const first = Array.from({ length: 8 }, () => rng.nextU32());
  assert.deepEqual(first, [11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849]);
  for (let i = 0; i < 992; i++) rng.nextU32();
  assert.equal(rng.nextU32(), 136054147); // output 1001 of the C reference
});

Deno.test("Rng: same seed, same stream; different seeds differ", () => {
  const draw = (seed: number) => {
    const r = new Rng(seed);
    return [r.nextU32(), r.uniform(), r.normal(), r.int(1000), r.uniformRange(-2, 3)];
  };
  assert.deepEqual(draw(42), draw(42));
  assert.notDeepEqual(draw(42), draw(43));
  assert.notDeepEqual(draw(0), draw(2 ** 32)); // high bits of the seed count
  assert.notDeepEqual(draw(1), draw(-1));
  assert.throws(() => new Rng(NaN), RangeError);
});

Deno.test("Rng: getState / fromState resume exactly, including a pending normal", () => {
  const a = new Rng(123);
  for (let i = 0; i < 10; i++) a.nextU32();
  a.normal(); // leaves its Box–Muller partner pending
  const state = a.getState();
  assert.equal(state.length, 5);
  const b = Rng.fromState(JSON.parse(JSON.stringify(state)));
  for (let i = 0; i < 50; i++) {
    assert.equal(b.normal(), a.normal());
    assert.equal(b.nextU32(), a.nextU32());
    assert.equal(b.int(17), a.int(17));
  }
  assert.equal(new Rng(5).getState().length, 4);
  assert.throws(() => Rng.fromState([0, 0, 0, 0]), RangeError);
  assert.throws(() => Rng.fromState([1, 2, 3]), RangeError);
  assert.throws(() => Rng.fromState([1, 2, 3, 2 ** 32]), RangeError);
  assert.throws(() => Rng.fromState([1, 2, 3, 4, NaN]), RangeError);
});

Deno.test("Rng: uniform and normal moments", () => {
  const rng = new Rng(2024);
  const n = 200_000;
  let s = 0, s2 = 0, lo = 1, hi = 0;
  for (let i = 0; i < n; i++) {
    const u = rng.uniform();
    s += u;
    s2 += u * u;
    lo = Math.min(lo, u);
    hi = Math.max(hi, u);
  }
  assert.ok(lo >= 0 && hi < 1);
  assert.ok(Math.abs(s / n - 0.5) < 0.005, `uniform mean ${s / n}`);
  assert.ok(Math.abs(s2 / n - (s / n) ** 2 - 1 / 12) < 0.002, `uniform var`);
  let m = 0, m2 = 0, m3 = 0, m4 = 0;
  for (let i = 0; i < n; i++) {
    const z = rng.normal();
    m += z;
    m2 += z * z;
    m3 += z ** 3;
    m4 += z ** 4;
  }
  assert.ok(Math.abs(m / n) < 0.01, `normal mean ${m / n}`);
  assert.ok(Math.abs(m2 / n - 1) < 0.02, `normal var ${m2 / n}`);
  assert.ok(Math.abs(m3 / n) < 0.05, `normal skew ${m3 / n}`);
  assert.ok(Math.abs(m4 / n - 3) < 0.1, `normal kurtosis ${m4 / n}`);
  for (let i = 0; i < 1000; i++) {
    const x = rng.uniformRange(-3, 5);
    assert.ok(x >= -3 && x < 5);
  }
  assert.throws(() => rng.uniformRange(2, 1), RangeError);
});

Deno.test("Rng: int is in range and unbiased; shuffle is a permutation", () => {
  const rng = new Rng(9);
  const counts = new Array(6).fill(0);
  for (let i = 0; i < 60_000; i++) counts[rng.int(6)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10_000) < 400, `counts ${counts}`);
  assert.equal(rng.int(1), 0);
  const big = rng.int(2 ** 32);
  assert.ok(Number.isInteger(big) && big >= 0 && big < 2 ** 32);
  for (const bad of [0, -1, 1.5, 2 ** 32 + 1, NaN]) assert.throws(() => rng.int(bad), RangeError);
  const arr = Array.from({ length: 50 }, (_, i) => i);
  const shuffled = rng.shuffle([...arr]);
  assert.notDeepEqual(shuffled, arr);
  assert.deepEqual([...shuffled].sort((a, b) => a - b), arr);
  assert.deepEqual(new Rng(3).shuffle([...arr]), new Rng(3).shuffle([...arr]));
  assert.deepEqual(rng.shuffle([]), []);
});
