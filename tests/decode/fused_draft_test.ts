/**
 * The fused draft round (kernels/fused_draft.wgsl, lib/decode/fused_draft.ts): its proposals' logits
 * against the float64 Llama reference (`logitsRef`) of the sequence the draft has seen, its tokens
 * against their argmax, across rounds that rewrite rejected positions; f16 packing against the GPU
 * model with `useHalfWeights`; and the resident speculative loop with a fused draft against the unfused
 * one (same round records) and plain greedy decoding.
 */
import assert from "node:assert/strict";
import {
  autoFusedDraft,
  FUSED_DRAFT_AUTO_MAX_BYTES,
  FusedDraft,
  fusedDraftStepBytes,
  fusedDraftUnsupported,
} from "../../lib/decode/fused_draft.ts";
import { generate } from "../../lib/decode/generate.ts";
import { speculativeGenerate } from "../../lib/decode/speculative.ts";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { loadTokenizer } from "../../lib/io/tokenizer.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { logitsRef } from "../../lib/models/llama_ref.ts";
import { ropeInverseFrequencies } from "../../lib/tensor/rope.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { perturbedDraft } from "./_perturbed.ts";

await initGpu();
const llamaDir = new URL("../fixtures/tiny-llama", import.meta.url).pathname;
const hybridDir = new URL("../fixtures/tiny-hybrid-mamba2", import.meta.url).pathname;
const ids = [5, 17, 300, 42, 7];

let weights: Map<string, ArrayLike<number>> | null = null;
/** tiny-llama's weights by checkpoint name, read once. */
async function llamaWeights(): Promise<Map<string, ArrayLike<number>>> {
  if (!weights) {
    using st = await SafetensorsFile.open(`${llamaDir}/model.safetensors`);
    weights = new Map();
    for (const n of st.names()) weights.set(n, (await st.read(n)).data as Float32Array);
  }
  return weights;
}

/** Float64 logits of `seq` for tiny-llama, rows `from`.. (V each). */
async function reference(
  model: LlamaModel,
  seq: number[],
  from: number,
  rows: number,
): Promise<Float64Array> {
  const w = await llamaWeights();
  const c = model.config;
  const all = logitsRef(
    { config: c, invFreq: ropeInverseFrequencies(c.rope, c.headDim) },
    (n) => w.get(n)!,
    seq,
    1,
    seq.length,
  );
  return all.subarray(from * c.vocabSize, (from + rows) * c.vocabSize);
}

const argmax = (a: ArrayLike<number>, row: number, V: number) => {
  let best = 0;
  for (let v = 1; v < V; v++) if (a[row * V + v] > a[row * V + best]) best = v;
  return best;
};

/** Every logit within 1e-5 of the largest magnitude (f32 sums in another order than float64's). */
function close(got: Float32Array, want: ArrayLike<number>, what: string) {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < got.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  assert.ok(worst <= 1e-5 * scale, `${what}: worst error ${worst} against logits up to ${scale}`);
}

/** One round of `draft` at pos with `next`; returns [d_1..d_K] and their logits (K, V). */
async function round(draft: FusedDraft, pos: number, next: number[], K: number) {
  const V = draft.model.config.vocabSize;
  using tokens = Tensor.from([next[next.length - 1], ...Array(K).fill(0)], [1, K + 1], "i32");
  using nextT = Tensor.from(next, [1, next.length], "i32");
  using state = Tensor.from([pos, 0, 0, 0, 0], [5], "i32");
  using logits = Tensor.empty([K, V]);
  draft.round(tokens, nextT, state, K, logits);
  const t = Array.from((await tokens.toArray()) as Int32Array).slice(1);
  return { drafts: t, logits: (await logits.toArray()) as Float32Array };
}

