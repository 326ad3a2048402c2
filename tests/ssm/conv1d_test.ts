import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import {
  type Activation,
  causalConv1d,
  causalConv1dBackward,
  causalConv1dStep,
} from "../../lib/ssm/conv1d.ts";
import {
  causalConv1dBackwardRef,
  causalConv1dRef,
  causalConv1dStepRef,
  type ConvDims,
} from "../../lib/ssm/conv1d_ref.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";
import { finiteDiff } from "../_gradcheck.ts";

await initGpu();

const FIXTURE = new URL("../fixtures/tiny-hybrid-mamba2/model.safetensors", import.meta.url).pathname;
/** f32 kernels against float64 references: 1e-4 relative, atol for values near 0. */
const TOL = { rtol: 1e-4, atol: 2e-5 };

/** Leaves NaN-filled buffers of these sizes in the pool, so that an output a kernel forgets shows up. */
function poisonPool(sizes: number[]): void {
  const held = sizes.flatMap((n) => [0, 1, 2, 3].map(() => Tensor.from(new Float32Array(n).fill(NaN), [n])));
  for (const t of held) t.dispose();
}

interface Case {
  dims: ConvDims;
  x: Float32Array;
  w: Float32Array;
  bias?: Float32Array;
  s0?: Float32Array;
  activation: Activation;
}

function randomCase(
  dims: ConvDims,
  seed: number,
  o: { bias?: boolean; state?: boolean; activation?: Activation } = {},
): Case {
  const { B, L, C, W } = dims;
  return {
    dims,
    x: randomArray(B * L * C, seed + 1, 2),
    w: randomArray(C * W, seed + 2),
    bias: o.bias ? randomArray(C, seed + 3) : undefined,
    s0: o.state ? randomArray(B * C * (W - 1), seed + 4, 2) : undefined,
    activation: o.activation ?? "silu",
  };
}

const refOpts = (k: Case) => ({ bias: k.bias, initialState: k.s0, activation: k.activation });

/** The case's tensors; the weight in the checkpoint's (C, 1, W) layout when `checkpointLayout`. */
function upload(k: Case, checkpointLayout = false) {
  const { B, C, W } = k.dims;
  const t = (a: Float32Array | undefined, shape: number[]) => a ? Tensor.from(a, shape) : undefined;
  const x = Tensor.from(k.x, [B, k.dims.L, C]);
  const w = Tensor.from(k.w, checkpointLayout ? [C, 1, W] : [C, W]);
  const opts = { bias: t(k.bias, [C]), initialState: t(k.s0, [B, C, W - 1]), activation: k.activation };
  return {
    x,
    w,
    opts,
    [Symbol.dispose]() {
      for (const v of [x, w, opts.bias, opts.initialState]) v?.dispose();
    },
  };
}

Deno.test("conv1d reference: backward == central differences (bias, initial state, silu and identity)", () => {
  for (const [W, activation] of [[3, "silu"], [4, "identity"], [2, "silu"]] as const) {
    const dims = { B: 2, L: 5, C: 3, W };
    const k = randomCase(dims, 10 * W, { bias: true, state: true, activation });
    const r = randomArray(dims.B * dims.L * dims.C, 5);
    const f = (xs: Float64Array[]) =>
      causalConv1dRef(xs[0], xs[1], dims, { bias: xs[2], initialState: xs[3], activation }).y;
    const xs = [k.x, k.w, k.bias!, k.s0!].map((a) => Float64Array.from(a));
    const got = causalConv1dBackwardRef(k.x, k.w, r, dims, refOpts(k));
    const names = ["x", "weight", "bias", "initialState"] as const;
    names.forEach((name, i) => {
      assertAllclose(got[name], finiteDiff(f, xs, r, i), {
        rtol: 1e-6,
        atol: 1e-7,
        name: `W=${W} ${activation} d${name}`,
      });
    });
  }
});

