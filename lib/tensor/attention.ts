/**
 * Causal softmax attention with grouped-query heads (GQA), as LlamaAttention's eager path computes it:
 *
 *   scores = Q Kᵀ / √P,  probs = causal_softmax(scores),  out = probs V
 *
 * Q is (B, L, H_q, P) and K, V are (B, S, H_kv, P) (the layout projections produce, no transposes):
 * the strided matmul reads them in place, and query head h reads key/value head ⌊h / (H_q / H_kv)⌋.
 * K and V may be a KV cache with room for more positions than the S in use (`keyLength`).
 * The per-head probability matrices (B, H_q, L, S) are the attention mixing matrices; they are
 * returned on request. Without that request the fused kernel of `flash_attention.ts` computes the same
 * output without storing them (memory O(L) instead of O(L·S)), except for a few queries (decoding);
 * otherwise the materialising path below (strided matmul, causal softmax, matmul) runs.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { matmulStrided } from "./matmul.ts";
import { causalSoftmaxInPlace, softmaxBackwardInPlace } from "./softmax.ts";
import { gpu } from "../gpu/device.ts";
import { flashAttention, flashSupported } from "./flash_attention.ts";
import { fmtShape, Tensor } from "./tensor.ts";

/** Options of {@linkcode attention}. */
export interface AttentionOptions {
  /** Number of valid key positions S in k/v (default: all of dim 1). Queries are the last L of them. */
  keyLength?: number;
  /** Score scale (default 1/√P). */
  scale?: number;
  /** Return the probabilities (B, H_q, L, S) (the materialising path; otherwise the fused kernel). */
  returnProbs?: boolean;
}

/** Result of {@linkcode attention}. */
export interface AttentionResult {
  /** (B, L, H_q, P). */
  out: Tensor;
  /** (B, H_q, L, S) softmax probabilities, when asked for. */
  probs?: Tensor;
}

/**
 * Below this many queries (decoding, speculative verification) `attention()` materialises the small
 * probabilities (B, H_q, L, S): the fused kernel's one workgroup per (head, query block) would walk
 * all S keys alone, while the strided matmuls spread the keys over many workgroups.
 */
export const FUSED_MIN_QUERIES = 16;

/**
 * Whether attention over L queries and S keys takes the fused kernels (`flash_attention.ts`): the head
 * dim fits a fused tile on this device, and L ≥ {@linkcode FUSED_MIN_QUERIES} or the probabilities
 * (B, H_q, L, S) would not fit one binding.
 */
export function usesFusedAttention(B: number, L: number, S: number, Hq: number, P: number): boolean {
  if (!flashSupported(P)) return false;
  return L >= FUSED_MIN_QUERIES || 4 * B * Hq * L * S > gpu().maxBindingBytes;
}

