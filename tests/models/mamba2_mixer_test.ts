/**
 * The Mamba-2 mixer (mamba2_glue.wgsl, mamba2_glue_bwd.wgsl, conv1d, SSD, gated norm, matmul) against
 * its float64 reference `mamba2ForwardRef`: forward, and the gradient of every weight and of u against
 * finite differences of the reference. Small shapes: B 2, L 9 with SSD chunks of 4 (the last one
 * ragged), d_model 16, 2 heads over 1 kv head (x and B repeated across the heads).
 */
import assert from "node:assert/strict";
import { GradTape } from "../../lib/autograd/tape.ts";
import type { Mamba2Dims } from "../../lib/distill/convert_mamba2.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { mamba2Forward, type Mamba2Weights } from "../../lib/models/mamba2_layer.ts";
import { mamba2ForwardRef } from "../../lib/models/mamba2_layer_ref.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";
import { checkOp } from "../_gradcheck.ts";

await initGpu();

const dims: Mamba2Dims = {
  dModel: 16,
  dInner: 8,
  dXb: 4,
  dState: 4,
  nHeads: 2,
  headDim: 4,
  nGroups: 2,
  convWidth: 4,
};
const [Bt, L] = [2, 9];
const opts = { dims, kvHeads: 1, eps: 1e-5, blockLen: 4 };
const cols = 2 * dims.dInner + 2 * dims.dXb + dims.nHeads;
const C = dims.dInner + 2 * dims.dXb;
const H = dims.nHeads;
// u, then the weights in the order of Mamba2Weights.
const names = ["u", "in_proj", "conv1d.weight", "conv1d.bias", "dt_bias", "A_log", "D", "norm", "out_proj"];
const shapes = [
  [Bt, L, dims.dModel],
  [cols, dims.dModel],
  [C, dims.convWidth],
  [C],
  [H],
  [H],
  [H],
  [dims.dInner],
  [dims.dModel, dims.dInner],
];
// Values in ranges the layer sees: in_proj scaled so dt_raw and the conv stay O(1), norms near 1.
const scales = [1, 0.4, 0.5, 0.3, 0.5, 0.5, 1, 1, 0.4];
const values = shapes.map((s, i) => {
  const v = Float64Array.from(randomArray(s.reduce((a, b) => a * b, 1), 100 + i, scales[i]));
  if (names[i] === "norm") v.forEach((x, j) => (v[j] = 1 + x * 0.3));
  return v;
});

const weightsOf = (ts: Tensor[]): Mamba2Weights => ({
  inProj: { parts: [ts[1]], shape: [cols, dims.dModel] },
  convWeight: ts[2],
  convBias: ts[3],
  dtBias: ts[4],
  aLog: ts[5],
  D: ts[6],
  norm: ts[7],
  outProj: { parts: [ts[8]], shape: [dims.dModel, dims.dInner] },
});
const ref = (xs: Float64Array[]) =>
  mamba2ForwardRef(xs[0], {
    inProj: xs[1],
    convWeight: xs[2],
    convBias: xs[3],
    dtBias: xs[4],
    aLog: xs[5],
    D: xs[6],
    norm: xs[7],
    outProj: xs[8],
  }, { batch: Bt, L, ...opts });

Deno.test("mamba2 mixer: GPU forward equals the float64 reference (outside a tape and under one)", async () => {
  const ts = values.map((v, i) => Tensor.from(Float32Array.from(v), shapes[i]));
  const want = ref(values.map((v) => Float64Array.from(Float32Array.from(v))));
  using y = mamba2Forward(ts[0], weightsOf(ts), opts);
  assertAllclose((await y.toArray()) as Float32Array, want, { atol: 1e-4, rtol: 1e-4, name: "out" });
  for (const t of ts) t.requiresGrad = true;
  using tape = new GradTape();
  using y2 = tape.run(() => mamba2Forward(ts[0], weightsOf(ts), opts));
  assert.ok(tape.length > 0, "the mixer recorded nodes");
  assertAllclose((await y2.toArray()) as Float32Array, want, { atol: 1e-4, rtol: 1e-4, name: "out (taped)" });
  tape.dispose();
  for (const t of ts) t.dispose();
});

Deno.test("mamba2 mixer: gradients of u and every weight equal finite differences of the float64 reference", async () => {
  const diff = names.map((_, i) => i);
  await checkOp("mamba2", shapes, diff, (ts) => mamba2Forward(ts[0], weightsOf(ts), opts), ref, { values });
});

Deno.test("mamba2 mixer: with only the weights trainable (u frozen) every weight still gets its gradient", async () => {
  // The hybrid's first layer sees u from a frozen embedding: u needs no gradient but the weights do.
  await checkOp(
    "mamba2 (u frozen)",
    shapes,
    [4, 5, 6],
    (ts) => mamba2Forward(ts[0], weightsOf(ts), opts),
    ref,
    {
      values,
    },
  );
});