Deno.test("conv1d.wgsl: forward, final state and backward == reference (W = 4, 2, 8; silu, identity)", async () => {
  const cases: [ConvDims, { bias?: boolean; state?: boolean; activation?: Activation }][] = [
    [{ B: 2, L: 300, C: 67, W: 4 }, { bias: true, state: false, activation: "silu" }],
    [{ B: 2, L: 37, C: 67, W: 4 }, { bias: true, state: true, activation: "identity" }],
    [{ B: 3, L: 41, C: 20, W: 2 }, { bias: false, state: true, activation: "silu" }],
    [{ B: 1, L: 19, C: 130, W: 2 }, { bias: false, state: false, activation: "identity" }],
    [{ B: 2, L: 5, C: 9, W: 8 }, { bias: true, state: true, activation: "silu" }], // L < W − 1
  ];
  for (const [i, [dims, o]] of cases.entries()) {
    const label = `W=${dims.W} L=${dims.L} ${o.activation}${o.bias ? " bias" : ""}${o.state ? " state" : ""}`;
    const k = randomCase(dims, 100 * i, o);
    const { B, L, C, W } = dims;
    const dyv = randomArray(B * L * C, 100 * i + 9);
    const want = causalConv1dRef(k.x, k.w, dims, refOpts(k));
    const wantG = causalConv1dBackwardRef(k.x, k.w, dyv, dims, refOpts(k));
    poisonPool([B * L * C, B * C * (W - 1), C * W, C]);
    using t = upload(k);
    using dy = Tensor.from(dyv, [B, L, C]);
    const { y, finalState } = causalConv1d(t.x, t.w, t.opts);
    const g = causalConv1dBackward(t.x, t.w, dy, t.opts);
    const outs = [
      y,
      finalState,
      g.x,
      g.weight,
      ...(g.bias ? [g.bias] : []),
      ...(g.initialState ? [g.initialState] : []),
    ];
    const [yv, fv, dx, dw, ...rest] = await readTensors(outs);
    assertAllclose(yv, want.y, { ...TOL, name: `${label}: y` });
    assertAllclose(fv, want.finalState, { ...TOL, name: `${label}: final state` });
    assertAllclose(dx, wantG.x, { ...TOL, name: `${label}: dx` });
    assert.deepEqual(g.weight.shape, [C, W]);
    // dw and dbias sum B·L products: the reference's float64 sum is compared at 1e-4 of its scale.
    assertAllclose(dw, wantG.weight, { rtol: 1e-4, atol: 1e-4, name: `${label}: dweight` });
    if (o.bias) {
      assertAllclose(rest.shift()!, wantG.bias, { rtol: 1e-4, atol: 1e-4, name: `${label}: dbias` });
    } else assert.equal(g.bias, undefined);
    if (o.state) {
      assertAllclose(rest.shift()!, wantG.initialState, { ...TOL, name: `${label}: dinitialState` });
    } else assert.equal(g.initialState, undefined);
    for (const v of outs) v.dispose();
  }
});

Deno.test("conv1d.wgsl: prefill (final state) + causalConv1dStep per token == the full sequence", async () => {
  for (
    const [W, activation, state] of [[4, "silu", false], [2, "identity", true], [
      4,
      "identity",
      true,
    ]] as const
  ) {
    const dims = { B: 2, L: 12, C: 70, W };
    const { B, L, C } = dims;
    const P = 5; // prefill length
    const k = randomCase(dims, 7 * W + (state ? 1 : 0), { bias: true, state, activation });
    const full = causalConv1dRef(k.x, k.w, dims, refOpts(k));
    const label = `W=${W} ${activation}${state ? " initial state" : ""}`;

    const prefillX = new Float32Array(B * P * C);
    for (let b = 0; b < B; b++) prefillX.set(k.x.subarray(b * L * C, (b * L + P) * C), b * P * C);
    using t = upload(k);
    using xp = Tensor.from(prefillX, [B, P, C]);
    const pre = causalConv1d(xp, t.w, t.opts);
    const ys: Tensor[] = [pre.y];
    for (let s = P; s < L; s++) {
      const xs = new Float32Array(B * C);
      for (let b = 0; b < B; b++) xs.set(k.x.subarray((b * L + s) * C, (b * L + s + 1) * C), b * C);
      using xt = Tensor.from(xs, [B, C]);
      ys.push(causalConv1dStep(pre.finalState, xt, t.w, { bias: t.opts.bias, activation }));
    }
    const [yPre, ...rest] = await readTensors([...ys, pre.finalState]);
    const stateAfter = rest.pop()!;
    const got = new Float32Array(B * L * C);
    for (let b = 0; b < B; b++) {
      got.set(yPre.subarray(b * P * C, (b + 1) * P * C), b * L * C);
      rest.forEach((yt, i) => got.set(yt.subarray(b * C, (b + 1) * C), (b * L + P + i) * C));
    }
    assertAllclose(got, full.y, { ...TOL, name: `${label}: prefill + steps y` });
    assertAllclose(stateAfter, full.finalState, { ...TOL, name: `${label}: state after the steps` });
    for (const y of ys) y.dispose();
    pre.finalState.dispose();
  }
});

