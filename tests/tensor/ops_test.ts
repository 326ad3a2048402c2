import { initGpu } from "../../lib/gpu/device.ts";
import { attention } from "../../lib/tensor/attention.ts";
import { add, mul, swiglu } from "../../lib/tensor/elementwise.ts";
import { embedding } from "../../lib/tensor/embedding.ts";
import {
  attentionRef,
  crossEntropyRef,
  embeddingRef,
  logSoftmaxRef,
  rmsNormRef,
  ropeRef,
  swigluRef,
} from "../../lib/tensor/ops_ref.ts";
import { sumRowsInto } from "../../lib/tensor/reduce.ts";
import { rmsNorm } from "../../lib/tensor/rmsnorm.ts";
import { rope, ropeInverseFrequencies, RopeTable } from "../../lib/tensor/rope.ts";
import { crossEntropyRows, logSoftmax } from "../../lib/tensor/softmax.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { uploadHost } from "../../lib/tensor/convert.ts";
import { f32ToBf16 } from "../../lib/io/safetensors.ts";
import type { RopeConfig } from "../../lib/io/config.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();

const defaultRope: RopeConfig = {
  type: "default",
  theta: 10000,
  factor: 1,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositionEmbeddings: 8192,
};

Deno.test("elementwise.wgsl: add, mul and swiglu match the reference", async () => {
  const a = randomArray(1000, 1, 4);
  const b = randomArray(1000, 2, 4);
  using A = Tensor.from(a, [10, 100]);
  using B = Tensor.from(b, [10, 100]);
  using s = add(A, B);
  using m = mul(A, B);
  using g = swiglu(A, B);
  assertAllclose(await s.toArray(), a.map((v, i) => v + b[i]), { name: "add" });
  assertAllclose(await m.toArray(), a.map((v, i) => v * b[i]), { name: "mul" });
  assertAllclose(await g.toArray(), swigluRef(a, b), { name: "swiglu" });
});

Deno.test("rmsnorm.wgsl: rows wider than the workgroup match the reference", async () => {
  for (const D of [64, 300, 1000]) {
    const x = randomArray(7 * D, D, 3);
    const w = randomArray(D, D + 1);
    using X = Tensor.from(x, [7, D]);
    using W = Tensor.from(w, [D]);
    using y = rmsNorm(X, W, 1e-5);
    assertAllclose(await y.toArray(), rmsNormRef(x, w, D, 1e-5), { name: `rmsnorm D=${D}` });
  }
});

Deno.test("rope.wgsl: rotate_half RoPE matches the reference, with a position offset", async () => {
  const shape: [number, number, number, number] = [2, 5, 3, 16];
  const x = randomArray(2 * 5 * 3 * 16, 9);
  using table = new RopeTable(defaultRope, 16, 64);
  using X = Tensor.from(x, shape);
  using y = rope(X, table, 7);
  const inv = ropeInverseFrequencies(defaultRope, 16);
  assertAllclose(await y.toArray(), ropeRef(x, shape, inv, 7), { atol: 1e-6, name: "rope" });
});

Deno.test("rope: llama3 scaling keeps high frequencies and divides low ones by the factor", () => {
  const llama3: RopeConfig = { ...defaultRope, type: "llama3", theta: 500000, factor: 32 };
  const plain = ropeInverseFrequencies({ ...defaultRope, theta: 500000 }, 64);
  const scaled = ropeInverseFrequencies(llama3, 64);
  // highest frequency (wavelength 2π < 8192/4): unchanged; lowest (wavelength ≫ 8192): divided by 32.
  if (scaled[0] !== plain[0]) throw new Error(`high frequency changed: ${scaled[0]} vs ${plain[0]}`);
  assertAllclose([scaled[31]], [plain[31] / 32], { rtol: 1e-6, name: "low frequency" });
  // in between the interpolation stays between the two.
  for (let i = 0; i < 32; i++) {
    if (scaled[i] > plain[i] * (1 + 1e-6) || scaled[i] < plain[i] / 32 * (1 - 1e-6)) {
      throw new Error(`band ${i}`);
    }
  }
});

