import assert from "node:assert/strict";
import { nextTokenBackward, nextTokenTargets } from "../../lib/train/next_token.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose } from "../_assert.ts";

await initGpu();
const tiny = new URL("../fixtures/tiny-llama", import.meta.url).pathname;

Deno.test("autograd: tiny-llama gradients of the mean next-token loss match PyTorch (rel. 1e-3)", async () => {
  using ref = await SafetensorsFile.open(`${tiny}/reference.safetensors`);
  using expected = await SafetensorsFile.open(`${tiny}/grads.safetensors`);
  const idsHost = await ref.read("input_ids");
  const [B, T] = idsHost.shape;
  const ids = idsHost.data as Int32Array;
  const targets = nextTokenTargets(ids, B, T);
  using model = await LlamaModel.load(tiny);
  const params = model.namedParameters();
  for (const [, p] of params) p.requiresGrad = true;
  using x = Tensor.from(ids, [B, T], "i32");
  using y = Tensor.from(targets, [B * T], "i32");
  const loss = nextTokenBackward(model, x, y);
  const [lossValue, ...grads] = await readTensors([loss, ...params.map(([, p]) => p.grad!)]);
  loss.dispose();
  assertAllclose(lossValue, await expected.readF32("loss"), { atol: 1e-4, rtol: 0, name: "loss" });
  assert.equal(params.length, expected.names().length - 1, "one gradient per parameter");
  for (let i = 0; i < params.length; i++) {
    const [name] = params[i];
    const want = await expected.readF32(name);
    // max relative error against the largest gradient entry of the tensor (entries near 0 have no
    // meaningful relative error)
    const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assertAllclose(grads[i], want, { atol: 1e-3 * scale, rtol: 1e-3, name });
  }
});
