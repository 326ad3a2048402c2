import { initGpu } from "../../lib/gpu/device.ts";
import {
  dpoLoss,
  frobeniusDistance,
  klDivergence,
  reverseKlDivergence,
  sequenceLogProbs,
  tokenL2,
} from "../../lib/autograd/losses.ts";
import {
  dpoLossRef,
  klRowsRef,
  l2RowsRef,
  reduceRowsRef,
  sequenceLogProbsRef,
} from "../../lib/autograd/losses_ref.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";
import { checkOp } from "../_gradcheck.ts";

await initGpu();

Deno.test("distill_loss.wgsl: KL and reverse KL (temperature, token mean, masked) forward match the reference", async () => {
  const [R, V] = [6, 300];
  const s = randomArray(R * V, 1, 3);
  const t = randomArray(R * V, 2, 3);
  const labels = [1, -100, 3, 4, -100, 5];
  using S = Tensor.from(s, [R, V]);
  using T = Tensor.from(t, [R, V]);
  using L = Tensor.from(labels, [R], "i32");
  for (const reverse of [false, true]) {
    for (const temperature of [1, 2]) {
      const fn = reverse ? reverseKlDivergence : klDivergence;
      using mean = fn(S, T, { temperature, labels: L });
      using batch = fn(S, T, { temperature, reduction: { kind: "sum-over", divisor: 2 } });
      const rows = klRowsRef(s, t, V, { temperature, reverse });
      assertAllclose(await mean.toArray(), [reduceRowsRef(rows, { labels })], {
        rtol: 1e-4,
        name: `mean r=${reverse}`,
      });
      assertAllclose(await batch.toArray(), [reduceRowsRef(rows, { divisor: 2 })], {
        rtol: 1e-4,
        name: `batch r=${reverse}`,
      });
    }
  }
});

Deno.test("distill_loss.wgsl: KL, reverse KL, token L2 and Frobenius gradients against finite differences", async () => {
  const [R, V] = [3, 7];
  const teacher = randomArray(R * V, 5, 2);
  using T = Tensor.from(teacher, [R, V]);
  using L = Tensor.from([2, -100, 1], [R], "i32");
  await checkOp("kl", [[R, V]], [0], ([s]) => klDivergence(s, T, { temperature: 2, labels: L }), ([s]) => [
    reduceRowsRef(klRowsRef(s, teacher, V, { temperature: 2 }), { labels: [2, -100, 1] }),
  ]);
  await checkOp(
    "reverse kl",
    [[R, V]],
    [0],
    ([s]) => reverseKlDivergence(s, T, { reduction: { kind: "sum-over", divisor: 2 } }),
    ([s]) => [
      reduceRowsRef(klRowsRef(s, teacher, V, { reverse: true }), { divisor: 2 }),
    ],
  );
  await checkOp(
    "tokenL2",
    [[R, V]],
    [0],
    ([a]) => tokenL2(a, T),
    ([a]) => [reduceRowsRef(l2RowsRef(a, teacher, V))],
  );
  const m = randomArray(2 * 2 * 4 * 4, 6);
  using M = Tensor.from(m, [2, 2, 4, 4]);
  await checkOp("frobenius", [[2, 2, 4, 4]], [0], ([a]) => frobeniusDistance(a, M), ([a]) => [
    reduceRowsRef(l2RowsRef(a, m, 16)),
  ]);
});

Deno.test("distill_loss.wgsl: DPO (sequence log-probs, masked prompt tokens) forward and gradients", async () => {
  const [B, T, V] = [2, 3, 5];
  const lw = [1, -100, 3, -100, 2, 0];
  const ll = [4, 2, -100, -100, 1, 1];
  using LW = Tensor.from(lw, [B * T], "i32");
  using LL = Tensor.from(ll, [B * T], "i32");
  const refW = [-3.1, -2.2];
  const refL = [-2.9, -4.0];
  using RW = Tensor.from(refW, [B]);
  using RL = Tensor.from(refL, [B]);
  const beta = 0.5;
  const ref = ([w, l]: Float64Array[]) => [
    dpoLossRef(sequenceLogProbsRef(w, lw, B, V), sequenceLogProbsRef(l, ll, B, V), refW, refL, beta),
  ];
  await checkOp(
    "dpo",
    [[B, T, V], [B, T, V]],
    [0, 1],
    ([w, l]) => dpoLoss(w, l, { chosen: LW, rejected: LL }, { chosen: RW, rejected: RL }, { beta }),
    ref,
  );
  const w = randomArray(B * T * V, 3);
  using Wt = Tensor.from(w, [B, T, V]);
  using lp = sequenceLogProbs(Wt, LW);
  assertAllclose(await lp.toArray(), sequenceLogProbsRef(w, lw, B, V), {
    rtol: 1e-5,
    name: "sequence log-probs",
  });
});
