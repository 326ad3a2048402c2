/**
 * Speculative decoding (method.md §3.9; Leviathan et al. 2023, Algorithm 1; the round protocol of
 * itsdaniele/speculative_mamba). Each round:
 *
 *   1. the draft proposes d_1..d_K from t_last, one token at a time, sampling on the GPU and keeping its
 *      kept, normalised distributions q_1..q_K;
 *   2. the target scores [t_last, d_1..d_K] in one multi-token pass (KV caches extended, Mamba-2 layers
 *      through the chunked conv + SSD from their state), giving p_1..p_{K+1};
 *   3. `kernels/speculative.wgsl` applies the accept / resample / bonus rule and writes the round's
 *      result and the next round's inputs in place; the host reads K + 2 words (the round's only
 *      readback) to learn r, the number of accepted drafts;
 *   4. both models keep the tokens the round settled: the target keeps t_last, d_1..d_r (r + 1 tokens:
 *      KV caches truncate, Mamba-2 layers replay the kept steps from their checkpoint); the draft keeps
 *      what it fed before d_{r+1} and, when every draft was accepted, feeds [d_K, t] next round (it never
 *      saw d_K).
 *
 * The prompt's last token is the first round's t_last (both models prefill the rest), as the reference.
 * Draws: the draft's use the sampler's hash with a per-round seed, the rule's another, so a seed fixes
 * the whole output. With temperature 0 the output is the target's greedy decoding, token for token.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, Params, sync } from "../gpu/commands.ts";
import type { TextTokenizer } from "../io/tokenizer.ts";
import { DecodeState } from "../models/decode_state.ts";
import type { LlamaModel } from "../models/llama.ts";
import { copyElements } from "../tensor/copy.ts";
import { expectShape, fmtShape, Tensor } from "../tensor/tensor.ts";
import {
  encodePrompt,
  type GenerateOptions,
  type GenerateResult,
  stopTokens,
  textStream,
} from "./generate.ts";
import { type GpuSamplingOptions, pcg, samplerParams } from "./gpu_sampler.ts";

/** The buffers of one application of the rule, for B rows (see `kernels/speculative.wgsl`). */
export interface AcceptBuffers {
  /** (B, K + 1, V) the target's kept, normalised distributions. */
  target: Tensor;
  /** (B, K, V) the draft's. */
  draft: Tensor;
  /** (B, K + 1) i32: [t_last, d_1..d_K]; slot 0 becomes the emitted token t. */
  tokens: Tensor;
  /** (B, K + 2) i32: written [r, t, d_1..d_K]. */
  result: Tensor;
  /** (B, 2) i32: written [d_K, t]. */
  feed: Tensor;
}

/** Runs the accept / resample / bonus rule on every row; `seed` fixes its draws (`gpuUniform`). */
export function speculativeAccept(b: AcceptBuffers, seed: number): void {
  const op = "speculativeAccept";
  if (b.target.shape.length !== 3) {
    throw new ShapeError(op, `expected target (B, K + 1, V), got ${fmtShape(b.target.shape)}`);
  }
  const [B, K1, V] = b.target.shape;
  const K = K1 - 1;
  if (K < 1) throw new ShapeError(op, `lookahead K must be ≥ 1, got target ${fmtShape(b.target.shape)}`);
  expectShape(op, "draft (B, K, V)", b.draft, [B, K, V]);
  expectShape(op, "tokens (B, K + 1)", b.tokens, [B, K1]);
  expectShape(op, "result (B, K + 2)", b.result, [B, K + 2]);
  expectShape(op, "feed (B, 2)", b.feed, [B, 2]);
  for (const [name, t] of [["tokens", b.tokens], ["result", b.result], ["feed", b.feed]] as const) {
    if (t.dtype !== "i32") throw new ShapeError(op, `${name} must be i32, got ${t.dtype}`);
  }
  dispatch(
    { file: "speculative.wgsl", entry: "accept" },
    [b.target.buffer, b.draft.buffer, b.tokens.buffer, b.result.buffer, b.feed.buffer],
    new Params().u32(B, K, V, seed >>> 0),
    [B],
  );
}

/** The seed of round `round`'s draws: stream 0 for the draft's samples, 1 for the rule. */
export function roundSeed(seed: number, round: number, stream: 0 | 1): number {
  return pcg((seed ^ pcg(2 * round + stream)) >>> 0);
}

/** Options of {@linkcode speculativeGenerate}. */
export interface SpeculativeOptions extends GenerateOptions {
  /** Draft tokens per round, K (default 3). */
  lookahead?: number;
}

/** One round: the K drafts, how many were accepted, and the resampled or bonus token. */
export interface RoundRecord {
  /** d_1..d_K as the draft proposed them. */
  drafts: number[];
  /** How many of them the target accepted (0..K). */
  accepted: number;
  /** The target's own token: resampled at the first rejection, or the bonus token. */
  token: number;
}

/** Result of {@linkcode speculativeGenerate}. */
export interface SpeculativeResult extends GenerateResult {
  /** Every round, in order. */
  rounds: RoundRecord[];
  /** Accepted drafts / proposed drafts. */
  acceptanceRate: number;
  /** Mean accepted drafts per round (each round emits that plus one). */
  meanAccepted: number;
}

/** Writes the kept, normalised next-token distributions of `rows` logits rows into `dist` (rows, V). */
function distribution(logits: Tensor, dist: Tensor, rows: number, V: number, o: GpuSamplingOptions): void {
  dispatch(
    { file: "sample.wgsl", entry: "distribution" },
    [logits.buffer, null, null, dist.buffer],
    samplerParams(rows, V, 1, 0, o),
    [rows],
  );
}

