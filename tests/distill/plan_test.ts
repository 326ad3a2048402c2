import assert from "node:assert/strict";
import { attentionLayersByShare, parseLayerList, stepwiseOrder } from "../../lib/distill/plan.ts";

Deno.test("plan: attention shares follow MambaInLlama's stride rule (last layer always kept)", () => {
  const odd = Array.from({ length: 16 }, (_, i) => 2 * i + 1);
  assert.deepEqual(attentionLayersByShare(32, 0.5), odd);
  assert.deepEqual(attentionLayersByShare(32, 0.25), [3, 7, 11, 15, 19, 23, 27, 31]);
  assert.deepEqual(attentionLayersByShare(32, 0.125), [7, 15, 23, 31]);
  assert.deepEqual(attentionLayersByShare(32, 0), []);
  assert.deepEqual(attentionLayersByShare(28, 0.5), Array.from({ length: 14 }, (_, i) => 2 * i + 1));
  assert.deepEqual(attentionLayersByShare(6, 0.5), [1, 3, 5]); // brown-llama-6m's 50% hybrid
  assert.deepEqual(attentionLayersByShare(6, 0.25), [1, 5]);
  assert.throws(() => attentionLayersByShare(6, 0.3), /not 1\/k/);
});

Deno.test("plan: the stepwise order of the reference (even, ≡1 mod 4, ≡3 mod 8, 7, 23, 15, 31)", () => {
  const order = stepwiseOrder(32);
  assert.deepEqual(order.slice(0, 16), Array.from({ length: 16 }, (_, i) => 2 * i));
  assert.deepEqual(order.slice(16, 24), [1, 5, 9, 13, 17, 21, 25, 29]);
  assert.deepEqual(order.slice(24), [3, 11, 19, 27, 7, 23, 15, 31]);
});

Deno.test("plan: explicit lists are validated", () => {
  assert.deepEqual(parseLayerList("5, 1,3", 6), [1, 3, 5]);
  assert.deepEqual(parseLayerList("", 6), []);
  assert.throws(() => parseLayerList("6", 6), /not a layer index/);
});
