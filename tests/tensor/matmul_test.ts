import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { toF16 } from "../../lib/tensor/convert.ts";
import { dispatchCount } from "../../lib/gpu/commands.ts";
import {
  linear,
  matmul,
  matmulStrided,
  MATVEC_BLOCKED_MAX_ROWS,
  MATVEC_MAX_ROWS,
} from "../../lib/tensor/matmul.ts";
import { matmulRef } from "../../lib/tensor/matmul_ref.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();

Deno.test("matmul.wgsl: plain and transposed products match the reference, ragged tiles included", async () => {
  // M ≤ 8 takes the matvec entry, ≥ 64 tiles of 128×128 the main128v4 entry (vec4-aligned operands,
  // 2052×2048×12 without transA) or main128db (the rest), smaller products 64×64 tiles.
  const cases = [
    [5, 7, 3],
    [70, 130, 33],
    [64, 64, 64],
    [1, 300, 17],
    [8, 70, 257],
    [9, 70, 31],
    [129, 65, 80],
    [2050, 2049, 11],
    [2052, 2048, 12],
  ];
  for (const [M, N, K] of cases) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = randomArray(M * K, M + K);
        const b = randomArray(K * N, N + 7);
        using A = Tensor.from(a, transA ? [K, M] : [M, K]);
        using B = Tensor.from(b, transB ? [N, K] : [K, N]);
        using C = matmul(A, B, { transA, transB, alpha: 0.5 });
        const ref = matmulRef(a, b, { M, N, K, transA, transB, alpha: 0.5 });
        assertAllclose(await C.toArray(), ref, {
          atol: 1e-5,
          name: `${M}x${N}x${K} tA=${transA} tB=${transB}`,
        });
      }
    }
  }
});

Deno.test("matmul.wgsl: batched product with a shared right operand", async () => {
  const [Bt, M, N, K] = [3, 17, 20, 9];
  const a = randomArray(Bt * M * K, 1);
  const b = randomArray(K * N, 2);
  using A = Tensor.from(a, [Bt, M, K]);
  using B = Tensor.from(b, [K, N]);
  using C = matmul(A, B);
  const got = await C.toArray();
  for (let i = 0; i < Bt; i++) {
    const ref = matmulRef(a.subarray(i * M * K, (i + 1) * M * K), b, { M, N, K });
    assertAllclose(got.subarray(i * M * N, (i + 1) * M * N), ref, { name: `batch ${i}` });
  }
});

Deno.test("linear: a weight split into row blocks gives the same product as one block, with bias", async () => {
  const [M, N, K] = [10, 37, 24];
  const x = randomArray(M * K, 3);
  const w = randomArray(N * K, 4);
  const bias = randomArray(N, 5);
  using X = Tensor.from(x, [M, K]);
  using W = Tensor.from(w, [N, K]);
  using Bv = Tensor.from(bias, [N]);
  using whole = linear(X, { parts: [W], shape: [N, K] }, Bv);
  const ref = matmulRef(x, w, { M, N, K, transB: true }).map((v, i) => v + bias[i % N]);
  assertAllclose(await whole.toArray(), ref, { name: "linear with bias" });
  const parts = [0, 16, 32, 37].slice(1).map((hi, i, his) => {
    const lo = i === 0 ? 0 : his[i - 1];
    return Tensor.from(w.subarray(lo * K, hi * K), [hi - lo, K]);
  });
  using split = linear(X, { parts, shape: [N, K] });
  assertAllclose(await split.toArray(), matmulRef(x, w, { M, N, K, transB: true }), { name: "split weight" });
  for (const p of parts) p.dispose();
});

Deno.test("matmul.wgsl matvec_team: decoding-sized products with bias, batches and K past several team strides", async () => {
  // M ≤ 8 with W in (out, in) layout and K a multiple of 4 takes matvec_team (a team of invocations per
  // output: 16 lanes below K = 2048, 32 from 2048): K = 200 ends inside a team stride, K = 64 leaves
  // lanes idle, N = 33 and 37 end inside a workgroup's outputs; K = 1 and 13 take the scalar matvec.
  for (const [M, N, K] of [[1, 33, 1], [3, 33, 13], [8, 5, 200], [2, 1, 64], [5, 37, 2048]]) {
    await checkLinear(M, N, K, 1);
  }
  // batched, the right operand transposed and shared: (2, 4, K) × (N, K)ᵀ (K = 72: matvec_team)
  for (const K of [70, 72]) await checkBatchedShared(K);
});

/** linear (M, K) × W (N, K)ᵀ + bias against the reference; returns the dispatches linear recorded. */
async function checkLinear(M: number, N: number, K: number, seed: number): Promise<number> {
  const x = randomArray(M * K, M + N);
  const w = randomArray(N * K, K + seed);
  const bias = randomArray(N, 8 + seed);
  using X = Tensor.from(x, [M, K]);
  using W = Tensor.from(w, [N, K]);
  using Bv = Tensor.from(bias, [N]);
  const before = dispatchCount();
  using y = linear(X, { parts: [W], shape: [N, K] }, Bv);
  const dispatches = dispatchCount() - before;
  const ref = matmulRef(x, w, { M, N, K, transB: true }).map((v, i) => v + bias[i % N]);
  assertAllclose(await y.toArray(), ref, { atol: 1e-5, name: `linear ${M}x${N}x${K}` });
  return dispatches;
}

