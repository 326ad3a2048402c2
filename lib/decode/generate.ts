/**
 * Autoregressive generation with a KV cache: the prompt is prefilled in one pass, then each new token
 * is one single-position forward.
 *
 * This first version reads the last position's logits back every token (≥ 11 ms per readback in
 * Deno) and samples on the host; sampling on the GPU with batched readback is the decoding issue's.
 *
 * @module
 */
import { Rng } from "../random.ts";
import type { TextTokenizer } from "../io/tokenizer.ts";
import type { LlamaModel } from "../models/llama.ts";
import { Tensor } from "../tensor/tensor.ts";
import { sampleToken, type SamplingOptions } from "./sampling.ts";

/** Options of {@linkcode generate}. */
export interface GenerateOptions extends SamplingOptions {
  /** New tokens at most (default 64). */
  maxTokens?: number;
  /** Seed of the sampler (default 0). */
  seed?: number;
  /** Called with each new piece of text as it is decoded. */
  onText?: (text: string) => void;
  /** Stop at the end-of-sequence token (default true). */
  stopAtEos?: boolean;
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

/** Generates a continuation of `prompt`. */
export async function generate(
  model: LlamaModel,
  tokenizer: TextTokenizer,
  prompt: string,
  opts: GenerateOptions = {},
): Promise<GenerateResult> {
  const maxTokens = opts.maxTokens ?? 64;
  const rng = new Rng(opts.seed ?? 0);
  const bos = model.config.bosTokenId ?? tokenizer.bosTokenId;
  const ids = tokenizer.encode(prompt, { addSpecialTokens: false });
  if (bos !== null && ids[0] !== bos) ids.unshift(bos);
  const eos = new Set(model.config.eosTokenIds);
  if (tokenizer.eosTokenId !== null) eos.add(tokenizer.eosTokenId);
  const capacity = Math.min(model.config.maxPositionEmbeddings, ids.length + maxTokens);
  const caches = model.createCache(1, capacity);
  const out: number[] = [];
  let printed = "";
  let start = performance.now();
  try {
    let input = ids;
    while (out.length < maxTokens && caches[0].length + input.length <= capacity) {
      using x = Tensor.from(input, [1, input.length], "i32");
      const { logits } = model.forward(x, { cache: caches, lastOnly: true });
      const row = (await logits.toArray()) as Float32Array;
      logits.dispose();
      if (out.length === 0) start = performance.now(); // prefill done
      const next = sampleToken(row, opts, rng);
      if ((opts.stopAtEos ?? true) && eos.has(next)) break;
      out.push(next);
      const text = tokenizer.decode(out, { skipSpecialTokens: true });
      // Emit only complete characters: a byte-level BPE token can end inside a UTF-8 sequence.
      if (!text.endsWith("\uFFFD") && text.startsWith(printed)) {
        opts.onText?.(text.slice(printed.length));
        printed = text;
      }
      input = [next];
    }
  } finally {
    for (const c of caches) c[Symbol.dispose]();
  }
  const text = tokenizer.decode(out, { skipSpecialTokens: true });
  if (text.length > printed.length && text.startsWith(printed)) opts.onText?.(text.slice(printed.length));
  const seconds = (performance.now() - start) / 1000;
  return {
    text,
    tokens: out,
    promptTokens: ids.length,
    tokensPerSecond: out.length > 1 ? (out.length - 1) / seconds : 0,
  };
}
