import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { loadTokenizer, type TextTokenizer } from "../../lib/io/tokenizer.ts";
import { convertTeacher } from "../../lib/distill/convert.ts";
import { encodePrompt, generate } from "../../lib/decode/generate.ts";
import { argmax, samplingDistribution } from "../../lib/decode/sampling.ts";
import { gpuUniform } from "../../lib/decode/gpu_sampler.ts";
import { roundSeed, speculativeAccept, speculativeGenerate } from "../../lib/decode/speculative.ts";
import { drawIndexOrder, speculativeAcceptRef } from "../../lib/decode/speculative_ref.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { perturbedDraft } from "./_perturbed.ts";
import { Rng } from "../../lib/random.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose } from "../_assert.ts";

await initGpu();
const hybridDir = new URL("../fixtures/tiny-hybrid-mamba2", import.meta.url).pathname;
const llamaDir = new URL("../fixtures/tiny-llama", import.meta.url).pathname;

/** A random probability vector of length V with some exact zeros (as top-p leaves them). */
function randomDist(rng: Rng, V: number): Float64Array {
  const p = Float64Array.from({ length: V }, () => (rng.uniform() < 0.2 ? 0 : rng.uniform() ** 2));
  p[rng.int(V)] += 0.1;
  const z = p.reduce((a, b) => a + b, 0);
  return p.map((x) => x / z);
}

/** Pearson's χ² of observed counts against probabilities (cells with expected 0 must be empty). */
function chiSquare(counts: number[], p: ArrayLike<number>, n: number): number {
  let x2 = 0;
  counts.forEach((c, v) => {
    const e = n * p[v];
    if (e === 0) assert.equal(c, 0, `token ${v} has probability 0 but was drawn ${c} times`);
    else x2 += (c - e) ** 2 / e;
  });
  return x2;
}

// χ² critical values at α = 0.001 by degrees of freedom.
const CHI2_999: Record<number, number> = {
  1: 10.83,
  2: 13.82,
  3: 16.27,
  4: 18.47,
  5: 20.52,
  6: 22.46,
  7: 24.32,
};
const dof = (p: ArrayLike<number>) => Array.from(p).filter((x) => x > 0).length - 1;

/** The first token a round emits, d_1 when accepted, else the resampled one. */
const firstToken = (o: { accepted: number; token: number }, drafts: number[]) =>
  o.accepted > 0 ? drafts[0] : o.token;

Deno.test("speculative rule (host twin): the first emitted token follows the target distribution (χ²), the raw draft does not", () => {
  const rng = new Rng(7);
  const V = 6, K = 3, n = 20000;
  const p = Array.from({ length: K + 1 }, () => randomDist(rng, V));
  const q = Array.from({ length: K }, () => randomDist(rng, V));
  const counts = Array(V).fill(0);
  const draftCounts = Array(V).fill(0);
  const seen = new Set<number>();
  for (let trial = 0; trial < n; trial++) {
    const drafts = q.map((qi) => drawIndexOrder(qi, rng.uniform()));
    const o = speculativeAcceptRef(p, q, drafts, Array.from({ length: K + 1 }, () => rng.uniform()));
    seen.add(o.accepted);
    counts[firstToken(o, drafts)]++;
    draftCounts[drafts[0]]++;
  }
  const x2 = chiSquare(counts, p[0], n);
  assert.ok(x2 < CHI2_999[dof(p[0])], `χ² ${x2.toFixed(1)} of the emitted token against p_1`);
  // The test can fail: the draft's own tokens are far from p_1.
  let xq = 0;
  draftCounts.forEach((c, v) => {
    if (p[0][v] > 0) xq += (c - n * p[0][v]) ** 2 / (n * p[0][v]);
    else if (c > 0) xq = Infinity;
  });
  assert.ok(xq > 10 * CHI2_999[dof(p[0])], `χ² ${xq.toFixed(1)} of the raw drafts should be large`);
  assert.deepEqual([...seen].sort(), [0, 1, 2, 3], "every number of accepted drafts occurred");
});

Deno.test("speculative rule (host twin): temperature 0 is greedy prefix matching", () => {
  const oneHot = (v: number) => Float64Array.from({ length: 5 }, (_, i) => (i === v ? 1 : 0));
  const p = [oneHot(2), oneHot(4), oneHot(1), oneHot(3)];
  for (
    const [drafts, accepted, token] of [[[2, 4, 1], 3, 3], [[2, 0, 1], 1, 4], [[3, 4, 1], 0, 2]] as const
  ) {
    const o = speculativeAcceptRef(p, drafts.map(oneHot), drafts, [0.99, 0.99, 0.99, 0.5]);
    assert.deepEqual(o, { accepted, token });
  }
});

