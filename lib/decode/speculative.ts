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
 * That is the host loop (`hostRounds: true`). By default the rounds stay on the GPU: nothing the host
 * records depends on r. A small i32 buffer holds [pos, keep, done, emitted, round]; the forward calls
 * read the position from it (RoPE, KV append and the causal mask, `kernels/kv_decode.wgsl`), Mamba
 * layers replay `keep` of their K + 1 cached steps with masking (`kernels/decode_state.wgsl`), the draft
 * and the rule derive their seeds from the round counter, and `accept_round` (`kernels/speculative.wgsl`)
 * writes the round's record, counts the emitted tokens against EOS and `maxTokens` and advances the
 * state. So that every round is the same work, the draft is kept one token behind the target: it feeds
 * [prev, t_last] in one forward, then d_1..d_{K−1} (K forwards), and both models keep r + 1 of the
 * K + 1 tokens they were fed (after a one-token prompt, with no prev, the draft runs K + 1 one-token
 * steps [t_last, d_1..d_K] instead, the last only to see d_K). The first
 * round is recorded once and captured (`captureCommands`); every later round replays it (no bind groups
 * are rebuilt), each round is submitted as soon as it is recorded, and the host reads the round records
 * back every `roundsPerRead` rounds, chunks in flight while the next ones run, then streams the text. At
 * temperature 0 the rule needs no distributions: the draft's argmax tokens and the target's (`sample` on
 * its K + 1 rows) go to `accept_round_greedy`, and from a vocabulary of 16,384 each argmax is split over
 * workgroups (`argmaxSlices`).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { autoFusedDraft, FusedDraft } from "./fused_draft.ts";
import {
  type Binding,
  captureCommands,
  type CapturedCommands,
  dispatch,
  flush,
  Params,
  releaseCapture,
  replayCommands,
  sync,
} from "../gpu/commands.ts";
import { dummyBuffer } from "../gpu/buffers.ts";
import { readBuffers } from "../gpu/transfer.ts";
import { gpu } from "../gpu/device.ts";
import { type KernelSpec, precompile } from "../gpu/pipelines.ts";
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
import { argmaxParts, argmaxSlices, type GpuSamplingOptions, pcg, samplerParams } from "./gpu_sampler.ts";

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

/** Words of the round state of {@linkcode speculativeAcceptRound}: [pos, keep, done, emitted, round]. */
export const ROUND_STATE = { pos: 0, keep: 1, done: 2, emitted: 3, round: 4, words: 5 } as const;

/** The buffers of one resident round's rule (one row). */
export interface RoundBuffers {
  /**
   * (1, K + 1, V) the target's kept, normalised distributions; or, at temperature 0, (K + 1) i32: its
   * argmax after each of [t_last, d_1..d_K] (`accept_round_greedy`).
   */
  target: Tensor;
  /** (1, K, V); null at temperature 0 (greedy prefix matching reads the drafts from `tokens`). */
  draft: Tensor | null;
  /** (1, K + 1) i32: [t_last, d_1..d_K]; slot 0 becomes t. */
  tokens: Tensor;
  /** (rounds, K + 2) i32: row `round` gets [r, t, d_1..d_K] ([−1, …] after the end). */
  records: Tensor;
  /**
   * (1, 1) i32: t, the draft's next input; or (1, 2): [the token before t, t], for a draft kept one
   * token behind that re-feeds it.
   */
  next: Tensor;
  /** i32 [pos, keep, done, emitted, round] ({@linkcode ROUND_STATE}). */
  state: Tensor;
  /** i32 end-of-sequence ids (at least one element; `eosCount` of them are used). */
  eos: Tensor;
}

/** Settings of {@linkcode speculativeAcceptRound}. */
export interface RoundSettings {
  /** The generation's seed (the round's is derived from it and the round counter). */
  seed: number;
  /** Emitted tokens at which the generation is done. */
  steps: number;
  /** Stop at an end-of-sequence token. */
  stopAtEos: boolean;
  /** How many ids of `eos` count. */
  eosCount: number;
}

/**
 * The rule inside a round loop that never reads back (`accept_round`): reads and advances the round
 * state on the GPU, writes the round's record, and marks the generation done at EOS or `steps` tokens.
 */