/**
 * Causal GQA attention; see the module doc for shapes. Fused (no probabilities stored) unless
 * `returnProbs` is set or {@linkcode usesFusedAttention} says otherwise.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): AttentionResult {
  if (q.shape.length !== 4 || k.shape.length !== 4 || v.shape.length !== 4) {
    throw new ShapeError("attention", `expected 4-D q, k, v, got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}`);
  }
  const [B, L, Hq, P] = q.shape;
  const [Bk, cap, Hkv, Pk] = k.shape;
  const S = opts.keyLength ?? cap;
  if (Bk !== B || Pk !== P || v.shape.join() !== k.shape.join() || Hq % Hkv !== 0 || S > cap || S < L) {
    throw new ShapeError(
      "attention",
      `q ${fmtShape(q.shape)} does not fit k ${fmtShape(k.shape)} / v ${fmtShape(v.shape)} with S=${S}`,
    );
  }
  if (!opts.returnProbs && usesFusedAttention(B, L, S, Hq, P)) {
    const { out, lse } = flashAttention(q, k, v, opts);
    lse.dispose();
    return { out };
  }
  const group = Hq / Hkv;
  const probs = Tensor.empty([B, Hq, L, S]);
  // scores[b, h] (L, S) = Q[b, :, h, :] · K[b, :, h / group, :]ᵀ · scale
  matmulStrided({
    M: L,
    N: S,
    K: P,
    batch: [B, Hq],
    a: { t: q, s0: L * Hq * P, s1: P, rowStride: Hq * P, colStride: 1 },
    b: { t: k, s0: cap * Hkv * P, s1: P, div: group, rowStride: 1, colStride: Hkv * P },
    c: { t: probs, s0: Hq * L * S, s1: L * S, rowStride: S, colStride: 1 },
    alpha: opts.scale ?? 1 / Math.sqrt(P),
  });
  causalSoftmaxInPlace(probs, L);
  // out[b, :, h, :] (L, P) = probs[b, h] · V[b, :, h / group, :]
  const out = Tensor.empty([B, L, Hq, P]);
  matmulStrided({
    M: L,
    N: P,
    K: S,
    batch: [B, Hq],
    a: { t: probs, s0: Hq * L * S, s1: L * S, rowStride: S, colStride: 1 },
    b: { t: v, s0: cap * Hkv * P, s1: P, div: group, rowStride: Hkv * P, colStride: 1 },
    c: { t: out, s0: L * Hq * P, s1: P, rowStride: Hq * P, colStride: 1 },
  });
  if (opts.returnProbs) return { out, probs };
  probs.dispose();
  return { out };
}

/**
 * Gradients of {@linkcode attention} (without a cache: S = L) given the forward's probabilities and
 * dOut (B, L, H_q, P):
 *
 *   dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(P ⊙ dP)),  dQ = scale · dS K,  dK = scale · dSᵀ Q
 *
 * summed over the query heads of each key/value group. Each group member is its own dispatch that
 * accumulates into dK, dV, so no two workgroups ever add into the same element at once.
 */
export function attentionBackward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  probs: Tensor,
  dOut: Tensor,
  scale = 1 / Math.sqrt(q.shape[3]),
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const [B, L, Hq, P] = q.shape;
  const [, S, Hkv] = k.shape;
  const group = Hq / Hkv;
  const dq = Tensor.empty(q.shape);
  const dk = Tensor.empty(k.shape);
  const dv = Tensor.empty(v.shape);
  // dP[b, h] (L, S) = dO[b, :, h, :] · V[b, :, h / group, :]ᵀ
  using dP = Tensor.empty([B, Hq, L, S]);
  matmulStrided({
    M: L,
    N: S,
    K: P,
    batch: [B, Hq],
    a: { t: dOut, s0: L * Hq * P, s1: P, rowStride: Hq * P, colStride: 1 },
    b: { t: v, s0: S * Hkv * P, s1: P, div: group, rowStride: 1, colStride: Hkv * P },
    c: { t: dP, s0: Hq * L * S, s1: L * S, rowStride: S, colStride: 1 },
  });
  softmaxBackwardInPlace(probs, dP); // dP now holds dS
  // dQ[b, :, h, :] (L, P) = scale · dS[b, h] · K[b, :, h / group, :]
  matmulStrided({
    M: L,
    N: P,
    K: S,
    batch: [B, Hq],
    a: { t: dP, s0: Hq * L * S, s1: L * S, rowStride: S, colStride: 1 },
    b: { t: k, s0: S * Hkv * P, s1: P, div: group, rowStride: Hkv * P, colStride: 1 },
    c: { t: dq, s0: L * Hq * P, s1: P, rowStride: Hq * P, colStride: 1 },
    alpha: scale,
  });
  for (let j = 0; j < group; j++) {
    // Query head h = g·group + j of kv head g: dV[b, :, g, :] += P[b, h]ᵀ dO[b, :, h, :],
    // dK[b, :, g, :] += scale · dS[b, h]ᵀ Q[b, :, h, :].
    for (const [src, rhs, out, alpha] of [[probs, dOut, dv, 1], [dP, q, dk, scale]] as const) {
      matmulStrided({
        M: S,
        N: P,
        K: L,
        batch: [B, Hkv],
        a: { t: src, offset: j * L * S, s0: Hq * L * S, s1: group * L * S, rowStride: 1, colStride: S },
        b: { t: rhs, offset: j * P, s0: L * Hq * P, s1: group * P, rowStride: Hq * P, colStride: 1 },
        c: { t: out, s0: S * Hkv * P, s1: P, rowStride: Hkv * P, colStride: 1 },
        alpha,
        accumulate: j > 0,
      });
    }
  }
  return { dq, dk, dv };
}
