import assert from "node:assert/strict";
import { initGpu } from "../../lib/gpu/device.ts";
import { loadTokenizer } from "../../lib/io/tokenizer.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { generate } from "../../lib/decode/generate.ts";
import { argmax } from "../../lib/decode/sampling.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";

await initGpu();
const tiny = new URL("../fixtures/tiny-llama", import.meta.url).pathname;

Deno.test("generate: greedy decoding with the KV cache equals argmax of full re-computation", async () => {
  using model = await LlamaModel.load(tiny);
  const tok = await loadTokenizer(tiny);
  const r = await generate(model, tok, "The jury said", { temperature: 0, maxTokens: 8, stopAtEos: false });
  assert.equal(r.tokens.length, 8);
  // Re-run the whole sequence without a cache at every step and take the argmax of the last position.
  const ids = [0, ...tok.encode("The jury said", { addSpecialTokens: false })];
  for (const expected of r.tokens) {
    using x = Tensor.from(ids, [1, ids.length], "i32");
    const { logits } = model.forward(x);
    const all = await logits.toArray();
    logits.dispose();
    const V = model.config.vocabSize;
    const next = argmax(all.subarray((ids.length - 1) * V));
    assert.equal(next, expected, `token ${ids.length}`);
    ids.push(next);
  }
});
