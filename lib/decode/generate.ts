/**
 * Autoregressive generation with a KV cache: the prompt but its last token is prefilled in one pass,
 * then each new token is one single-position forward of the previous one. Sampling runs on the GPU and
 * writes the token straight into the next step's input, and the position lives in a GPU counter that
 * the sampler advances (`sample_next`), so every step is the same work: the first step is captured
 * (`beginCapture`) and the others replay its commands, which costs the host well under a microsecond
 * per dispatch instead of building every bind group again (≈ 4 ms per token for the bundled hybrid on
 * the H200). The host reads the new tokens back every `readEvery` steps (each readback costs ≥ 11 ms in
 * Deno; it is awaited only once the next `readEvery` steps are on the GPU), decodes and streams them,
 * and stops at the end-of-sequence token (the steps computed past it are dropped).
 *
 * @module
 */
import {
  captureCommands,
  type CapturedCommands,
  flush,
  releaseCapture,
  replayCommands,
} from "../gpu/commands.ts";
import type { TextTokenizer } from "../io/tokenizer.ts";
import { DecodeState } from "../models/decode_state.ts";
import type { LlamaModel } from "../models/llama.ts";
import { Tensor } from "../tensor/tensor.ts";
import { argmaxParts, argmaxSlices, GpuSampler } from "./gpu_sampler.ts";
import type { SamplingOptions } from "./sampling.ts";

/** Replayed steps recorded per submit (so that the GPU starts on them while the host records more). */
const SUBMIT_EVERY = 4;

/** Options of {@linkcode generate}. */
export interface GenerateOptions extends SamplingOptions {
  /** New tokens at most (default 64). */
  maxTokens?: number;
  /** Seed of the sampler (default 0). */
  seed?: number;
  /** Read tokens back every this many steps (default 32). */
  readEvery?: number;
  /** Called with each new piece of text as it is decoded. */
  onText?: (text: string) => void;
  /** Stop at the end-of-sequence token (default true). */
  stopAtEos?: boolean;
  /**
   * Greedy decoding: find each argmax with one workgroup per 2,048 logits and a reduction, instead of
   * one workgroup's pass over the row (default: from a vocabulary of 16,384; `argmaxSlices`).
   */
  splitArgmax?: boolean;
}

/** Result of {@linkcode generate}. */
export interface GenerateResult {
  /** The generated text (without the prompt). */
  text: string;
  /** The generated token ids. */
  tokens: number[];
  /** Prompt token count (after adding BOS). */
  promptTokens: number;
  /** Generated tokens per second of wall time, prefill excluded. */
  tokensPerSecond: number;
}

/** The prompt's token ids with the model's BOS token in front (when it has one). */
export function encodePrompt(model: LlamaModel, tokenizer: TextTokenizer, prompt: string): number[] {
  const bos = model.config.bosTokenId ?? tokenizer.bosTokenId;
  const ids = tokenizer.encode(prompt, { addSpecialTokens: false });
  if (bos !== null && ids[0] !== bos) ids.unshift(bos);
  return ids;
}

/** The end-of-sequence tokens of the model's config and the tokenizer. */
export function stopTokens(model: LlamaModel, tokenizer: TextTokenizer): Set<number> {
  const eos = new Set(model.config.eosTokenIds);
  if (tokenizer.eosTokenId !== null) eos.add(tokenizer.eosTokenId);
  return eos;
}

/**
 * Streams decoded text: `push()` after new tokens were appended to `tokens` calls `onText` with the new
 * complete characters; `finish()` flushes the rest and returns the whole text.
 */
export function textStream(
  tokenizer: TextTokenizer,
  tokens: number[],
  onText?: (text: string) => void,
): { push: () => void; finish: () => string } {
  let printed = "";
  return {
    push() {
      const text = tokenizer.decode(tokens, { skipSpecialTokens: true });
      // Emit only complete characters: a byte-level BPE token can end inside a UTF-8 sequence.
      if (!text.endsWith("\uFFFD") && text.startsWith(printed)) {
        onText?.(text.slice(printed.length));
        printed = text;
      }
    },
    finish() {
      const text = tokenizer.decode(tokens, { skipSpecialTokens: true });
      if (text.length > printed.length && text.startsWith(printed)) onText?.(text.slice(printed.length));
      return text;
    },
  };
}