/** Generates a continuation of `prompt` from `target`, with `draft` proposing `lookahead` tokens a round. */
export async function speculativeGenerate(
  target: LlamaModel,
  draft: LlamaModel,
  tokenizer: TextTokenizer,
  prompt: string,
  opts: SpeculativeOptions = {},
): Promise<SpeculativeResult> {
  const K = opts.lookahead ?? 3;
  const V = target.config.vocabSize;
  if (!Number.isInteger(K) || K < 1) throw new ShapeError("speculative", `lookahead must be ≥ 1, got ${K}`);
  if (draft.config.vocabSize !== V) {
    throw new ShapeError(
      "speculative",
      `the draft's vocabulary (${draft.config.vocabSize}) ≠ the target's (${V})`,
    );
  }
  const ids = encodePrompt(target, tokenizer, prompt);
  const eos = stopTokens(target, tokenizer);
  const room = Math.min(target.config.maxPositionEmbeddings, draft.config.maxPositionEmbeddings);
  if (ids.length === 0) {
    throw new ShapeError("speculative", "the prompt is empty and the model has no BOS token to start from");
  }
  if (ids.length + K + 1 > room) {
    throw new ShapeError(
      "speculative",
      `a prompt of ${ids.length} tokens and lookahead ${K} exceed max_position_embeddings ${room}`,
    );
  }
  const steps = Math.max(0, Math.min(opts.maxTokens ?? 64, room - ids.length - K - 1));
  const capacity = ids.length + steps + K + 1;
  using tState = new DecodeState(target.createCache(1, capacity));
  using dState = new DecodeState(draft.createCache(1, capacity));
  const last = ids[ids.length - 1];
  using roundTokens = Tensor.from([last, ...Array(K).fill(0)], [1, K + 1], "i32");
  using q = Tensor.empty([1, K, V]);
  using qi = Tensor.empty([1, V]);
  using p = Tensor.empty([1, K + 1, V]);
  using result = Tensor.zeros([1, K + 2], "i32");
  using feed2 = Tensor.zeros([1, 2], "i32");
  using feed1 = Tensor.from([last], [1, 1], "i32");
  using draftNext = Tensor.zeros([1, 1], "i32");
  if (ids.length > 1) {
    using pre = Tensor.from(ids.slice(0, -1), [1, ids.length - 1], "i32");
    target.forward(pre, { cache: tState.layers, lastOnly: true }).logits.dispose();
    draft.forward(pre, { cache: dState.layers, lastOnly: true }).logits.dispose();
  }
  await sync(); // the prefill is not part of the timing
  const start = performance.now();
  const out: number[] = [];
  const stream = textStream(tokenizer, out, opts.onText);
  const rounds: RoundRecord[] = [];
  const seed = opts.seed ?? 0;
  let feedLen = 1; // 2 after a fully accepted round: the draft still has to see d_K
  let done = steps === 0;
  for (let round = 0; !done; round++) {
    // 1. The draft proposes d_1..d_K (slots 1..K of roundTokens), keeping q_1..q_K.
    const draftOpts = { ...opts, seed: roundSeed(seed, round, 0) };
    dState.begin(K + 1);
    for (let i = 1; i <= K; i++) {
      const input = i > 1 ? draftNext : feedLen === 1 ? feed1 : feed2;
      const { logits } = draft.forward(input, { cache: dState.layers, lastOnly: true });
      distribution(logits, qi, 1, V, draftOpts);
      copyElements(qi, 0, q, (i - 1) * V, V);
      dispatch(
        { file: "sample.wgsl", entry: "sample" },
        [logits.buffer, roundTokens.buffer, draftNext.buffer],
        samplerParams(1, V, K + 1, i, draftOpts),
        [1],
      );
      logits.dispose();
    }
    // 2. The target scores [t_last, d_1..d_K] in one pass.
    tState.begin(K + 1);
    const { logits } = target.forward(roundTokens, { cache: tState.layers });
    distribution(logits, p, K + 1, V, opts);
    logits.dispose();
    // 3. The rule, on the GPU; the next round's inputs are written in place.
    speculativeAccept(
      { target: p, draft: q, tokens: roundTokens, result, feed: feed2 },
      roundSeed(seed, round, 1),
    );
    copyElements(feed2, 1, feed1, 0, 1);
    const res = Array.from((await result.toArray()) as Int32Array);
    const r = res[0];
    const rec = { drafts: res.slice(2), accepted: r, token: res[1] };
    rounds.push(rec);
    // 4. Keep what the round settled.
    tState.commit(r + 1);
    if (r === K) {
      dState.commit(dState.roundSteps);
      feedLen = 2;
    } else {
      dState.commit(feedLen + r);
      feedLen = 1;
    }
    for (const t of [...rec.drafts.slice(0, r), rec.token]) {
      if ((opts.stopAtEos ?? true) && eos.has(t)) {
        done = true;
        break;
      }
      out.push(t);
      if (out.length >= steps) {
        done = true;
        break;
      }
    }
    stream.push();
  }
  const seconds = (performance.now() - start) / 1000;
  const accepted = rounds.reduce((s, r) => s + r.accepted, 0);
  return {
    text: stream.finish(),
    tokens: out,
    promptTokens: ids.length,
    tokensPerSecond: seconds > 0 ? out.length / seconds : 0,
    rounds,
    acceptanceRate: rounds.length ? accepted / (rounds.length * K) : 0,
    meanAccepted: rounds.length ? accepted / rounds.length : 0,
  };
}