Deno.test("speculative.wgsl accept: every row equals the host twin with the same draws, and the emitted token follows p (χ²)", async () => {
  await checkAccept(7, 3000, true);
  // A vocabulary of 4133: each invocation's chunk of the final draw is 17 entries, loaded eight at a time.
  await checkAccept(4133, 64, false);
});

async function checkAccept(V: number, R: number, chi: boolean): Promise<void> {
  const rng = new Rng(11);
  const K = 2, seed = 1234;
  const p = Array.from({ length: K + 1 }, () => randomDist(rng, V));
  const q = Array.from({ length: K }, () => randomDist(rng, V));
  const drafts = Array.from({ length: R }, () => q.map((qi) => drawIndexOrder(qi, rng.uniform())));
  const tile = (ds: Float64Array[]) =>
    Float32Array.from({ length: R * ds.length * V }, (_, i) => ds[Math.floor(i / V) % ds.length][i % V]);
  using target = Tensor.from(tile(p), [R, K + 1, V]);
  using draft = Tensor.from(tile(q), [R, K, V]);
  using tokens = Tensor.from(drafts.flatMap((d) => [99, ...d]), [R, K + 1], "i32");
  using result = Tensor.from(new Int32Array(R * (K + 2)).fill(-1), [R, K + 2], "i32");
  using feed = Tensor.from(new Int32Array(R * 2).fill(-1), [R, 2], "i32");
  speculativeAccept({ target, draft, tokens, result, feed }, seed);
  const [res, tok, fd] = await Promise.all([result.toArray(), tokens.toArray(), feed.toArray()]);
  const pf = p.map((x) => Float64Array.from(new Float32Array(x)));
  const qf = q.map((x) => Float64Array.from(new Float32Array(x)));
  const counts = Array(V).fill(0);
  const seen = new Set<number>();
  let mismatches = 0;
  for (let b = 0; b < R; b++) {
    const u = Array.from({ length: K + 1 }, (_, i) => gpuUniform(seed, i, b));
    const want = speculativeAcceptRef(pf, qf, drafts[b], u);
    const got = { accepted: res[b * (K + 2)], token: res[b * (K + 2) + 1] };
    if (got.accepted !== want.accepted || got.token !== want.token) mismatches++;
    assert.deepEqual(Array.from(res.subarray(b * (K + 2) + 2, (b + 1) * (K + 2))), drafts[b]);
    assert.equal(tok[b * (K + 1)], got.token, "slot 0 holds the next round's t_last");
    assert.deepEqual([fd[2 * b], fd[2 * b + 1]], [drafts[b][K - 1], got.token]);
    seen.add(got.accepted);
    counts[firstToken(got, drafts[b])]++;
  }
  // f32 sums can move a draw that lands within rounding of a CDF step; that is rare.
  assert.ok(mismatches <= 2, `${mismatches} of ${R} rows differ from the host twin (V = ${V})`);
  if (!chi) return;
  const x2 = chiSquare(counts, p[0], R);
  assert.ok(x2 < CHI2_999[dof(p[0])], `χ² ${x2.toFixed(1)} of the emitted token against p_1`);
  assert.deepEqual([...seen].sort(), [0, 1, 2], "rejections, partial and full acceptance occurred");
}

Deno.test("speculative decoding: round seeds differ per round and stream", () => {
  const s = new Set([0, 1, 2].flatMap((r) => [roundSeed(5, r, 0), roundSeed(5, r, 1)]));
  assert.equal(s.size, 6);
});

async function greedyEqual(target: LlamaModel, draft: LlamaModel, K: number, maxTokens = 10) {
  const tok = await loadTokenizer(hybridDir);
  const prompt = "The jury said";
  const plain = await generate(target, tok, prompt, { temperature: 0, maxTokens, stopAtEos: false });
  const spec = await speculativeGenerate(target, draft, tok, prompt, {
    temperature: 0,
    maxTokens,
    stopAtEos: false,
    lookahead: K,
  });
  assert.deepEqual(spec.tokens, plain.tokens, `K = ${K}: speculative ≠ target-only greedy`);
  assert.equal(spec.text, plain.text);
  const emitted = spec.rounds.reduce((s, r) => s + r.accepted + 1, 0);
  assert.ok(emitted >= maxTokens && emitted < maxTokens + K + 1, `rounds emitted ${emitted}`);
  return spec;
}

