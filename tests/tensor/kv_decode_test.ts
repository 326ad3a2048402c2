import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import type { RopeConfig } from "../../lib/io/config.ts";
import { decodeAttention, ropeAppend } from "../../lib/tensor/kv_decode.ts";
import { attentionRef, ropeRef } from "../../lib/tensor/ops_ref.ts";
import { ropeInverseFrequencies, RopeTable } from "../../lib/tensor/rope.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();

const ROPE: RopeConfig = {
  type: "default",
  theta: 10000,
  factor: 1,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositionEmbeddings: 512,
};
const TOL = { rtol: 2e-4, atol: 2e-5 };

/**
 * A cache (1, cap, Hkv, P) holding random keys/values at positions < pos0, then L new tokens appended at
 * pos0 = counts[1] + offset by ropeAppend and attended by decodeAttention; everything against the float64
 * references on the first pos0 + L positions.
 */
async function check(
  d: { L: number; Hq: number; Hkv: number; P: number; cap: number; base: number; offset: number },
) {
  const { L, Hq, Hkv, P, cap, base, offset } = d;
  const pos0 = base + offset;
  const row = Hkv * P;
  const kPast = randomArray(cap * row, 1);
  const vPast = randomArray(cap * row, 2);
  const q0 = randomArray(L * Hq * P, 3);
  const k0 = randomArray(L * row, 4);
  const v0 = randomArray(L * row, 5);
  using table = new RopeTable(ROPE, P, 512);
  using cacheK = Tensor.from(kPast, [1, cap, Hkv, P]);
  using cacheV = Tensor.from(vPast, [1, cap, Hkv, P]);
  using counts = Tensor.from([-7, base], [2], "i32"); // word 1 is the position
  using tq0 = Tensor.from(q0, [1, L, Hq, P]);
  using tk0 = Tensor.from(k0, [1, L, Hkv, P]);
  using tv0 = Tensor.from(v0, [1, L, Hkv, P]);
  const pos = { counts, word: 1, offset };
  const cache = { k: cacheK, v: cacheV };
  using q = ropeAppend(tq0, tk0, tv0, table, cache, pos);
  using out = decodeAttention(q, cache, pos);
  const inv = ropeInverseFrequencies(ROPE, P);
  const wantQ = ropeRef(q0, [1, L, Hq, P], inv, pos0);
  const wantK = ropeRef(k0, [1, L, Hkv, P], inv, pos0);
  assertAllclose(await q.toArray(), wantQ, { ...TOL, name: "rotated q" });
  const [gk, gv] = [await cacheK.toArray(), await cacheV.toArray()];
  // The cache: the past untouched, the new positions rotated keys and plain values, the rest untouched.
  const S = pos0 + L;
  const K = Float64Array.from(kPast.subarray(0, S * row));
  const V = Float64Array.from(vPast.subarray(0, S * row));
  K.set(wantK, pos0 * row);
  V.set(v0, pos0 * row);
  assertAllclose(gk.subarray(0, S * row), K, { ...TOL, name: "cache k" });
  assertAllclose(gv.subarray(0, S * row), V, { ...TOL, name: "cache v" });
  assert.deepEqual(
    Array.from(gk.subarray(S * row)),
    Array.from(kPast.subarray(S * row)),
    "k past the length",
  );
  const want = attentionRef(Float64Array.from(wantQ), K, V, { B: 1, L, S, Hq, Hkv, P });
  assertAllclose(await out.toArray(), want.out, { ...TOL, name: "attention" });
}

Deno.test("kv_decode.wgsl: rope_append and attend at a position read from the GPU equal RoPE + causal GQA attention (float64)", async () => {
  await check({ L: 3, Hq: 4, Hkv: 2, P: 8, cap: 16, base: 5, offset: 2 });
  await check({ L: 1, Hq: 2, Hkv: 2, P: 16, cap: 8, base: 0, offset: 0 });
  await check({ L: 2, Hq: 4, Hkv: 1, P: 8, cap: 12, base: 6, offset: -1 }); // a draft one token behind
  // V summed by 256 / P groups: P = 24 leaves 16 invocations idle, P = 64 has 4 groups over 40 keys.
  await check({ L: 2, Hq: 2, Hkv: 1, P: 24, cap: 40, base: 30, offset: 0 });
  await check({ L: 1, Hq: 2, Hkv: 2, P: 64, cap: 48, base: 39, offset: 0 });
});

Deno.test("kv_decode.wgsl attend: more than 256 keys (several tiles of the exp-sum)", async () => {
  await check({ L: 2, Hq: 2, Hkv: 1, P: 4, cap: 320, base: 300, offset: 1 });
  await check({ L: 1, Hq: 1, Hkv: 1, P: 32, cap: 520, base: 505, offset: 0 }); // 506 keys: two tiles, 8 groups
});

Deno.test("kv_decode: bad position words and shapes are ShapeErrors", () => {
  using table = new RopeTable(ROPE, 8, 32);
  using c = Tensor.zeros([1, 8, 2, 8]);
  using q0 = Tensor.zeros([1, 1, 4, 8]);
  using k0 = Tensor.zeros([1, 1, 2, 8]);
  using f = Tensor.zeros([2]);
  using i = Tensor.zeros([2], "i32");
  const cache = { k: c, v: c };
  assert.throws(() => ropeAppend(q0, k0, k0, table, cache, { counts: f, word: 0, offset: 0 }), ShapeError);
  assert.throws(() => ropeAppend(q0, k0, k0, table, cache, { counts: i, word: 2, offset: 0 }), ShapeError);
  assert.throws(() => ropeAppend(q0, q0, k0, table, cache, { counts: i, word: 0, offset: 0 }), ShapeError);
  using q3 = Tensor.zeros([1, 1, 3, 8]);
  assert.throws(() => decodeAttention(q3, cache, { counts: i, word: 0, offset: 0 }), ShapeError);
});
