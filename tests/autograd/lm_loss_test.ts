import assert from "node:assert/strict";
import { initGpu } from "../../lib/gpu/device.ts";
import { lmHeadLoss } from "../../lib/autograd/lm_loss.ts";
import { lmHeadLossRef } from "../../lib/autograd/lm_loss_ref.ts";
import { klDivergence } from "../../lib/autograd/losses.ts";
import { add, crossEntropy, linear, scale } from "../../lib/autograd/ops.ts";
import { GradTape } from "../../lib/autograd/tape.ts";
import type { Weight } from "../../lib/tensor/matmul.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();

// R = 12 rows chunked by 4 (3 chunks), vocabulary 4096, D = 16 (teacher DT = 8).
const [R, D, DT, V] = [12, 16, 8, 4096];
const hHost = randomArray(R * D, 1, 1);
const wHost = randomArray(V * D, 2, 0.5);
const thHost = randomArray(R * DT, 3, 1);
const twHost = randomArray(V * DT, 4, 0.7);
const targets = Int32Array.from({ length: R }, (_, r) => r === 5 || r === 11 ? -100 : (r * 977) % V);

const weight = (t: Tensor): Weight => ({ parts: [t], shape: [t.shape[0], t.shape[1]] as [number, number] });

/** Runs the chunked op (or, with `composite`, linear + crossEntropy + klDivergence) and backward. */
async function run(opts: {
  chunkRows?: number;
  composite?: boolean;
  temperature?: number;
  divisor?: number;
  gradScale?: number;
  splitHead?: boolean;
}) {
  using h = Tensor.from(hHost, [R, D]);
  using W = Tensor.from(wHost, [V, D]);
  using th = Tensor.from(thHost, [R, DT]);
  // The teacher's head split into two row blocks (as a large checkpoint's is) when asked.
  using tw0 = Tensor.from(twHost.subarray(0, 1000 * DT), [1000, DT]);
  using tw1 = Tensor.from(twHost.subarray(1000 * DT), [V - 1000, DT]);
  using twAll = Tensor.from(twHost, [V, DT]);
  const teacherHead: Weight = opts.splitHead ? { parts: [tw0, tw1], shape: [V, DT] } : weight(twAll);
  using y = Tensor.from(targets, [R], "i32");
  h.requiresGrad = true;
  W.requiresGrad = true;
  const reduction = opts.divisor
    ? { kind: "sum-over" as const, divisor: opts.divisor }
    : { kind: "mean" as const };
  using tape = new GradTape();
  let ce: Tensor;
  let kl: Tensor;
  const loss = tape.run(() => {
    if (opts.composite) {
      using logits = linear(h, weight(W));
      using tl = linear(th, teacherHead);
      ce = crossEntropy(logits, y);
      kl = klDivergence(logits, tl, { reduction, temperature: opts.temperature });
      using klw = scale(kl, 0.1);
      return add(ce, klw);
    }
    const r = lmHeadLoss(h, weight(W), {
      targets: y,
      teacher: { hidden: th, head: teacherHead },
      klWeight: 0.1,
      klReduction: reduction,
      temperature: opts.temperature,
      chunkRows: opts.chunkRows,
    });
    ce = r.ce;
    kl = r.kl;
    return r.loss;
  });
  using g = Tensor.from([opts.gradScale ?? 1], [1]);
  tape.backward(loss, g);
  const [l, c, k, dh, dW] = await readTensors([loss, ce!, kl!, h.grad!, W.grad!]);
  for (const t of [loss, ce!, kl!]) t.dispose();
  h.grad!.dispose();
  W.grad!.dispose();
  return { loss: l[0], ce: c[0], kl: k[0], dh, dW };
}

function reference(temperature?: number, divisor?: number) {
  return lmHeadLossRef({
    hidden: hHost,
    head: wHost,
    targets,
    R,
    D,
    V,
    ceWeight: 1,
    klWeight: 0.1,
    teacherHidden: thHost,
    teacherHead: twHost,
    DT,
    temperature,
    klDivisor: divisor,
  });
}

Deno.test("lm_loss.wgsl: chunked CE + 0.1·KL (3 chunks of a 4096 vocabulary) matches the float64 reference, with gradients", async () => {
  for (const [temperature, divisor] of [[1, 3], [2, undefined]] as const) {
    const got = await run({ chunkRows: 4, temperature, divisor, splitHead: divisor !== undefined });
    const ref = reference(temperature, divisor);
    const name = `τ=${temperature} d=${divisor ?? "R"}`;
    assert.ok(ref.kl > 0.01 && ref.ce > 1, `${name}: the reference terms are not trivial`);
    assertAllclose([got.loss, got.ce, got.kl], [ref.loss, ref.ce, ref.kl], { rtol: 1e-4, atol: 1e-5, name });
    assertAllclose(got.dh, ref.dh, { rtol: 1e-3, atol: 1e-6, name: `${name} dh` });
    assertAllclose(got.dW, ref.dW, { rtol: 1e-3, atol: 1e-7, name: `${name} dW` });
  }
});

Deno.test("lm_loss: chunked == one chunk == linear + crossEntropy + klDivergence; the loss's gradient scales dh and dW", async () => {
  const chunked = await run({ chunkRows: 5, divisor: 3 }); // chunks of 5, 5, 2
  const whole = await run({ chunkRows: R, divisor: 3 });
  const composite = await run({ composite: true, divisor: 3 });
  for (const [name, other] of [["one chunk", whole], ["composite", composite]] as const) {
    assertAllclose([chunked.loss, chunked.ce, chunked.kl], [other.loss, other.ce, other.kl], {
      rtol: 1e-5,
      name,
    });
    assertAllclose(chunked.dh, other.dh, { rtol: 1e-4, atol: 1e-7, name: `${name} dh` });
    assertAllclose(chunked.dW, other.dW, { rtol: 1e-4, atol: 1e-8, name: `${name} dW` });
  }
  const scaled = await run({ chunkRows: 4, divisor: 3, gradScale: 2.5 });
  assertAllclose(scaled.dh, chunked.dh.map((x) => 2.5 * x), { rtol: 1e-5, atol: 1e-8, name: "2.5·dh" });
  assertAllclose(scaled.dW, chunked.dW.map((x) => 2.5 * x), { rtol: 1e-5, atol: 1e-9, name: "2.5·dW" });
});

Deno.test("lm_loss: CE alone (no teacher, as nextTokenLoss uses it) in chunks matches the float64 reference", async () => {
  using h = Tensor.from(hHost, [R, D]);
  using W = Tensor.from(wHost, [V, D]);
  using y = Tensor.from(targets, [R], "i32");
  h.requiresGrad = true;
  W.requiresGrad = true;
  using tape = new GradTape();
  const r = tape.run(() => lmHeadLoss(h, weight(W), { targets: y, chunkRows: 5 }));
  tape.backward(r.loss);
  const [loss, ce, kl, dh, dW] = await readTensors([r.loss, r.ce, r.kl, h.grad!, W.grad!]);
  for (const t of [r.loss, r.ce, r.kl, h.grad!, W.grad!]) t.dispose();
  const ref = lmHeadLossRef({ hidden: hHost, head: wHost, targets, R, D, V });
  assert.equal(kl[0], 0);
  assertAllclose([loss[0], ce[0]], [ref.loss, ref.ce], { rtol: 1e-5, name: "loss, ce" });
  assertAllclose(dh, ref.dh, { rtol: 1e-3, atol: 1e-6, name: "dh" });
  assertAllclose(dW, ref.dW, { rtol: 1e-3, atol: 1e-7, name: "dW" });
});