Deno.test("speculative decoding, greedy: a hybrid target with a Transformer draft, and with itself as draft, gives the target-only tokens", async () => {
  using target = await LlamaModel.load(hybridDir);
  using llama = await LlamaModel.load(llamaDir);
  await greedyEqual(target, llama, 3);
  using self = await LlamaModel.load(hybridDir);
  const s = await greedyEqual(target, self, 2, 9);
  // The same model as draft: every draft is accepted (rounds of K + 1 tokens, the draft re-feeds 2).
  assert.equal(s.acceptanceRate, 1);
});

Deno.test("speculative decoding, greedy: a draft whose LM head (useHalfLmHead), then every weight (useHalfWeights), is stored in f16 still gives the target-only tokens", async () => {
  using target = await LlamaModel.load(hybridDir);
  using draft = await LlamaModel.load(llamaDir);
  using ids = Tensor.from([0, 5, 9, 14], [1, 4], "i32");
  const last = async () => {
    using logits = draft.forward(ids, { lastOnly: true }).logits;
    return await logits.toArray();
  };
  const before = await last();
  draft.useHalfLmHead();
  assert.ok(draft.lmHead.parts.every((p) => p.dtype === "f16"), "the head is f16");
  const after = await last();
  assertAllclose(after, before, { atol: 2e-2, rtol: 1e-2, name: "half-head logits" });
  assert.notDeepEqual(Array.from(after), Array.from(before), "the head's weights were rounded");
  await greedyEqual(target, draft, 3);
  // Every linear weight in f16 too (useHalfWeights): a prompt of 12 tokens (linear's row blocks of 8)
  // and the decoding products' W_F16 paths.
  draft.useHalfWeights();
  const l0 = draft.layers[0];
  for (const w of [l0.attn!.q, l0.attn!.k, l0.attn!.v, l0.attn!.o, l0.mlp.gate, l0.mlp.up, l0.mlp.down]) {
    assert.equal(w.parts[0].dtype, "f16");
  }
  using f32 = await LlamaModel.load(llamaDir);
  using long = Tensor.from([0, 5, 9, 14, 3, 8, 21, 2, 7, 11, 4, 6], [1, 12], "i32");
  using a = draft.forward(long, { lastOnly: true }).logits;
  using b = f32.forward(long, { lastOnly: true }).logits;
  assertAllclose(await a.toArray(), await b.toArray(), {
    atol: 5e-2,
    rtol: 2e-2,
    name: "half-weight logits",
  });
  await greedyEqual(target, draft, 3);
});

Deno.test("speculative decoding, greedy: a perturbed copy of the hybrid as draft (partial acceptance: both models roll back) gives the target-only tokens", async () => {
  using target = await LlamaModel.load(hybridDir);
  using draft = await perturbedDraft(hybridDir);
  const s = await greedyEqual(target, draft, 3, 16);
  const acc = s.rounds.map((r) => r.accepted);
  assert.ok(acc.some((r) => r > 0 && r < 3), `rounds accepted ${acc}: no partial acceptance`);
  assert.ok(acc.includes(3), `rounds accepted ${acc}: no full acceptance`);
  // The draft's bookkeeping: every round's drafts are the draft's own greedy tokens after the true prefix.
  const tok = await loadTokenizer(hybridDir);
  const prefix = encodePrompt(target, tok, "The jury said");
  for (const r of s.rounds) {
    for (let i = 0; i < 3; i++) {
      const seq = [...prefix, ...r.drafts.slice(0, i)];
      using x = Tensor.from(seq, [1, seq.length], "i32");
      const { logits } = draft.forward(x, { lastOnly: true });
      assert.equal(r.drafts[i], argmax((await logits.toArray()) as Float32Array), `draft ${i + 1}`);
      logits.dispose();
    }
    prefix.push(...r.drafts.slice(0, r.accepted), r.token);
  }
});

