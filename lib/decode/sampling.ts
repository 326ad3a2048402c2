/**
 * Choosing the next token from logits: greedy (temperature 0) or seeded sampling with temperature and
 * nucleus (top-p) truncation, as transformers' `TemperatureLogitsWarper` + `TopPLogitsWarper` do.
 *
 * @module
 */
import type { Rng } from "../random.ts";

/** Sampling settings. */
export interface SamplingOptions {
  /** Softmax temperature; 0 means greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep the smallest set of tokens whose probability reaches `topP` (default 1: all). */
  topP?: number;
  /** Keep only the `topK` most likely tokens (default 0: all). */
  topK?: number;
}

/** Index of the largest value (first on ties). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** The next-token distribution after temperature, top-k and top-p (a probability vector, f64). */
export function samplingDistribution(logits: ArrayLike<number>, opts: SamplingOptions = {}): Float64Array {
  const t = opts.temperature ?? 1;
  const V = logits.length;
  const p = new Float64Array(V);
  if (t === 0) {
    p[argmax(logits)] = 1;
    return p;
  }
  let m = -Infinity;
  for (let i = 0; i < V; i++) m = Math.max(m, logits[i] / t);
  let z = 0;
  for (let i = 0; i < V; i++) z += p[i] = Math.exp(logits[i] / t - m);
  for (let i = 0; i < V; i++) p[i] /= z;
  const topK = opts.topK ?? 0;
  const topP = opts.topP ?? 1;
  if ((topK > 0 && topK < V) || topP < 1) {
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => p[b] - p[a]);
    let keep = topK > 0 ? Math.min(topK, V) : V;
    // top-p sees the distribution renormalised over the top-k survivors (transformers' warpers apply
    // top-k, then softmax again, then top-p)
    let mass = 0;
    for (let r = 0; r < keep; r++) mass += p[order[r]];
    let cum = 0;
    for (let r = 0; r < keep; r++) {
      cum += p[order[r]];
      if (cum >= topP * mass) {
        keep = r + 1;
        break;
      }
    }
    const kept = new Float64Array(V);
    let s = 0;
    for (let r = 0; r < keep; r++) s += kept[order[r]] = p[order[r]];
    for (let i = 0; i < V; i++) kept[i] /= s;
    return kept;
  }
  return p;
}

/** Draws an index from a probability vector. */
export function sampleFrom(p: ArrayLike<number>, rng: Rng): number {
  let u = rng.uniform();
  for (let i = 0; i < p.length; i++) {
    u -= p[i];
    if (u < 0) return i;
  }
  for (let i = p.length - 1; i >= 0; i--) if (p[i] > 0) return i;
  return 0;
}

/** The next token for `logits` under `opts`. */
export function sampleToken(logits: ArrayLike<number>, opts: SamplingOptions, rng: Rng): number {
  if ((opts.temperature ?? 1) === 0) return argmax(logits);
  return sampleFrom(samplingDistribution(logits, opts), rng);
}