Deno.test("attention: causal GQA attention and its probabilities match the reference", async () => {
  const dims = { B: 2, L: 9, S: 9, Hq: 4, Hkv: 2, P: 8 };
  const q = randomArray(2 * 9 * 4 * 8, 1);
  const k = randomArray(2 * 9 * 2 * 8, 2);
  const v = randomArray(2 * 9 * 2 * 8, 3);
  using Q = Tensor.from(q, [2, 9, 4, 8]);
  using K = Tensor.from(k, [2, 9, 2, 8]);
  using V = Tensor.from(v, [2, 9, 2, 8]);
  const r = attention(Q, K, V, { returnProbs: true });
  const ref = attentionRef(q, k, v, dims);
  assertAllclose(await r.out.toArray(), ref.out, { name: "attention out" });
  assertAllclose(await r.probs!.toArray(), ref.probs, { atol: 1e-6, name: "attention probs" });
  r.out.dispose();
  r.probs!.dispose();
});

Deno.test("attention: queries after a cache of earlier keys (S > L)", async () => {
  const dims = { B: 1, L: 3, S: 10, Hq: 2, Hkv: 1, P: 4 };
  const q = randomArray(3 * 2 * 4, 4);
  const k = randomArray(10 * 4, 5);
  const v = randomArray(10 * 4, 6);
  using Q = Tensor.from(q, [1, 3, 2, 4]);
  // a cache with room for 16 positions, 10 of them filled
  const kc = new Float32Array(16 * 4);
  kc.set(k);
  const vc = new Float32Array(16 * 4);
  vc.set(v);
  using K = Tensor.from(kc, [1, 16, 1, 4]);
  using V = Tensor.from(vc, [1, 16, 1, 4]);
  const r = attention(Q, K, V, { keyLength: 10 });
  assertAllclose(await r.out.toArray(), attentionRef(q, k, v, dims).out, { name: "cached attention" });
  r.out.dispose();
});

Deno.test("softmax.wgsl: log-softmax and cross-entropy (with ignore index) match the reference", async () => {
  const V = 700;
  const x = randomArray(5 * V, 11, 8);
  const targets = [3, 699, -100, 0, 42];
  using X = Tensor.from(x, [5, V]);
  using T = Tensor.from(targets, [5], "i32");
  using l = logSoftmax(X);
  using ce = crossEntropyRows(X, T);
  assertAllclose(await l.toArray(), logSoftmaxRef(x, V), { name: "log_softmax" });
  assertAllclose(await ce.toArray(), crossEntropyRef(x, targets, V), { name: "cross_entropy" });
});

Deno.test("reduce.wgsl: row sums into slots, accumulating", async () => {
  const x = randomArray(3 * 1000, 12);
  using X = Tensor.from(x, [3, 1000]);
  using out = Tensor.zeros([8]);
  sumRowsInto(X, out, 2);
  sumRowsInto(X, out, 2, true);
  const ref = new Float64Array(8);
  for (let r = 0; r < 3; r++) for (let j = 0; j < 1000; j++) ref[2 + r] += 2 * x[r * 1000 + j];
  assertAllclose(await out.toArray(), ref, { atol: 1e-4, name: "sum_rows" });
});

Deno.test("embedding.wgsl: gather from a table split into row blocks", async () => {
  const D = 6;
  const table = randomArray(10 * D, 13);
  const ids = [9, 0, 4, 5, 3, 9];
  using I = Tensor.from(ids, [2, 3], "i32");
  const parts = [Tensor.from(table.subarray(0, 4 * D), [4, D]), Tensor.from(table.subarray(4 * D), [6, D])];
  using y = embedding(I, { parts, shape: [10, D] });
  assertAllclose(await y.toArray(), embeddingRef(ids, table, D), { atol: 0, rtol: 0, name: "embedding" });
  for (const p of parts) p.dispose();
});

Deno.test("convert.wgsl: bf16 halves widen exactly on the GPU (odd count included)", async () => {
  const f = randomArray(7, 14, 100);
  const bits = f32ToBf16(f);
  using t = uploadHost({ dtype: "BF16", shape: [7], data: bits });
  const expected = Float32Array.from(bits, (b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]);
  assertAllclose(await t.toArray(), expected, { atol: 0, rtol: 0, name: "bf16" });
});
