/**
 * Perplexity evaluation: mean next-token cross-entropy over consecutive, non-overlapping windows.
 *
 * Window i feeds ids[i·T, (i+1)·T) and scores the prediction of ids[i·T + 1, (i+1)·T + 1) at every
 * position, so floor((N − 1)/T) windows fit N ids (the convention of the fixtures' validation loss).
 * Per-window loss sums stay on the GPU in one buffer and are read back once at the end; the host adds
 * them in f64.
 *
 * @module
 */
import { DataError } from "../errors.ts";
import { gpu } from "../gpu/device.ts";
import { sync } from "../gpu/commands.ts";
import { evalWindowCount } from "../data/windows.ts";
import { sumRowsInto } from "../tensor/reduce.ts";
import { crossEntropyRows } from "../tensor/softmax.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { ForwardOptions, ForwardOutput } from "./llama.ts";

/** What evaluation needs of a model: a causal LM forward and its vocabulary size. */
export interface CausalLM {
  /** Runs ids (B, L) i32 to logits (B, L, V). */
  forward(ids: Tensor, opts?: ForwardOptions): ForwardOutput;
  /** The vocabulary size V. */
  readonly config: { vocabSize: number };
}

/** Result of {@linkcode evaluateLoss}. */
export interface EvalResult {
  /** Mean next-token loss in nats. */
  loss: number;
  /** exp(loss). */
  ppl: number;
  /** Tokens scored (windows × T). */
  tokens: number;
  /** Number of windows. */
  windows: number;
  /** Wall-clock seconds. */
  seconds: number;
}

/** Options of {@linkcode evaluateLoss}. */
export interface EvalOptions {
  /** Window length T (default 256). */
  seqLen?: number;
  /** Windows per forward pass (default: as many as keep the logits within 64 MiB, at most 32). */
  batch?: number;
  /** Called after each batch completes on the GPU with (windows done, windows in all). */
  onProgress?: (done: number, total: number) => void;
}

/** Mean next-token loss and perplexity of `model` over `ids`. */
export async function evaluateLoss(
  model: CausalLM,
  ids: Int32Array,
  opts: EvalOptions = {},
): Promise<EvalResult> {
  const start = performance.now();
  const T = opts.seqLen ?? 256;
  const V = model.config.vocabSize;
  const total = evalWindowCount(ids.length, T);
  if (total === 0) throw new DataError("eval", `${ids.length} ids hold no window of ${T + 1} tokens`);
  const cap = Math.min(64 * 2 ** 20, gpu().maxBindingBytes);
  const batch = Math.max(1, Math.min(opts.batch ?? 32, Math.floor(cap / (T * V * 4)), total));
  using sums = Tensor.zeros([total]);
  for (let w0 = 0; w0 < total; w0 += batch) {
    const n = Math.min(batch, total - w0);
    const input = ids.subarray(w0 * T, (w0 + n) * T);
    const target = ids.subarray(w0 * T + 1, (w0 + n) * T + 1);
    using x = Tensor.from(input, [n, T], "i32");
    using y = Tensor.from(target, [n * T], "i32");
    const out = model.forward(x);
    using rows = crossEntropyRows(out.logits, y);
    out.logits.dispose();
    sumRowsInto(rows.view([n, T]), sums, w0);
    if (opts.onProgress) {
      await sync(); // honest progress: the batch has run, not just been recorded
      opts.onProgress(w0 + n, total);
    }
  }
  const perWindow = await sums.toArray();
  let sum = 0;
  for (const v of perWindow) sum += v;
  const tokens = total * T;
  const loss = sum / tokens;
  if (!Number.isFinite(loss)) {
    throw new DataError("eval", `the loss is ${loss}: the model produced non-finite logits`);
  }
  return { loss, ppl: Math.exp(loss), tokens, windows: total, seconds: (performance.now() - start) / 1000 };
}
