/**
 * Each differentiable op's GPU backward against central finite differences of its float64 CPU
 * reference: the gradient of Σ out · r for a random r, on tiny shapes.
 */
import {
  add,
  attention,
  crossEntropy,
  embedding,
  linear,
  rmsNorm,
  rope,
  swiglu,
} from "../../lib/autograd/ops.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import type { RopeConfig } from "../../lib/io/config.ts";
import { matmulRef } from "../../lib/tensor/matmul_ref.ts";
import {
  attentionRef,
  crossEntropyRef,
  embeddingRef,
  rmsNormRef,
  ropeRef,
  swigluRef,
} from "../../lib/tensor/ops_ref.ts";
import { ropeInverseFrequencies, RopeTable } from "../../lib/tensor/rope.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { checkOp } from "../_gradcheck.ts";

await initGpu();

const rope0: RopeConfig = {
  type: "default",
  theta: 10000,
  factor: 1,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositionEmbeddings: 64,
};

Deno.test("autograd: add and swiglu against finite differences", async () => {
  await checkOp(
    "add",
    [[3, 5], [3, 5]],
    [0, 1],
    ([a, b]) => add(a, b),
    ([a, b]) => a.map((v, i) => v + b[i]),
  );
  await checkOp("swiglu", [[3, 5], [3, 5]], [0, 1], ([a, b]) => swiglu(a, b), ([a, b]) => swigluRef(a, b));
});

Deno.test("autograd: linear (x, W, bias) against finite differences", async () => {
  const [M, K, N] = [4, 6, 5];
  await checkOp(
    "linear",
    [[M, K], [N, K], [N]],
    [0, 1, 2],
    ([x, w, b]) => linear(x, { parts: [w], shape: [N, K] }, b),
    ([x, w, b]) => matmulRef(x, w, { M, N, K, transB: true }).map((v, i) => v + b[i % N]),
  );
});

Deno.test("autograd: rmsNorm (x, w) against finite differences", async () => {
  await checkOp(
    "rmsNorm",
    [[3, 8], [8]],
    [0, 1],
    ([x, w]) => rmsNorm(x, w, 1e-5),
    ([x, w]) => rmsNormRef(x, w, 8, 1e-5),
  );
});

Deno.test("autograd: rope against finite differences", async () => {
  using table = new RopeTable(rope0, 8, 16);
  const inv = ropeInverseFrequencies(rope0, 8);
  await checkOp(
    "rope",
    [[2, 3, 2, 8]],
    [0],
    ([x]) => rope(x, table, 2),
    ([x]) => ropeRef(x, [2, 3, 2, 8], inv, 2),
  );
});

Deno.test("autograd: GQA attention (q, k, v) against finite differences", async () => {
  const d = { B: 1, L: 4, S: 4, Hq: 4, Hkv: 2, P: 3 };
  await checkOp(
    "attention",
    [[1, 4, 4, 3], [1, 4, 2, 3], [1, 4, 2, 3]],
    [0, 1, 2],
    ([q, k, v]) => attention(q, k, v).out,
    ([q, k, v]) => attentionRef(q, k, v, d).out,
  );
});

Deno.test("autograd: embedding (repeated ids) and mean cross-entropy (ignore index) against finite differences", async () => {
  const ids = [2, 0, 2, 3, 2];
  using idT = Tensor.from(ids, [5], "i32");
  await checkOp(
    "embedding",
    [[4, 3]],
    [0],
    ([w]) => embedding(idT, { parts: [w], shape: [4, 3] }),
    ([w]) => embeddingRef(ids, w, 3),
  );
  const targets = [1, -100, 4, 0];
  using tT = Tensor.from(targets, [4], "i32");
  await checkOp("crossEntropy", [[4, 6]], [0], ([x]) => crossEntropy(x, tT), ([x]) => {
    const rows = crossEntropyRef(x, targets, 6);
    return [rows.reduce((a, b) => a + b) / 3];
  });
});