Deno.test("speculative decoding, greedy: a pure-Mamba draft (tiny-llama converted with no attention) gives the target-only tokens", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await convertTeacher(llamaDir, tmp, { attentionLayers: [], mamba: 2, init: "attention", seed: 0 });
    using target = await LlamaModel.load(hybridDir);
    using mamba = await LlamaModel.load(tmp);
    assert.ok(mamba.layers.every((l) => l.mamba), "every layer of the draft is Mamba-2");
    await greedyEqual(target, mamba, 2);
    // and the pure-Mamba model as the target, the hybrid as its draft
    await greedyEqual(mamba, target, 3, 8);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("speculative decoding, sampled: with the target as its own draft nearly every draft is accepted, and a seed fixes the output", async () => {
  using target = await LlamaModel.load(hybridDir);
  using self = await LlamaModel.load(hybridDir);
  const tok = await loadTokenizer(hybridDir);
  const o = { temperature: 1, topP: 1, maxTokens: 12, stopAtEos: false, lookahead: 3, seed: 3 };
  const a = await speculativeGenerate(target, self, tok, "The jury", o);
  const b = await speculativeGenerate(target, self, tok, "The jury", o);
  assert.deepEqual(a.tokens, b.tokens);
  assert.equal(a.tokens.length, 12);
  assert.ok(a.acceptanceRate > 0.8, `acceptance ${a.acceptanceRate}`);
});

Deno.test("speculative decoding: bad lookaheads and mismatched vocabularies are ShapeErrors that say why", async () => {
  using target = await LlamaModel.load(hybridDir);
  const tok = await loadTokenizer(hybridDir);
  const tooFar = target.config.maxPositionEmbeddings;
  await assert.rejects(
    () => speculativeGenerate(target, target, tok, "The jury", { lookahead: tooFar }),
    (e) => e instanceof ShapeError && /exceed max_position_embeddings/.test(e.message),
  );
  await assert.rejects(
    () => speculativeGenerate(target, target, tok, "The jury", { lookahead: 0 }),
    (e) => e instanceof ShapeError && /lookahead must be ≥ 1/.test(e.message),
  );
  using small = LlamaModel.random({ ...target.config, vocabSize: 64 }, 0);
  await assert.rejects(
    () => speculativeGenerate(target, small, tok, "The jury"),
    (e) => e instanceof ShapeError && /vocabulary/.test(e.message),
  );
});

/** Pearson's χ² with the cells whose expected count is below 5 merged into one. */
function chiSquareMerged(counts: number[], p: ArrayLike<number>, n: number): { x2: number; dof: number } {
  let x2 = 0, cells = 0, restC = 0, restE = 0;
  counts.forEach((c, v) => {
    const e = n * p[v];
    if (e >= 5) {
      x2 += (c - e) ** 2 / e;
      cells++;
    } else {
      restC += c;
      restE += e;
    }
  });
  if (restE > 0) {
    x2 += (restC - restE) ** 2 / restE;
    cells++;
  } else if (restC > 0) x2 = Infinity;
  return { x2, dof: cells - 1 };
}

Deno.test("speculative decoding, sampled, end to end: the first token over 100 seeds follows the target's distribution, not the draft's (χ²)", async () => {
  const base = (await LlamaModel.load(llamaDir)).config;
  // Two unrelated random models over a 5-token vocabulary, with peaked distributions (std 1).
  const cfg = {
    ...base,
    vocabSize: 5,
    hiddenSize: 16,
    intermediateSize: 32,
    numLayers: 1,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 8,
    bosTokenId: 0,
    eosTokenIds: [],
    maxPositionEmbeddings: 16,
  };
  using target = LlamaModel.random(cfg, 1, 1);
  using draft = LlamaModel.random(cfg, 2, 1);
  const tok = {
    encode: () => [0, 3],
    decode: () => "",
    bosTokenId: 0,
    eosTokenId: null,
  } as unknown as TextTokenizer;
  const dist = async (m: LlamaModel) => {
    using x = Tensor.from([0, 3], [1, 2], "i32");
    const { logits } = m.forward(x, { lastOnly: true });
    const p = samplingDistribution((await logits.toArray()) as Float32Array, { temperature: 1 });
    logits.dispose();
    return p;
  };
  const [p, q] = [await dist(target), await dist(draft)];
  const n = 100;
  const counts = Array(5).fill(0);
  for (let seed = 0; seed < n; seed++) {
    const r = await speculativeGenerate(target, draft, tok, "", {
      temperature: 1,
      maxTokens: 1,
      stopAtEos: false,
      lookahead: 2,
      seed,
    });
    counts[r.tokens[0]]++;
  }
  const vsP = chiSquareMerged(counts, p, n);
  const vsQ = chiSquareMerged(counts, q, n);
  assert.ok(
    vsP.x2 < (CHI2_999[vsP.dof] ?? 13.82),
    `χ² ${vsP.x2.toFixed(1)} (dof ${vsP.dof}) against p; counts ${counts}`,
  );
  assert.ok(vsQ.x2 > 50, `χ² ${vsQ.x2.toFixed(1)} against the draft's q should be large; counts ${counts}`);
});
