import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { loadTokenizer } from "../../lib/io/tokenizer.ts";
import { generate } from "../../lib/decode/generate.ts";
import { argmax } from "../../lib/decode/sampling.ts";
import { DecodeState } from "../../lib/models/decode_state.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose } from "../_assert.ts";

await initGpu();
const dir = new URL("../fixtures/tiny-hybrid-mamba2", import.meta.url).pathname;
const T = 12;

/** Rows of the fixture's input_ids, cut to T tokens: (2, T). */
async function fixtureIds(): Promise<Int32Array[]> {
  using ref = await SafetensorsFile.open(`${dir}/reference.safetensors`);
  const ids = (await ref.read("input_ids")).data as Int32Array;
  const L = ids.length / 2;
  return [ids.slice(0, T), ids.slice(L, L + T)];
}

/** Tokens [t0, t1) of both rows as a (2, t1 − t0) tensor. */
function cols(rows: Int32Array[], t0: number, t1: number): Tensor {
  return Tensor.from(
    Int32Array.from(rows.flatMap((r) => Array.from(r.subarray(t0, t1)))),
    [2, t1 - t0],
    "i32",
  );
}

/** Logits (2, t1 − t0, V) of positions [t0, t1) of a full forward's (2, T, V). */
function slice(full: Float32Array, t0: number, t1: number, V: number): Float32Array {
  const out = new Float32Array(2 * (t1 - t0) * V);
  for (let b = 0; b < 2; b++) out.set(full.subarray((b * T + t0) * V, (b * T + t1) * V), b * (t1 - t0) * V);
  return out;
}

Deno.test("hybrid decoding (mamba2_decode + conv1d/SSD steps): prefill, a chunk and token steps give the full forward's logits", async () => {
  using model = await LlamaModel.load(dir);
  const V = model.config.vocabSize;
  const rows = await fixtureIds();
  using all = cols(rows, 0, T);
  const { logits: fl } = model.forward(all);
  const full = (await fl.toArray()) as Float32Array;
  fl.dispose();
  using state = new DecodeState(model.createCache(2, T));
  // prefill 5 (chunked conv + SSD from a zero state), a chunk of 3 (from a non-zero state), 4 single steps
  const calls = [[0, 5], [5, 8], [8, 9], [9, 10], [10, 11], [11, 12]];
  for (const [t0, t1] of calls) {
    using x = cols(rows, t0, t1);
    const { logits } = model.forward(x, { cache: state.layers });
    assertAllclose(await logits.toArray(), slice(full, t0, t1, V), {
      atol: 1e-4,
      rtol: 0,
      name: `logits [${t0}, ${t1})`,
    });
    logits.dispose();
  }
  assert.equal(state.length, T);
});

Deno.test("hybrid decoding: a round rolled back to its accepted prefix continues exactly (multi-token and single-step rounds)", async () => {
  using model = await LlamaModel.load(dir);
  const V = model.config.vocabSize;
  const rows = await fixtureIds();
  using all = cols(rows, 0, T);
  const { logits: fl } = model.forward(all);
  const full = (await fl.toArray()) as Float32Array;
  fl.dispose();
  using state = new DecodeState(model.createCache(2, T + 4));
  const run = async (t0: number, t1: number, check = true) => {
    using x = cols(rows, t0, t1);
    const { logits } = model.forward(x, { cache: state.layers });
    if (check) {
      assertAllclose(await logits.toArray(), slice(full, t0, t1, V), {
        atol: 1e-4,
        rtol: 0,
        name: `logits [${t0}, ${t1})`,
      });
    }
    logits.dispose();
  };
  await run(0, 3);
  // A verification-like round: 4 tokens in one pass, of which 2 are kept.
  state.begin(4);
  using wrong = Tensor.from([rows[0][3], rows[0][4], 7, 9, rows[1][3], rows[1][4], 11, 13], [2, 4], "i32");
  model.forward(wrong, { cache: state.layers }).logits.dispose();
  assert.throws(() => state.commit(5), ShapeError);
  state.commit(2);
  assert.equal(state.length, 5);
  // A draft-like round: single steps, the last one rejected.
  state.begin(3);
  await run(5, 6);
  await run(6, 7);
  using junk = Tensor.from([1, 2], [2, 1], "i32");
  model.forward(junk, { cache: state.layers }).logits.dispose();
  state.commit(2);
  // A round that keeps everything, then plain decoding again.
  state.begin(2);
  await run(7, 9);
  state.commit(2);
  await run(9, 10);
  await run(10, 12);
});

Deno.test("generate on the hybrid: greedy decoding with the decoding state equals argmax of full re-computation", async () => {
  using model = await LlamaModel.load(dir);
  const tok = await loadTokenizer(dir);
  const r = await generate(model, tok, "The jury said", { temperature: 0, maxTokens: 6, stopAtEos: false });
  assert.equal(r.tokens.length, 6);
  const ids = [0, ...tok.encode("The jury said", { addSpecialTokens: false })];
  const V = model.config.vocabSize;
  for (const expected of r.tokens) {
    using x = Tensor.from(ids, [1, ids.length], "i32");
    const { logits } = model.forward(x);
    const next = argmax(((await logits.toArray()) as Float32Array).subarray((ids.length - 1) * V));
    logits.dispose();
    assert.equal(next, expected, `token ${ids.length}`);
    ids.push(next);
  }
});
