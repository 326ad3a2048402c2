import assert from "node:assert/strict";
import { initGpu } from "../../lib/gpu/device.ts";
import { loadTokenizer } from "../../lib/io/tokenizer.ts";
import { convertTeacher } from "../../lib/distill/convert.ts";
import { generate } from "../../lib/decode/generate.ts";
import { speculativeGenerate } from "../../lib/decode/speculative.ts";
import { DecodeState } from "../../lib/models/decode_state.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { Mamba1Cache } from "../../lib/models/mamba1_decode.ts";
import { Rng } from "../../lib/random.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose } from "../_assert.ts";

await initGpu();
const llamaDir = new URL("../fixtures/tiny-llama", import.meta.url).pathname;
const hybridDir = new URL("../fixtures/tiny-hybrid-mamba2", import.meta.url).pathname;
const T = 10;

/** tiny-llama converted to Mamba-1 in every layer but `attention`, in a temporary directory. */
async function withMamba1<R>(attention: number[], f: (m: LlamaModel) => Promise<R>): Promise<R> {
  const tmp = await Deno.makeTempDir();
  try {
    await convertTeacher(llamaDir, tmp, { attentionLayers: attention, mamba: 1, init: "attention", seed: 0 });
    using model = await LlamaModel.load(tmp);
    return await f(model);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test("Mamba-1 decoding (mamba1_decode + conv1d/selective-scan steps): prefill, a chunk, steps and rolled-back rounds give the full forward's logits", async () => {
  await withMamba1([1], async (model) => {
    assert.ok(model.layers[0].mamba1 && model.layers[1].attn, "layer 0 Mamba-1, layer 1 attention");
    const V = model.config.vocabSize;
    const rng = new Rng(3);
    const rows = [0, 1].map(() => Int32Array.from({ length: T }, () => rng.int(V)));
    const cols = (t0: number, t1: number) =>
      Tensor.from(Int32Array.from(rows.flatMap((r) => Array.from(r.subarray(t0, t1)))), [2, t1 - t0], "i32");
    using all = cols(0, T);
    const { logits: fl } = model.forward(all);
    const full = (await fl.toArray()) as Float32Array;
    fl.dispose();
    using state = new DecodeState(model.createCache(2, T + 4));
    assert.ok(state.layers[0] instanceof Mamba1Cache);
    const run = async (t0: number, t1: number) => {
      using x = cols(t0, t1);
      const { logits } = model.forward(x, { cache: state.layers });
      const want = new Float32Array(2 * (t1 - t0) * V);
      for (let b = 0; b < 2; b++) {
        want.set(full.subarray((b * T + t0) * V, (b * T + t1) * V), b * (t1 - t0) * V);
      }
      assertAllclose(await logits.toArray(), want, { atol: 1e-4, rtol: 0, name: `logits [${t0}, ${t1})` });
      logits.dispose();
    };
    const junk = (L: number) => {
      using x = Tensor.from(Int32Array.from({ length: 2 * L }, (_, i) => (7 * i + 1) % V), [2, L], "i32");
      model.forward(x, { cache: state.layers }).logits.dispose();
    };
    await run(0, 4); // chunked prefill from a zero state
    state.begin(4); // a verification-like round: 2 true tokens and 2 rejected, in one pass
    await run(4, 6);
    junk(2);
    state.commit(2);
    state.begin(3); // a draft-like round of single steps, the last one rejected
    await run(6, 7);
    junk(1);
    state.commit(1);
    await run(7, 8); // plain steps
    await run(8, 10); // and a chunk from a non-zero state
  });
});

Deno.test("speculative decoding, greedy: a Mamba-1 hybrid as draft and as target gives the target-only tokens", async () => {
  await withMamba1([1], async (m1) => {
    using hybrid = await LlamaModel.load(hybridDir);
    const tok = await loadTokenizer(hybridDir);
    for (const [target, draft] of [[hybrid, m1], [m1, hybrid], [m1, m1]]) {
      const o = { temperature: 0, maxTokens: 8, stopAtEos: false };
      const plain = await generate(target, tok, "The jury said", o);
      const spec = await speculativeGenerate(target, draft, tok, "The jury said", { ...o, lookahead: 3 });
      assert.deepEqual(spec.tokens, plain.tokens);
      if (target === draft) assert.equal(spec.acceptanceRate, 1);
    }
  });
});