export function speculativeAcceptRound(b: RoundBuffers, o: RoundSettings): void {
  const op = "speculativeAcceptRound";
  const greedy = b.target.dtype === "i32";
  let K1: number, V: number;
  if (greedy) {
    if (b.target.shape.length !== 1) {
      throw new ShapeError(op, `expected the target's tokens (K + 1), got ${fmtShape(b.target.shape)}`);
    }
    [K1, V] = [b.target.shape[0], 0];
  } else {
    if (b.target.shape.length !== 3 || b.target.shape[0] !== 1) {
      throw new ShapeError(op, `expected target (1, K + 1, V), got ${fmtShape(b.target.shape)}`);
    }
    [, K1, V] = b.target.shape;
  }
  const K = K1 - 1;
  if (K < 1) throw new ShapeError(op, `lookahead K must be ≥ 1, got target ${fmtShape(b.target.shape)}`);
  if (!greedy) {
    if (!b.draft) {
      throw new ShapeError(op, "the draft's distributions (1, K, V) are needed above temperature 0");
    }
    expectShape(op, "draft (1, K, V)", b.draft, [1, K, V]);
  }
  expectShape(op, "tokens (1, K + 1)", b.tokens, [1, K1]);
  const feedLen = b.next.size;
  if (b.next.shape.length !== 2 || b.next.shape[0] !== 1 || (feedLen !== 1 && feedLen !== 2)) {
    throw new ShapeError(op, `expected next (1, 1) or (1, 2), got ${fmtShape(b.next.shape)}`);
  }
  expectShape(op, "state (5)", b.state, [ROUND_STATE.words]);
  if (b.records.shape.length !== 2 || b.records.shape[1] !== K + 2) {
    throw new ShapeError(op, `expected records (rounds, K + 2), got ${fmtShape(b.records.shape)}`);
  }
  for (
    const [name, t] of [["tokens", b.tokens], ["records", b.records], ["next", b.next], ["state", b.state], [
      "eos",
      b.eos,
    ]] as const
  ) {
    if (t.dtype !== "i32") throw new ShapeError(op, `${name} must be i32, got ${t.dtype}`);
  }
  if (o.eosCount > b.eos.size) throw new ShapeError(op, `${o.eosCount} EOS ids in a buffer of ${b.eos.size}`);
  const rest = [b.tokens.buffer, b.records.buffer, b.next.buffer, b.state.buffer, b.eos.buffer];
  dispatch(
    { file: "speculative.wgsl", entry: greedy ? "accept_round_greedy" : "accept_round" },
    greedy ? [null, null, ...rest, b.target.buffer] : [b.target.buffer, b.draft!.buffer, ...rest],
    new Params().u32(
      1,
      K,
      V,
      o.seed >>> 0,
      o.steps,
      o.stopAtEos ? 1 : 0,
      o.eosCount,
      b.records.shape[0],
      feedLen,
    ),
    [1],
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
  /**
   * Rounds between readbacks of the GPU-resident loop (default 16: each readback leaves the GPU idle
   * for ~10 ms; at Llama-3.2-1B's shapes a K = 3 round cost 5.03 ms of wall time reading every 8 rounds,
   * 4.91 every 16 and 4.89 every 32, against 4.56 ms of GPU work).
   */
  roundsPerRead?: number;
  /** Read every round's result back and keep the caches on the host (the original loop; default false). */
  hostRounds?: boolean;
  /**
   * Benchmarks: called once after the GPU-resident loop ends with its captured round (the commands every
   * round replays), before it is released, e.g. to time it kernel by kernel. Replaying it moves the
   * decoding state on; the result is already final. Not timed.
   */
  profileRound?: (round: CapturedCommands) => Promise<void>;
  /**
   * Run the draft's whole round in one dispatch ({@linkcode FusedDraft}, `kernels/fused_draft.wgsl`):
   * for greedy (temperature 0) GPU-resident rounds with a small Llama draft (`fusedDraftUnsupported`
   * says which fit). `"half"` packs its matrices as f16. The proposals are the draft's argmax tokens as
   * the unfused draft computes them (its sums in another order). `"auto"` (what `lab generate --draft`
   * passes): `"half"` where greedy decoding and a small enough draft allow it (`autoFusedDraft`), else
   * the unfused draft. Default false.
   */
  fusedDraft?: boolean | "half" | "auto";
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
  /**
   * Wall time per round, ms. The GPU-resident loop times from the end of its first round's capture (as
   * `generate` does from its first step's) and divides by the later rounds; `tokensPerSecond` then leaves
   * out the first round's tokens.
   */
  msPerRound: number;
  /** Whether the draft's rounds ran fused (`fusedDraft`). */
  fusedDraft: boolean;
}

/** Writes the kept, normalised next-token distributions of `rows` logits rows into `dist` (rows, V). */
function distribution(
  logits: Tensor,
  dist: Tensor | Binding,
  rows: number,
  V: number,
  o: GpuSamplingOptions,
): void {
  dispatch(
    { file: "sample.wgsl", entry: "distribution" },
    [logits.buffer, null, null, dist instanceof Tensor ? dist.buffer : dist],
    samplerParams(rows, V, 1, 0, o),
    [rows],
  );
}

/** The kernels only the GPU-resident loop dispatches (compiled in parallel before its first round). */
export const RESIDENT_KERNELS: KernelSpec[] = [
  { file: "kv_decode.wgsl", entry: "rope_append" },
  { file: "kv_decode.wgsl", entry: "attend" },
  { file: "decode_fused.wgsl", entry: "swiglu_matvec" },
  { file: "decode_fused.wgsl", entry: "add_rmsnorm" },
  { file: "split_matvec.wgsl" },
  { file: "mamba2_step.wgsl", entry: "step" },
  { file: "mamba2_step.wgsl", entry: "conv" },
  { file: "sample.wgsl", entry: "sample_round" },
  { file: "sample.wgsl", entry: "distribution" },
  { file: "speculative.wgsl", entry: "accept_round" },
  { file: "sample.wgsl", entry: "argmax_part" },
  { file: "sample.wgsl", entry: "sample" },
  { file: "speculative.wgsl", entry: "accept_round_greedy" },
  { file: "decode_state.wgsl", entry: "ssd_replay" },
  { file: "decode_state.wgsl", entry: "commit_refresh" },
];

/** Rounds written ahead of the host's last readback: chunks of `roundsPerRead` in flight at once. */
const IN_FLIGHT = 3;

/** Generates a continuation of `prompt` from `target`, with `draft` proposing `lookahead` tokens a round. */
export function speculativeGenerate(
  target: LlamaModel,
  draft: LlamaModel,
  tokenizer: TextTokenizer,
  prompt: string,
  opts: SpeculativeOptions = {},
): Promise<SpeculativeResult> {
  if (opts.fusedDraft && opts.fusedDraft !== "auto" && opts.hostRounds) {
    throw new ShapeError(
      "speculative",
      "fusedDraft runs in the GPU-resident loop only (not with hostRounds)",
    );
  }
  return opts.hostRounds
    ? hostLoop(target, draft, tokenizer, prompt, opts)
    : residentLoop(target, draft, tokenizer, prompt, opts);
}

interface Setup {
  K: number;
  V: number;
  ids: number[];
  eos: Set<number>;
  steps: number;
  capacity: number;
}

function setup(
  target: LlamaModel,
  draft: LlamaModel,
  tokenizer: TextTokenizer,
  prompt: string,
  opts: SpeculativeOptions,
): Setup {
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
  return { K, V, ids, eos, steps, capacity: ids.length + steps + K + 1 };
}

/**
 * Prefills the target with all but the prompt's last token and the draft with all but its last
 * `draftFeed` tokens (not timed).
 */
async function prefill(
  target: LlamaModel,
  draft: LlamaModel,
  ids: number[],
  t: DecodeState,
  d: DecodeState | FusedDraft,
  draftFeed = 1,
) {
  for (const [m, st, n] of [[target, t, ids.length - 1], [draft, d, ids.length - draftFeed]] as const) {
    if (n <= 0) continue;
    using pre = Tensor.from(ids.slice(0, n), [1, n], "i32");
    if (st instanceof FusedDraft) st.prefill(pre);
    else m.forward(pre, { cache: st.layers, lastOnly: true }).logits.dispose();
  }
  await sync(); // the prefill is not part of the timing
}

/** Appends what a round emitted to `out`; returns true when the generation is done. */
function emit(rec: RoundRecord, out: number[], s: Setup, opts: SpeculativeOptions): boolean {
  for (const t of [...rec.drafts.slice(0, rec.accepted), rec.token]) {
    if ((opts.stopAtEos ?? true) && s.eos.has(t)) return true;
    out.push(t);
    if (out.length >= s.steps) return true;
  }
  return false;
}

function summary(
  s: Setup,
  text: string,
  out: number[],
  rounds: RoundRecord[],
  seconds: number,
  timedFrom = 0,
  fusedDraft = false,
): SpeculativeResult {
  const accepted = rounds.reduce((sum, r) => sum + r.accepted, 0);
  // Tokens of the untimed rounds (0 … timedFrom − 1).
  const untimed = Math.min(out.length, rounds.slice(0, timedFrom).reduce((n, r) => n + r.accepted + 1, 0));
  return {
    text,
    tokens: out,
    promptTokens: s.ids.length,
    tokensPerSecond: seconds > 0 ? (out.length - untimed) / seconds : 0,
    msPerRound: rounds.length > timedFrom ? 1000 * seconds / (rounds.length - timedFrom) : 0,
    rounds,
    acceptanceRate: rounds.length ? accepted / (rounds.length * s.K) : 0,
    meanAccepted: rounds.length ? accepted / rounds.length : 0,
    fusedDraft,
  };
}

/** The original loop: one readback per round, caches rolled back by the host. */
async function hostLoop(
  target: LlamaModel,
  draft: LlamaModel,
  tokenizer: TextTokenizer,
  prompt: string,
  opts: SpeculativeOptions,
): Promise<SpeculativeResult> {
  const s = setup(target, draft, tokenizer, prompt, opts);
  const { K, V, ids, steps, capacity } = s;
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
  await prefill(target, draft, ids, tState, dState);
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
    done = emit(rec, out, s, opts);
    stream.push();
  }
  const seconds = (performance.now() - start) / 1000;
  return summary(s, stream.finish(), out, rounds, seconds);
}

