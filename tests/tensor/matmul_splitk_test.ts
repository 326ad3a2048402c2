import assert from "node:assert/strict";
import { initGpu } from "../../lib/gpu/device.ts";
import { dispatchCount } from "../../lib/gpu/commands.ts";
import { matmulStrided, setLargeTileMin, useSplitK } from "../../lib/tensor/matmul.ts";
import { matmulRef } from "../../lib/tensor/matmul_ref.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();

// A weight gradient's shape: dW (M = out, N = in) = dYᵀ (M, K) · X (K, N) with K = tokens ≫ M, N,
// dY stored (K, M) row-major (so A is read with colStride M), K = 2100: chunks of 320 and a last of 180.
Deno.test("matmul split-K: a long-K weight gradient equals the float64 reference and the unsplit kernel", async () => {
  const [M, N, K] = [70, 40, 2100];
  const dy = randomArray(K * M, 11, 1);
  const x = randomArray(K * N, 12, 1);
  using A = Tensor.from(dy, [K, M]);
  using B = Tensor.from(x, [K, N]);
  const run = (split: boolean) => {
    const prev = useSplitK(split);
    try {
      const C = Tensor.empty([M * N + 8]); // C at an offset of 8 elements
      const before = dispatchCount();
      matmulStrided({
        M,
        N,
        K,
        a: { t: A, rowStride: 1, colStride: M },
        b: { t: B, rowStride: N, colStride: 1 },
        c: { t: C, offset: 8, rowStride: N, colStride: 1 },
        alpha: 0.5,
      });
      return { C, dispatches: dispatchCount() - before };
    } finally {
      useSplitK(prev);
    }
  };
  const split = run(true);
  const plain = run(false);
  assert.ok(split.dispatches >= 3, `split-K took ${split.dispatches} dispatches (products + sum)`);
  assert.equal(plain.dispatches, 1);
  const ref = matmulRef(dy, x, { M, N, K, transA: true, alpha: 0.5 });
  const got = (await split.C.toArray()).subarray(8);
  assertAllclose(got, ref, { rtol: 1e-4, atol: 1e-4, name: "split-K vs reference" });
  assertAllclose(got, (await plain.C.toArray()).subarray(8), {
    rtol: 1e-4,
    atol: 1e-4,
    name: "split vs unsplit",
  });
  split.C.dispose();
  plain.C.dispose();
});

Deno.test("matmul split-K: through the 128×128-tile kernel (few large tiles) too", async () => {
  const [M, N, K] = [200, 132, 1536];
  const a = randomArray(M * K, 21, 1);
  const b = randomArray(K * N, 22, 1);
  using A = Tensor.from(a, [M, K]);
  using B = Tensor.from(b, [K, N]);
  const prevMin = setLargeTileMin(1);
  try {
    using C = Tensor.empty([M, N]);
    const before = dispatchCount();
    matmulStrided({
      M,
      N,
      K,
      a: { t: A, rowStride: K, colStride: 1 },
      b: { t: B, rowStride: N, colStride: 1 },
      c: { t: C, rowStride: N, colStride: 1 },
    });
    assert.equal(dispatchCount() - before, 2, "one batched product of the K chunks, then their sum");
    assertAllclose(await C.toArray(), matmulRef(a, b, { M, N, K }), { rtol: 1e-4, atol: 1e-4, name: "C" });
  } finally {
    setLargeTileMin(prevMin);
  }
});