/** Generates a continuation of `prompt`. */
export async function generate(
  model: LlamaModel,
  tokenizer: TextTokenizer,
  prompt: string,
  opts: GenerateOptions = {},
): Promise<GenerateResult> {
  const maxTokens = opts.maxTokens ?? 64;
  const readEvery = Math.max(1, opts.readEvery ?? 32);
  const ids = encodePrompt(model, tokenizer, prompt);
  const eos = stopTokens(model, tokenizer);
  const steps = Math.max(0, Math.min(maxTokens, model.config.maxPositionEmbeddings - ids.length));
  const n = ids.length;
  const V = model.config.vocabSize;
  using state = new DecodeState(model.createCache(1, n + steps));
  using sampler = new GpuSampler(1, V, Math.max(1, steps));
  // The position of the token fed next (the prompt's last one first); sample_next advances it.
  using position = Tensor.from([n - 1], [1], "i32");
  const G = argmaxSlices(V, opts);
  using parts = G > 0 ? Tensor.empty([G, 2]) : null;
  const out: number[] = [];
  const stream = textStream(tokenizer, out, opts.onText);
  let start = performance.now();
  let program: CapturedCommands | null = null;
  try {
    if (steps > 0) {
      if (n > 1) {
        using head = Tensor.from(ids.slice(0, -1), [1, n - 1], "i32");
        model.forward(head, { cache: state.layers, lastOnly: true }).logits.dispose();
      }
      sampler.next.write(Int32Array.of(ids[n - 1]));
    }
    // One decoding step: forward of `next` at the counter's position, then sample into history slot
    // (position − (n − 1)) and `next`, and advance the counter.
    const step = () => {
      const { logits } = model.forward(sampler.next, {
        cache: state.layers,
        lastOnly: true,
        position: { counts: position, word: 0, offset: 0 },
      });
      if (parts) argmaxParts(logits, parts, 1, V, G);
      sampler.sampleNext(parts ?? logits, position, n - 1, { ...opts, nparts: G });
      logits.dispose();
    };
    // Reads overlap decoding: the read of steps [from, to) is started (its copy submitted with the
    // steps) and awaited only after the next `readEvery` steps are recorded and submitted, so the
    // GPU decodes through the ≥ 11 ms that every readback takes in Deno instead of idling.
    let issued = 0;
    let pending: Promise<Int32Array[]> | null = null;
    let done = false;
    const consume = async (p: Promise<Int32Array[]>) => {
      const [fresh] = await p;
      for (const t of fresh) {
        if ((opts.stopAtEos ?? true) && eos.has(t)) {
          done = true;
          break;
        }
        out.push(t);
      }
      stream.push();
    };
    for (let i = 0; i < steps && !done; i++) {
      if (program) {
        replayCommands(program);
      } else {
        program = captureCommands(step);
        start = performance.now();
      }
      if ((i + 1) % SUBMIT_EVERY === 0) flush(); // the GPU starts on these steps while more are recorded
      if (i + 1 - issued === readEvery || i + 1 === steps) {
        const next = sampler.read(issued, i + 1);
        issued = i + 1;
        if (pending) await consume(pending);
        pending = next;
      }
    }
    // The last read (or, after an end-of-sequence token, the one already in flight: always awaited).
    if (pending) {
      if (done) await pending;
      else await consume(pending);
    }
  } finally {
    if (program) releaseCapture(program);
  }
  const text = stream.finish();
  const seconds = (performance.now() - start) / 1000;
  return {
    text,
    tokens: out,
    promptTokens: ids.length,
    tokensPerSecond: out.length > 1 ? (out.length - 1) / seconds : 0,
  };
}
