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

Deno.test("generate: reads overlapping decoding give the same tokens for any readEvery, stream every piece in order, and stop at EOS mid-read", async () => {
  using model = await LlamaModel.load(tiny);
  const tok = await loadTokenizer(tiny);
  const greedy = { temperature: 0, maxTokens: 20, stopAtEos: false };
  const base = await generate(model, tok, "The jury said", { ...greedy, readEvery: 1 });
  for (const readEvery of [3, 7, 32]) {
    const pieces: string[] = [];
    const r = await generate(model, tok, "The jury said", {
      ...greedy,
      readEvery,
      onText: (t) => pieces.push(t),
    });
    assert.deepEqual(r.tokens, base.tokens, `readEvery ${readEvery}`);
    assert.equal(pieces.join(""), r.text, `streamed text, readEvery ${readEvery}`);
  }
  // A token of the greedy output made the end-of-sequence token: generation stops before its first
  // occurrence, which lies inside a read of 3 while the next read is already in flight.
  const i = 7;
  const stop = base.tokens[i];
  const first = base.tokens.indexOf(stop);
  const saved = model.config.eosTokenIds;
  try {
    model.config.eosTokenIds = [stop];
    const r = await generate(model, tok, "The jury said", { ...greedy, readEvery: 3, stopAtEos: true });
    assert.ok(first >= 4, `the stop token first occurs at ${first}: pick a later one`);
    assert.deepEqual(r.tokens, base.tokens.slice(0, first));
  } finally {
    model.config.eosTokenIds = saved;
  }
});