async function checkBatchedShared(K: number): Promise<void> {
  const [Bt, M, N] = [2, 4, 19];
  const a = randomArray(Bt * M * K, 11);
  const b = randomArray(N * K, 12);
  using A = Tensor.from(a, [Bt, M, K]);
  using B = Tensor.from(b, [N, K]);
  using C = matmul(A, B, { transB: true });
  const got = await C.toArray();
  for (let i = 0; i < Bt; i++) {
    const ref = matmulRef(a.subarray(i * M * K, (i + 1) * M * K), b, { M, N, K, transB: true });
    assertAllclose(got.subarray(i * M * N, (i + 1) * M * N), ref, { atol: 1e-5, name: `batch ${i}, K=${K}` });
  }
}

Deno.test("matmul: 9 to MATVEC_BLOCKED_MAX_ROWS rows go through team products on 8-row blocks (bias, batches, accumulation), as the reference; one row more is tiled", async () => {
  for (const [M, N, K] of [[9, 33, 200], [20, 37, 72], [MATVEC_BLOCKED_MAX_ROWS, 5, 2048], [33, 19, 64]]) {
    const dispatches = await checkLinear(M, N, K, 2);
    const blocks = M <= MATVEC_BLOCKED_MAX_ROWS ? Math.ceil(M / MATVEC_MAX_ROWS) : 1;
    assert.equal(dispatches, blocks, `${M} rows: ${blocks} dispatches`);
  }
  // batched (2, 12, K) × (N, K)ᵀ shared, then accumulated into with α = 0.5
  const [Bt, M, N, K] = [2, 12, 19, 72];
  const a = randomArray(Bt * M * K, 13);
  const b = randomArray(N * K, 14);
  using A = Tensor.from(a, [Bt, M, K]);
  using B = Tensor.from(b, [N, K]);
  using C = matmul(A, B, { transB: true });
  const ref = Array.from(
    { length: Bt },
    (_, i) => matmulRef(a.subarray(i * M * K, (i + 1) * M * K), b, { M, N, K, transB: true }),
  );
  assertAllclose(await C.toArray(), ref.flatMap((r) => Array.from(r)), { atol: 1e-5, name: "batched" });
  matmulStrided({
    M,
    N,
    K,
    batch: [1, Bt],
    a: { t: A, s1: M * K, rowStride: K, colStride: 1 },
    b: { t: B, s1: 0, rowStride: 1, colStride: K },
    c: { t: C, s1: M * N, rowStride: N, colStride: 1 },
    alpha: 0.5,
    accumulate: true,
  });
  assertAllclose(await C.toArray(), ref.flatMap((r) => Array.from(r, (v) => 1.5 * v)), {
    atol: 1e-5,
    name: "accumulated",
  });
});

Deno.test("matmul.wgsl matvec_team with an f16 weight (W_F16): x·Wᵀ equals the f32 product of W rounded to halves, bit for bit, in row blocks past 8 rows", async () => {
  // K = 64 (16 lanes, idle ones), 200 (ends inside a team stride), 2048 (32 lanes); M = 1, 3, 8 in one
  // product; M = 19 through linear's row blocks of 8; N = 37 ends inside a workgroup's outputs.
  for (const [M, N, K] of [[1, 37, 64], [3, 37, 200], [8, 5, 2048], [19, 37, 200]]) {
    const x = randomArray(M * K, 3 * M + K);
    const w = randomArray(N * K, N + K, 2);
    using X = Tensor.from(x, [M, K]);
    using W = Tensor.from(w, [N, K]);
    using Wh = toF16(W);
    assert.equal(Wh.dtype, "f16");
    const rounded = Float32Array.from(Float16Array.from(w));
    using Wr = Tensor.from(rounded, [N, K]);
    using half = linear(X, { parts: [Wh], shape: [N, K] });
    using full = linear(X, { parts: [Wr], shape: [N, K] });
    const got = await half.toArray();
    if (M <= 8) {
      assert.deepEqual(Array.from(got), Array.from(await full.toArray()), `${M}x${N}x${K}: bit for bit`);
    }
    assertAllclose(got, matmulRef(x, rounded, { M, N, K, transB: true }), {
      atol: 1e-5,
      name: `f16 W ${M}x${N}x${K}`,
    });
  }
  // Not a decoding product: K not a multiple of 4.
  using X = Tensor.from(randomArray(2 * 6, 1), [2, 6]);
  using W6 = Tensor.from(randomArray(3 * 6, 2), [3, 6]);
  using Wh = toF16(W6);
  assert.throws(
    () => linear(X, { parts: [Wh], shape: [3, 6] }),
    (e: unknown) => e instanceof ShapeError && /f16 weight takes x·Wᵀ/.test(e.message),
  );
});
