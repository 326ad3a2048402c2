/**
 * Which layers keep attention in a hybrid student (method.md §3.5, §3.7).
 *
 * - By share: attention at a regular stride counted from the last layer, so the last layer always
 *   keeps attention and converted layers are the earlier layers of each period (MambaInLlama's
 *   configs: 50% → odd layers of 32, 25% → 3, 7, …, 31, 12.5% → 7, 15, 23, 31, 0% → none).
 * - Stepwise: the order in which MambaInLlama's stepwise run converts layers, one per step: even
 *   layers first, then ≡ 1 (mod 4), ≡ 3 (mod 8), … (by the number of trailing one bits), each
 *   ascending.
 * - Or an explicit list.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** Attention layers for an attention share S ∈ (0, 1] (or 0: none) of `layers` layers. */
export function attentionLayersByShare(layers: number, share: number): number[] {
  if (!(share >= 0 && share <= 1)) {
    throw new UsageError("plan", `attention share must be in [0, 1], got ${share}`);
  }
  if (share === 0) return [];
  const period = Math.round(1 / share);
  if (Math.abs(1 / period - share) > 1e-9) {
    throw new UsageError(
      "plan",
      `attention share ${share} is not 1/k for a whole k (use 0.5, 0.25, 0.125, …)`,
    );
  }
  const out: number[] = [];
  for (let i = layers - 1; i >= 0; i -= period) out.push(i);
  return out.reverse();
}

function trailingOnes(i: number): number {
  let n = 0;
  while (i & 1) {
    n++;
    i >>= 1;
  }
  return n;
}

/** MambaInLlama's stepwise conversion order of `layers` layers (one layer per step). */
export function stepwiseOrder(layers: number): number[] {
  return Array.from({ length: layers }, (_, i) => i).sort((a, b) =>
    trailingOnes(a) - trailingOnes(b) || a - b
  );
}

/** Parses `--attention-layers 1,3,5` (an empty string: no attention). */
export function parseLayerList(text: string, layers: number): number[] {
  if (text.trim() === "") return [];
  const out = text.split(",").map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 0 || n >= layers) {
      throw new UsageError("plan", `attention layer "${s}" is not a layer index in [0, ${layers})`);
    }
    return n;
  });
  return [...new Set(out)].sort((a, b) => a - b);
}
