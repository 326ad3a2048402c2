import assert from "node:assert/strict";
import { initGpu } from "../../lib/gpu/device.ts";
import { AdamW, isNoDecay, selectTrainable, warmupCosine } from "../../lib/train/optim.ts";
import { type AdamWRefState, adamwStepRef } from "../../lib/train/optim_ref.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();

Deno.test("optim.wgsl: five AdamW steps with clipping match the PyTorch-transcribed reference", async () => {
  const names = ["model.layers.0.mlp.up_proj.weight", "model.norm.weight", "big"];
  const sizes = [300, 64, 9000]; // 9000 > one 4096-value norm block
  const init = sizes.map((n, i) => randomArray(n, 10 + i));
  const params = sizes.map((n, i) => Tensor.from(init[i], [n]));
  const opts = { betas: [0.9, 0.98] as [number, number], eps: 1e-8, weightDecay: 0.1, maxGradNorm: 0.5 };
  using opt = new AdamW(names.map((n, i) => [n, params[i]]), opts);
  const ref: AdamWRefState[] = init.map((p, i) => ({
    param: Float64Array.from(p),
    m: new Float64Array(p.length),
    v: new Float64Array(p.length),
    decay: !isNoDecay(names[i]),
  }));
  let norm = 0;
  for (let t = 1; t <= 5; t++) {
    const grads = sizes.map((n, i) => randomArray(n, 100 * t + i, 2));
    params.forEach((p, i) => p.grad = Tensor.from(grads[i], [sizes[i]]));
    const lr = 1e-2 * t;
    opt.update(lr);
    norm = adamwStepRef(ref, grads, { ...opts, lr, t });
  }
  const [stats, ...got] = await readTensors([opt.gradNorm(), ...params]);
  assertAllclose([stats[0]], [norm], { rtol: 1e-5, name: "grad norm" });
  assert.ok(stats[1] < 1, "the norm exceeded max_norm, so gradients were scaled");
  got.forEach((g, i) => assertAllclose(g, ref[i].param, { atol: 1e-6, rtol: 1e-5, name: names[i] }));
  for (const p of params) p.dispose();
});

Deno.test("optim: no-decay names, freezing patterns and the warmup-cosine schedule", () => {
  for (
    const n of [
      "a.bias",
      "model.norm.weight",
      "model.layers.0.input_layernorm.weight",
      "x.mamba.A_log",
      "x.mamba.D",
      "x.mamba.dt_bias",
    ]
  ) {
    assert.ok(isNoDecay(n), n);
  }
  for (
    const n of ["model.layers.0.mlp.up_proj.weight", "x.mamba.in_proj.weight", "model.embed_tokens.weight"]
  ) {
    assert.ok(!isNoDecay(n), n);
  }
  const ts = ["model.layers.0.mamba.in_proj.weight", "model.layers.0.mlp.up_proj.weight", "lm_head.weight"]
    .map((
      n,
    ) => [n, { requiresGrad: false, grad: null } as unknown as Tensor] as [string, Tensor]);
  const on = selectTrainable(ts, { train: ["*mamba*"] });
  assert.deepEqual(on.map(([n]) => n), ["model.layers.0.mamba.in_proj.weight"]);
  assert.equal(ts[1][1].requiresGrad, false);
  const on2 = selectTrainable(ts, { freeze: ["lm_head.*"] });
  assert.equal(on2.length, 2);
  const s = { peak: 1, warmup: 10, total: 110 };
  assert.equal(warmupCosine(0, s), 0.1);
  assert.equal(warmupCosine(9, s), 1);
  assert.ok(Math.abs(warmupCosine(60, s) - 0.5) < 1e-12);
  assert.ok(Math.abs(warmupCosine(110, s)) < 1e-12);
});

Deno.test("optim.wgsl: a NaN gradient skips the whole step (weights and moments unchanged)", async () => {
  const init = randomArray(50, 1);
  using p = Tensor.from(init, [50]);
  using opt = new AdamW([["w", p]], { maxGradNorm: 1 });
  const g = randomArray(50, 2);
  g[7] = NaN;
  p.grad = Tensor.from(g, [50]);
  opt.update(0.1);
  const [w, stats] = await readTensors([p, opt.gradNorm()]);
  assert.ok(Number.isNaN(stats[0]), "the norm reports the NaN");
  assert.equal(stats[1], 0, "scale 0 marks a skipped step");
  assertAllclose(w, init, { atol: 0, rtol: 0, name: "weights" });
});

Deno.test("optim.wgsl: a skipped step does not advance t (the bias corrections count applied updates)", async () => {
  const init = randomArray(40, 3);
  const opts = { betas: [0.9, 0.99] as [number, number], eps: 1e-8, weightDecay: 0.05, maxGradNorm: 0 };
  using p = Tensor.from(init, [40]);
  using opt = new AdamW([["w", p]], opts);
  const ref: AdamWRefState[] = [{
    param: Float64Array.from(init),
    m: new Float64Array(40),
    v: new Float64Array(40),
    decay: true,
  }];
  let t = 0;
  for (let k = 0; k < 4; k++) {
    const g = randomArray(40, 20 + k);
    if (k === 1) g[5] = Infinity; // skipped: the reference takes no step either
    p.grad = Tensor.from(g, [40]);
    opt.update(0.05);
    if (k !== 1) adamwStepRef(ref, [g], { ...opts, lr: 0.05, t: ++t });
  }
  assert.equal(await opt.steps(), 3, "three applied updates");
  assertAllclose(await p.toArray(), ref[0].param, { atol: 1e-6, rtol: 1e-5, name: "weights" });
  // Resuming sets t and its corrections: with t = 7 set, the next update is the reference's step 8.
  opt.setSteps(7);
  assert.equal(await opt.steps(), 7);
  const g = randomArray(40, 30);
  p.grad = Tensor.from(g, [40]);
  opt.update(0.05);
  adamwStepRef(ref, [g], { ...opts, lr: 0.05, t: 8 });
  assert.equal(await opt.steps(), 8);
  assertAllclose(await p.toArray(), ref[0].param, { atol: 1e-6, rtol: 1e-5, name: "weights after resume" });
});
