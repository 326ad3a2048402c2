import assert from "node:assert/strict";
import { initGpu } from "../../lib/gpu/device.ts";
import { loadTokenizer } from "../../lib/io/tokenizer.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { generate } from "../../lib/decode/generate.ts";
import { argmax } from "../../lib/decode/sampling.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { GpuSampler } from "../../lib/decode/gpu_sampler.ts";

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

Deno.test("generate: seeded sampling (the captured, replayed step) draws what GpuSampler.sample would at each step", async () => {
  const hybrid = new URL("../fixtures/tiny-hybrid-mamba2", import.meta.url).pathname;
  using model = await LlamaModel.load(hybrid);
  const tok = await loadTokenizer(hybrid);
  const opts = { temperature: 0.9, topK: 50, topP: 0.95, seed: 7 };
  const r = await generate(model, tok, "The jury said", {
    ...opts,
    maxTokens: 12,
    stopAtEos: false,
    readEvery: 5,
  });
  assert.equal(r.tokens.length, 12);
  // The plain recorded loop: prefill the whole prompt, then one forward per token, each sampled at its
  // step with the same (seed, step) draws.
  const ids = [0, ...tok.encode("The jury said", { addSpecialTokens: false })];
  const caches = model.createCache(1, ids.length + 12);
  using sampler = new GpuSampler(1, model.config.vocabSize, 12);
  try {
    for (let step = 0; step < 12; step++) {
      using prompt = step === 0 ? Tensor.from(ids, [1, ids.length], "i32") : null;
      const { logits } = model.forward(prompt ?? sampler.next, { cache: caches, lastOnly: true });
      sampler.sample(logits, step, opts);
      logits.dispose();
    }
    const [want] = await sampler.read(0, 12);
    assert.deepEqual(r.tokens, Array.from(want));
  } finally {
    for (const c of caches) c[Symbol.dispose]();
  }
  assert.notDeepEqual(
    r.tokens,
    (await generate(model, tok, "The jury said", { ...opts, seed: 8, maxTokens: 12, stopAtEos: false }))
      .tokens,
  );
});