Deno.test("conv1d.wgsl: causalConv1dStep == reference step (y and the rolled state)", async () => {
  for (const [W, activation] of [[4, "silu"], [2, "identity"], [8, "silu"]] as const) {
    const dims = { B: 3, C: 50, W };
    const state = randomArray(3 * 50 * (W - 1), W, 2);
    const xs = randomArray(3 * 50, W + 1, 2);
    const w = randomArray(50 * W, W + 2);
    const bias = randomArray(50, W + 3);
    const want = causalConv1dStepRef(state, xs, w, dims, { bias, activation });
    poisonPool([3 * 50]);
    using st = Tensor.from(state, [3, 50, W - 1]);
    using xt = Tensor.from(xs, [3, 50]);
    using wt = Tensor.from(w, [50, 1, W]);
    using bt = Tensor.from(bias, [50]);
    using y = causalConv1dStep(st, xt, wt, { bias: bt, activation });
    const [yv, sv] = await readTensors([y, st]);
    assertAllclose(yv, want.y, { ...TOL, name: `W=${W} ${activation}: step y` });
    assertAllclose(sv, want.state, { ...TOL, name: `W=${W} ${activation}: rolled state` });
  }
});

Deno.test("conv1d: the checkpoint's conv1d.weight (C, 1, W) and bias work as stored", async () => {
  using f = await SafetensorsFile.open(FIXTURE);
  const name = "model.layers.0.mamba.conv1d";
  assert.deepEqual(f.info(`${name}.weight`).shape, [128, 1, 4]);
  const w = await f.readF32(`${name}.weight`);
  const bias = await f.readF32(`${name}.bias`);
  const dims = { B: 2, L: 9, C: 128, W: 4 };
  const x = randomArray(2 * 9 * 128, 3, 2);
  const dyv = randomArray(2 * 9 * 128, 4);
  const k: Case = { dims, x, w, bias, activation: "silu" };
  using t = upload(k, true);
  using dy = Tensor.from(dyv, [2, 9, 128]);
  const { y, finalState } = causalConv1d(t.x, t.w, t.opts);
  const g = causalConv1dBackward(t.x, t.w, dy, t.opts);
  assert.deepEqual(g.weight.shape, [128, 1, 4]);
  const [yv, dw] = await readTensors([y, g.weight]);
  assertAllclose(yv, causalConv1dRef(x, w, dims, refOpts(k)).y, { ...TOL, name: "checkpoint conv y" });
  assertAllclose(dw, causalConv1dBackwardRef(x, w, dyv, dims, refOpts(k)).weight, {
    rtol: 1e-4,
    atol: 1e-4,
    name: "checkpoint conv dweight",
  });
  for (const v of [y, finalState, g.x, g.weight, g.bias!]) v.dispose();
});

Deno.test("conv1d: wrong shapes throw ShapeError naming both shapes", () => {
  using x = Tensor.zeros([2, 5, 8]);
  using w = Tensor.zeros([8, 4]);
  using wBad = Tensor.zeros([7, 4]);
  using s = Tensor.zeros([2, 8, 2]);
  using xt = Tensor.zeros([2, 8]);
  assert.throws(() => causalConv1d(x, wBad), ShapeError);
  assert.throws(
    () => causalConv1d(x, w, { initialState: s }),
    /initialState \(B, C, W − 1\) \(2, 8, 3\), got \(2, 8, 2\)/,
  );
  assert.throws(() => causalConv1d(x.view([10, 8]), w), ShapeError);
  assert.throws(() => causalConv1dBackward(x, w, xt), ShapeError);
  assert.throws(() => causalConv1dStep(s, xt, w), ShapeError);
});
