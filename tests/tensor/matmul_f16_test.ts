import assert from "node:assert/strict";
import { gpu, initGpu } from "../../lib/gpu/device.ts";
import {
  F16_ALIGNED_ENTRIES,
  matmulF16,
  matmulF16Strided,
  toF16,
  useF16AlignedEntry,
} from "../../lib/tensor/matmul_f16.ts";
import { matmulF16Ref, roundToF16 } from "../../lib/tensor/matmul_f16_ref.ts";
import { matmulRef } from "../../lib/tensor/matmul_ref.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();
const ignore = !gpu().hasF16;
if (ignore) {
  console.warn("matmul_f16_test: this adapter has no shader-f16 feature; the f16 tests are skipped");
}

Deno.test({
  name: "convert.wgsl narrow_f16: f32 → f16 on the GPU rounds to nearest, ties to even (as torch .half())",
  ignore,
  async fn() {
    // random values, exact halves, ties between two halves (1 + 2⁻¹¹ lies halfway between 1 and 1 + 2⁻¹⁰,
    // rounding to even gives 1; 1 + 3·2⁻¹¹ gives 1 + 2⁻⁹), subnormals, an odd count (last word half-filled)
    const x = Float32Array.from([
      ...randomArray(999, 11, 3),
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      -(1 + 2 ** -11),
      2 ** -20,
      65504,
      0.1,
    ]);
    using t = Tensor.from(x, [x.length]);
    using h = toF16(t);
    assert.equal(h.dtype, "f16");
    assert.equal(h.byteLength, Math.ceil(x.length / 2) * 4);
    const got = await h.toArray();
    const want = roundToF16(x);
    for (let i = 0; i < x.length; i++) {
      assert.equal(got[i], want[i], `element ${i}: ${x[i]} → ${got[i]}, nearest-even half ${want[i]}`);
    }
    // and host uploads of an f16 tensor round the same way
    using u = Tensor.from(x, [x.length], "f16");
    assert.deepEqual(Array.from(await u.toArray()), Array.from(want));
  },
});

Deno.test({
  name:
    "matmul_f16.wgsl: NN, NT, TN and TT products of f16 inputs match the float64 product of the rounded inputs",
  ignore,
  async fn() {
    // Every aligned entry runs on each case without transA whose K is a multiple of 4 (vec4-aligned:
    // 132×128×12, 256×132×16, 136×136×24, 129×65×80); main128k16 takes those aligned to 8 (136×136×24,
    // 129×65×80, 256×132×16 NT) and main128u32 the others. The rest take main128 (scalar loads).
    const cases = [[5, 7, 3], [70, 130, 33], [129, 65, 80], [132, 128, 12], [256, 132, 16], [136, 136, 24]];
    for (const [M, N, K] of cases) {
      for (
        const [transA, transB, entry] of [false, true].flatMap((tA) =>
          [false, true].flatMap((tB) => F16_ALIGNED_ENTRIES.map((e) => [tA, tB, e] as const))
        )
      ) {
        if (entry !== F16_ALIGNED_ENTRIES[0] && (transA || K % 4 !== 0)) continue; // unaligned: main128 only
        const prev = useF16AlignedEntry(entry);
        try {
          const a = randomArray(M * K, M + K);
          const b = randomArray(K * N, N + 7);
          using A = Tensor.from(a, transA ? [K, M] : [M, K], "f16");
          using B = Tensor.from(b, transB ? [N, K] : [K, N], "f16");
          using C = matmulF16(A, B, { transA, transB, alpha: 0.5 });
          assert.equal(C.dtype, "f32");
          const dims = { M, N, K, transA, transB, alpha: 0.5 };
          const ref = matmulF16Ref(a, b, dims);
          const name = `${M}x${N}x${K} tA=${transA} tB=${transB} ${entry}`;
          assertAllclose(await C.toArray(), ref, { atol: 1e-5, name });
          // the rounding matters at this tolerance: the unrounded product is further away than atol
          const exact = matmulRef(a, b, dims);
          const gap = exact.reduce((m, v, i) => Math.max(m, Math.abs(v - ref[i])), 0);
          assert.ok(gap > 1e-4, `${name}: f16 rounding changed the product by only ${gap}`);
        } finally {
          useF16AlignedEntry(prev);
        }
      }
    }
  },
});

Deno.test({
  name: "matmul_f16.wgsl: a batched product with a shared right operand, bias and accumulation into C",
  ignore,
  async fn() {
    const [Bt, M, N, K] = [3, 20, 36, 24];
    const a = randomArray(Bt * M * K, 1);
    const b = randomArray(N * K, 2);
    const bias = randomArray(N, 3);
    const c0 = randomArray(Bt * M * N, 4);
    using A = toF16(Tensor.from(a, [Bt, M, K]));
    using B = Tensor.from(b, [N, K], "f16");
    using Bv = Tensor.from(bias, [N]);
    using Cacc = Tensor.from(c0, [Bt, M, N]);
    // C[i] += A[i] · Bᵀ + bias, batch i of A at offset i·M·K, B shared (x·Wᵀ layout)
    matmulF16Strided({
      M,
      N,
      K,
      batch: [1, Bt],
      a: { t: A, s1: M * K, rowStride: K, colStride: 1 },
      b: { t: B, rowStride: 1, colStride: K },
      c: { t: Cacc, s1: M * N, rowStride: N, colStride: 1 },
      bias: Bv,
      accumulate: true,
    });
    const got = await Cacc.toArray();
    for (let i = 0; i < Bt; i++) {
      const ref = matmulF16Ref(a.subarray(i * M * K, (i + 1) * M * K), b, { M, N, K, transB: true })
        .map((v, j) => v + bias[j % N] + c0[i * M * N + j]);
      assertAllclose(got.subarray(i * M * N, (i + 1) * M * N), ref, { name: `batch ${i}` });
    }
  },
});

Deno.test({
  name: "matmulF16: f32 operands are refused with a ShapeError naming the dtypes",
  ignore,
  fn() {
    using A = Tensor.from(randomArray(12, 1), [3, 4]);
    using B = Tensor.from(randomArray(8, 2), [4, 2], "f16");
    assert.throws(() => matmulF16(A, B), /f16 operands.*f32, f16/);
  },
});
