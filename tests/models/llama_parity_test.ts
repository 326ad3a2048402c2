import { initGpu } from "../../lib/gpu/device.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose } from "../_assert.ts";

await initGpu();

const fixtures = new URL("../fixtures/", import.meta.url).pathname;
const bundled = new URL("../../data/brown-llama-6m", import.meta.url).pathname;

/**
 * The model's logits, hidden states and attention probabilities on the reference input equal what
 * transformers computed (f32, eager attention): max abs error ≤ 1e-3 (logits, hidden), ≤ 1e-4 (probs).
 */
async function checkParity(modelDir: string, referencePath: string, maxPartBytes?: number) {
  using ref = await SafetensorsFile.open(referencePath);
  const ids = await ref.read("input_ids");
  using model = await LlamaModel.load(modelDir, { maxPartBytes });
  using input = Tensor.from(ids.data as Int32Array, ids.shape, "i32");
  const out = model.forward(input, { hidden: true, attentions: true });
  const [logits, ...rest] = await readTensors([out.logits, ...out.hidden!, ...out.attentions!]);
  const L = model.config.numLayers;
  assertAllclose(logits, await ref.readF32("logits"), { atol: 1e-3, rtol: 0, name: "logits" });
  const hidden = await ref.readF32("hidden_states");
  const per = hidden.length / (L + 1);
  for (let i = 0; i <= L; i++) {
    assertAllclose(rest[i], hidden.subarray(i * per, (i + 1) * per), {
      atol: 1e-3,
      rtol: 0,
      name: `hidden ${i}`,
    });
  }
  const att = await ref.readF32("attentions");
  const perA = att.length / L;
  for (let i = 0; i < L; i++) {
    assertAllclose(rest[L + 1 + i], att.subarray(i * perA, (i + 1) * perA), {
      atol: 1e-4,
      rtol: 0,
      name: `attentions ${i}`,
    });
  }
  for (const t of [out.logits, ...out.hidden!, ...out.attentions!]) t.dispose();
}

Deno.test("llama: tiny-llama (f32) matches transformers: logits, hidden states, attentions", async () => {
  await checkParity(`${fixtures}tiny-llama`, `${fixtures}tiny-llama/reference.safetensors`);
});

Deno.test("llama: brown-llama-6m (bf16 checkpoint, GQA) matches transformers", async () => {
  await checkParity(bundled, `${fixtures}brown-llama-6m/reference.safetensors`);
});

Deno.test("llama: weights split into row blocks (forced 256 KiB blocks) give the same outputs", async () => {
  // brown-llama-6m's embedding and lm_head are 4 MiB each: split into 16 blocks, the gather and the
  // vocabulary product take the multi-block paths that Llama-3-sized vocabularies need on a real device.
  await checkParity(bundled, `${fixtures}brown-llama-6m/reference.safetensors`, 256 * 1024);
});