Deno.test("fused draft: a round's logits equal the float64 reference; tokens are their argmax; rejected positions are rewritten", async () => {
  using model = await LlamaModel.load(llamaDir);
  const V = model.config.vocabSize;
  const K = 3;
  // Kept one token behind (feed 2): prefill all but the last two, re-feed [ids[3], ids[4]].
  using draft = await FusedDraft.create(model, 64);
  using pre = Tensor.from(ids.slice(0, 3), [1, 3], "i32");
  draft.prefill(pre);
  const r1 = await round(draft, 4, [ids[3], ids[4]], K);
  const seq1 = [...ids, r1.drafts[0], r1.drafts[1]];
  const ref1 = await reference(model, seq1, 4, K);
  close(r1.logits, ref1, "round 1");
  for (let i = 0; i < K; i++) {
    assert.equal(r1.drafts[i], argmax(r1.logits, i, V), `round 1: d_${i + 1} is the argmax`);
    assert.equal(r1.drafts[i], argmax(ref1, i, V), `round 1: d_${i + 1} is the reference's argmax`);
  }
  // d_1 accepted, d_2 rejected for y: the next round is at pos 6 with [d_1, y]; positions 6, 7 are
  // rewritten over what round 1 cached there.
  const y = (r1.drafts[1] + 1) % V;
  const r2 = await round(draft, 6, [r1.drafts[0], y], K);
  const seq2 = [...ids, r1.drafts[0], y, r2.drafts[0], r2.drafts[1]];
  close(r2.logits, await reference(model, seq2, 6, K), "round 2 (after a rejection)");
});

Deno.test("fused draft: a one-token feed runs K + 1 steps, so a fully accepted round finds d_K cached", async () => {
  using model = await LlamaModel.load(llamaDir);
  const K = 2;
  using draft = await FusedDraft.create(model, 64);
  using pre = Tensor.from(ids.slice(0, 4), [1, 4], "i32");
  draft.prefill(pre);
  const r1 = await round(draft, 4, [ids[4]], K);
  close(r1.logits, await reference(model, [...ids, r1.drafts[0]], 4, K), "round 1");
  // Both accepted, bonus token b at pos 7: the draft must have d_2 at position 6 already.
  const b = 99;
  const r2 = await round(draft, 7, [b], K);
  const seq = [...ids, ...r1.drafts, b, r2.drafts[0]];
  close(r2.logits, await reference(model, seq, 7, K), "round 2 (after a fully accepted round)");
});

Deno.test("fused draft: f16 matrices give the logits of the GPU model with useHalfWeights", async () => {
  using model = await LlamaModel.load(llamaDir);
  using draft = await FusedDraft.create(model, 64, { half: true });
  using full32 = await FusedDraft.create(model, 8);
  assert.equal(draft.stepBytes * 2, full32.stepBytes);
  assert.equal(draft.stepBytes, fusedDraftStepBytes(model.config, true), "the packed size");
  using pre = Tensor.from(ids.slice(0, 3), [1, 3], "i32");
  draft.prefill(pre);
  const K = 3;
  const r = await round(draft, 4, [ids[3], ids[4]], K);
  using halfModel = await LlamaModel.load(llamaDir);
  halfModel.useHalfWeights();
  const seq = [...ids, r.drafts[0], r.drafts[1]];
  using x = Tensor.from(seq, [1, seq.length], "i32");
  const { logits } = halfModel.forward(x);
  const want = ((await logits.toArray()) as Float32Array).subarray(4 * model.config.vocabSize);
  logits.dispose();
  close(r.logits, want, "f16 round");
  // And they differ from the f32 weights' logits (the packing did round to halves).
  const full = await reference(model, seq, 4, K);
  assert.ok(r.logits.some((v, i) => Math.abs(v - full[i]) > 1e-5), "f16 logits equal the f32 ones");
});

Deno.test("fused draft: models that do not fit are refused with the reason", async () => {
  using hybrid = await LlamaModel.load(hybridDir);
  assert.match(fusedDraftUnsupported(hybrid, 64) ?? "", /Mamba layers/);
  using model = await LlamaModel.load(llamaDir);
  assert.equal(fusedDraftUnsupported(model, 64), null);
  assert.match(fusedDraftUnsupported(model, 5000) ?? "", /5000 positions exceed 256/);
  await assert.rejects(() => FusedDraft.create(hybrid, 64), ShapeError);
  using draft = await FusedDraft.create(model, 16);
  using big = Tensor.from(Array(17).fill(1), [1, 17], "i32");
  assert.throws(() => draft.prefill(big), ShapeError);
});