/** The GPU-resident loop (see the module doc): rounds replayed back to back, records read in chunks. */
async function residentLoop(
  target: LlamaModel,
  draft: LlamaModel,
  tokenizer: TextTokenizer,
  prompt: string,
  opts: SpeculativeOptions,
): Promise<SpeculativeResult> {
  const s = setup(target, draft, tokenizer, prompt, opts);
  const { K, V, ids, steps, capacity } = s;
  const R = Math.max(1, Math.floor(opts.roundsPerRead ?? 16));
  // At temperature 0 the rule needs tokens only: the draft's argmax (in roundTokens) and the target's
  // (targetTok), no distributions; with a large vocabulary each argmax is split over workgroups.
  const greedy = (opts.temperature ?? 1) <= 0;
  const mode = opts.fusedDraft === "auto" ? autoFusedDraft(draft, capacity, greedy) : opts.fusedDraft;
  if (mode && !greedy) {
    throw new ShapeError("speculative", "fusedDraft proposes argmax tokens: it needs temperature 0");
  }
  using fused = mode ? await FusedDraft.create(draft, capacity, { half: mode === "half" }) : null;
  await precompile(fused ? [...RESIDENT_KERNELS, ...fused.kernels] : RESIDENT_KERNELS);
  const K1 = K + 1;
  using tState = new DecodeState(target.createCache(1, capacity));
  using dState = fused ? null : new DecodeState(draft.createCache(1, capacity));
  const last = ids[ids.length - 1];
  // With two prompt tokens or more the draft stays one token behind and re-feeds it with t_last, so it
  // runs K forwards a round ([prev, t_last], d_1..d_{K−1}); a one-token prompt has no prev, and the
  // draft runs K + 1 one-token steps (t_last, d_1..d_K, the last one only to see d_K).
  const behind = ids.length >= 2;
  using roundTokens = Tensor.from([last, ...Array(K).fill(0)], [1, K1], "i32");
  using next = behind
    ? Tensor.from([ids[ids.length - 2], last], [1, 2], "i32")
    : Tensor.from([last], [1, 1], "i32");
  using draftNext = Tensor.zeros([1, 1], "i32");
  const G = argmaxSlices(V, opts);
  using q = greedy ? null : Tensor.empty([1, K, V]);
  using qi = greedy ? null : Tensor.empty([1, V]);
  using p = greedy ? null : Tensor.empty([1, K1, V]);
  using targetTok = greedy ? Tensor.zeros([K1], "i32") : null;
  using targetNext = greedy ? Tensor.zeros([K1], "i32") : null; // sample's `next` output, unread
  using draftParts = G > 0 ? Tensor.empty([G, 2]) : null;
  using targetParts = G > 0 ? Tensor.empty([K1, G, 2]) : null;
  // Each round emits ≥ 1 token and the loop records at most IN_FLIGHT chunks past the host's count.
  const maxRounds = steps + (IN_FLIGHT + 1) * R + 1;
  // q_i straight into its slot of q when the slot's offset is a valid binding offset (else via qi).
  const align = gpu().device.limits.minStorageBufferOffsetAlignment;
  const slot = (i: number): Binding | null =>
    q && (i * V * 4) % align === 0 ? { buffer: q.buffer, offset: i * V * 4, size: V * 4 } : null;
  using records = Tensor.zeros([maxRounds, K + 2], "i32");
  const eosIds = [...s.eos];
  using eosBuf = Tensor.from(eosIds.length ? eosIds : [-1], [Math.max(1, eosIds.length)], "i32");
  using state = Tensor.from([ids.length - 1, 0, steps === 0 ? 1 : 0, 0, 0], [ROUND_STATE.words], "i32");
  await prefill(target, draft, ids, tState, fused ?? dState!, behind ? 2 : 1);
  // The Mamba-2 checkpoints hold the prefilled state, so the recorded round begins without copies.
  tState.prime(K1);
  dState?.prime(K1);
  const seed = opts.seed ?? 0;
  const settings: RoundSettings = {
    seed,
    steps,
    stopAtEos: opts.stopAtEos ?? true,
    eosCount: eosIds.length,
  };
  const keep = { counts: state, word: ROUND_STATE.keep };
  // The unfused draft's part of a round: its first forward is [prev, t_last] at positions pos − 1, pos
  // (behind) or t_last at pos, then d_i at pos + i; each proposal is sampled into its slot.
  const propose = (dState: DecodeState) => {
    dState.begin(K1);
    for (let i = 0; i < (behind ? K : K + 1); i++) {
      const position = { counts: state, word: ROUND_STATE.pos, offset: i === 0 && behind ? -1 : i };
      const { logits } = draft.forward(i === 0 ? next : draftNext, {
        cache: dState.layers,
        lastOnly: true,
        position,
      });
      if (i < K && greedy) {
        // d_{i+1} = the argmax, into slot i + 1 of roundTokens and draftNext (no q: with_dist 0).
        if (draftParts) argmaxParts(logits, draftParts, 1, V, G);
        dispatch(
          { file: "sample.wgsl", entry: "sample_round" },
          [(draftParts ?? logits).buffer, roundTokens.buffer, draftNext.buffer, dummyBuffer(), state.buffer],
          samplerParams(1, V, K1, i + 1, { ...opts, seed }).u32(ROUND_STATE.round, 0, G),
          [1],
        );
      } else if (i < K) {
        // d_{i+1} into slot i + 1 of roundTokens and draftNext, and q_{i+1}, in one dispatch.
        const direct = slot(i);
        dispatch(
          { file: "sample.wgsl", entry: "sample_round" },
          [logits.buffer, roundTokens.buffer, draftNext.buffer, direct ?? qi!.buffer, state.buffer],
          samplerParams(1, V, K1, i + 1, { ...opts, seed }).u32(ROUND_STATE.round, 1),
          [1],
        );
        if (!direct) copyElements(qi!, 0, q!, i * V, V);
      }
      logits.dispose();
    }
  };
  const round = () => {
    // 1. The draft proposes d_1..d_K (slots 1..K of roundTokens), keeping q_1..q_K; a fused draft runs
    //    all of it in one dispatch.
    if (fused) fused.round(roundTokens, next, state, K);
    else propose(dState!);
    // 2. The target scores [t_last, d_1..d_K] in one pass.
    tState.begin(K1);
    const position = { counts: state, word: ROUND_STATE.pos, offset: 0 };
    const { logits } = target.forward(roundTokens, { cache: tState.layers, position });
    if (targetTok) {
      // The target's K + 1 argmax tokens (`sample` at temperature 0, one row each).
      if (targetParts) argmaxParts(logits, targetParts, K1, V, G);
      dispatch(
        { file: "sample.wgsl", entry: "sample" },
        [(targetParts ?? logits).buffer, targetTok.buffer, targetNext!.buffer],
        samplerParams(K1, V, 1, 0, opts).u32(0, 0, G),
        [K1],
      );
    } else {
      distribution(logits, p!, K1, V, opts);
    }
    logits.dispose();
    // 3. The rule: the record, the emitted count, done, keep = r + 1 and the next position.
    speculativeAcceptRound(
      { target: targetTok ?? p!, draft: q, tokens: roundTokens, records, next, state, eos: eosBuf },
      settings,
    );
    // 4. Both models keep r + 1 of the K + 1 tokens.
    tState.commit(keep);
    dState?.commit(keep);
  };
  // Timed from the end of the first round's capture, whose tokens are not counted (as `generate`
  // times from its first captured step on): tokens/s then reads the same for both.
  let start = performance.now();
  const out: number[] = [];
  const stream = textStream(tokenizer, out, opts.onText);
  const rounds: RoundRecord[] = [];
  const W = K + 2;
  let program: CapturedCommands | null = null;
  let recorded = 0;
  const pending: { from: number; to: number; data: Promise<ArrayBuffer[]> }[] = [];
  const record = (n: number) => {
    const from = recorded;
    for (let i = 0; i < n && recorded < maxRounds; i++, recorded++) {
      if (program) {
        replayCommands(program);
      } else {
        program = captureCommands(round);
        start = performance.now();
      }
      // Submitted round by round, so that the GPU starts on them while the host records the rest: a
      // readback's wait leaves the GPU idle until the next submit (it waits for all submitted work,
      // then sleeps 10 ms).
      flush();
    }
    const data = readBuffers([{
      buffer: records.buffer,
      offset: from * W * 4,
      size: (recorded - from) * W * 4,
    }]);
    pending.push({ from, to: recorded, data });
  };
  let done = steps === 0;
  try {
    while (!done) {
      const inFlight = recorded - rounds.length;
      const perRound = rounds.length ? out.length / rounds.length : 1 + K / 2;
      const expected = out.length + inFlight * perRound;
      if ((expected < steps || pending.length === 0) && pending.length < IN_FLIGHT && recorded < maxRounds) {
        record(Math.min(R, Math.max(1, Math.ceil((steps - expected) / perRound))));
        continue;
      }
      if (pending.length > 0) {
        const chunk = pending.shift()!;
        const rec = new Int32Array((await chunk.data)[0]);
        for (let j = 0; j < chunk.to - chunk.from && !done; j++) {
          const row = Array.from(rec.subarray(j * W, (j + 1) * W));
          if (row[0] < 0) {
            throw new ShapeError(
              "speculative",
              `round ${chunk.from + j} ended on the GPU but not on the host`,
            );
          }
          const r: RoundRecord = { drafts: row.slice(2), accepted: row[0], token: row[1] };
          rounds.push(r);
          done = emit(r, out, s, opts);
        }
        stream.push();
      } else if (pending.length === 0 && recorded >= maxRounds) {
        throw new ShapeError("speculative", `no end after ${maxRounds} rounds`);
      }
    }
  } catch (e) {
    if (program) releaseCapture(program);
    throw e;
  } finally {
    // Rounds recorded past the end: wait for them, so no readback is left mapping.
    await Promise.allSettled(pending.map((c) => c.data));
  }
  const seconds = (performance.now() - start) / 1000;
  try {
    if (program && opts.profileRound) await opts.profileRound(program);
  } finally {
    if (program) releaseCapture(program);
  }
  return summary(s, stream.finish(), out, rounds, seconds, 1, fused !== null);
}