Deno.test("fused draft in the resident speculative loop: the unfused draft's round records, the target's greedy output", async () => {
  const tok = await loadTokenizer(llamaDir);
  using target = await LlamaModel.load(llamaDir);
  using draft = await perturbedDraft(llamaDir);
  const greedy = { temperature: 0, maxTokens: 24, stopAtEos: false };
  const plain = await generate(target, tok, "The jury said", greedy);
  for (const [K, prompt] of [[3, "The jury said"], [2, "The"]] as const) {
    const o = { ...greedy, lookahead: K };
    const ref = await speculativeGenerate(target, draft, tok, prompt, o);
    for (const fusedDraft of [true, "half"] as const) {
      const got = await speculativeGenerate(target, draft, tok, prompt, { ...o, fusedDraft });
      assert.deepEqual(got.tokens, ref.tokens, `K ${K} ${fusedDraft}: tokens`);
      if (fusedDraft === true) assert.deepEqual(got.rounds, ref.rounds, `K ${K}: round records`);
    }
    if (prompt === "The jury said") assert.deepEqual(ref.tokens, plain.tokens.slice(0, ref.tokens.length));
    assert.ok(ref.rounds.some((r) => r.accepted < K), "the draft should be rejected sometimes");
    assert.ok(ref.rounds.some((r) => r.accepted > 0), "the draft should be accepted sometimes");
  }
  await assert.rejects(
    () => speculativeGenerate(target, draft, tok, "The", { temperature: 1, fusedDraft: true }),
    /temperature 0/,
  );
  // "auto": fused (f16) for greedy decoding with this small draft, unfused when sampling or too large.
  const auto = await speculativeGenerate(target, draft, tok, "The jury said", {
    ...greedy,
    fusedDraft: "auto",
  });
  assert.equal(auto.fusedDraft, true);
  assert.deepEqual(auto.tokens, plain.tokens);
  const sampled = await speculativeGenerate(target, draft, tok, "The", {
    temperature: 1,
    maxTokens: 4,
    fusedDraft: "auto",
  });
  assert.equal(sampled.fusedDraft, false);
  assert.equal(autoFusedDraft(draft, 64, true), "half");
  assert.equal(autoFusedDraft(draft, 64, false), false);
  const big = { ...draft.config, numLayers: 12, intermediateSize: 768, hiddenSize: 256, numHeads: 8 };
  assert.ok(fusedDraftStepBytes(big, true) > FUSED_DRAFT_AUTO_MAX_BYTES);
});

Deno.test("fused draft: 800 positions and 8 heads of 8 (the attention in chunks of heads) equal the float64 reference", async () => {
  using tiny = await LlamaModel.load(llamaDir);
  const config = {
    ...tiny.config,
    numHeads: 8,
    numKvHeads: 2,
    headDim: 8,
    maxPositionEmbeddings: 1024,
    numLayers: 1,
  };
  using model = LlamaModel.random(config, 3, 0.1);
  const w = new Map<string, Float32Array>();
  for (const [n, t] of model.namedParameters()) w.set(n, (await t.toArray()) as Float32Array);
  const n = 800;
  const seq = Array.from({ length: n }, (_, i) => (i * 131 + 7) % config.vocabSize);
  using draft = await FusedDraft.create(model, n + 4);
  using pre = Tensor.from(seq.slice(0, n - 2), [1, n - 2], "i32");
  draft.prefill(pre);
  const r = await round(draft, n - 1, [seq[n - 2], seq[n - 1]], 2);
  const ref = logitsRef(
    { config, invFreq: ropeInverseFrequencies(config.rope, config.headDim) },
    (name) => w.get(name)!,
    [...seq, r.drafts[0]],
    1,
    n + 1,
  );
  close(r.logits, ref.subarray((n - 1) * config.vocabSize), "800 positions");
});
