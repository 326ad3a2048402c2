/**
 * Differentiable ops: each runs the GPU forward of `lib/tensor` and, when a tape is recording and an
 * input requires grad, records its backward. Models call these; outside a tape they cost nothing
 * more than the raw ops. Backward closures return tensors they own (a pass-through is `g.retain()`).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { attention as attentionRaw, attentionBackward, usesFusedAttention } from "../tensor/attention.ts";
import { flashAttention, flashAttentionBackward } from "../tensor/flash_attention.ts";
import {
  add as addRaw,
  scale as scaleRaw,
  swiglu as swigluRaw,
  swigluBackward,
} from "../tensor/elementwise.ts";
import { embedding as embeddingRaw, embeddingBackward } from "../tensor/embedding.ts";
import { linear as linearRaw, matmulStrided, type Weight } from "../tensor/matmul.ts";
import { sumColumns } from "../tensor/reduce.ts";
import { rmsNorm as rmsNormRaw, rmsNormBackward } from "../tensor/rmsnorm.ts";
import { rope as ropeRaw, type RopeTable } from "../tensor/rope.ts";
import { crossEntropyBackward, meanCrossEntropy } from "../tensor/softmax.ts";
import { copyElements } from "../tensor/copy.ts";
import { reshape, Tensor } from "../tensor/tensor.ts";
import { needsGrad, record } from "./tape.ts";

/** a + b. */
export function add(a: Tensor, b: Tensor): Tensor {
  return record([a, b], addRaw(a, b), [], (g) => [g.retain(), g.retain()]);
}

/** α · a (weights of a loss sum). */
export function scale(a: Tensor, alpha: number): Tensor {
  return record([a], scaleRaw(a, alpha), [], (g) => [scaleRaw(g, alpha)]);
}

/** silu(gate) · up. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  return record([gate, up], swigluRaw(gate, up), [gate, up], (g, [a, b]) => {
    const { da, db } = swigluBackward(a, b, g);
    return [da, db];
  });
}

/** RMSNorm with weight w. */
export function rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
  return record([x, w], rmsNormRaw(x, w, eps), [x, w], (g, [xs, ws]) => {
    const { dx, dw } = rmsNormBackward(xs, ws, g, eps);
    return [dx, dw];
  });
}

/** RoPE of x (B, L, H, P) from position pos0. Its backward is the inverse rotation. */
export function rope(x: Tensor, table: RopeTable, pos0 = 0): Tensor {
  return record([x], ropeRaw(x, table, pos0), [], (g) => [ropeRaw(g, table, pos0, true)]);
}

/**
 * y = x Wᵀ (+ b). Under a tape the weight must be one block (training-size models); the gradients are
 * dx = dy W, dW = dyᵀ x, db = Σ_rows dy.
 */
export function linear(x: Tensor, w: Weight, bias?: Tensor): Tensor {
  const y = linearRaw(x, w, bias);
  if (!needsGrad(x, ...w.parts, bias)) return y;
  if (w.parts.length !== 1) throw new ShapeError("linear", "a weight split into blocks cannot be trained");
  const W = w.parts[0];
  const [outF, inF] = w.shape;
  const M = x.size / inF;
  return record([x, W, bias], y, [x, W], (g, [xs, Ws]) => {
    let dx: Tensor | undefined;
    let dW: Tensor | undefined;
    if (xs.requiresGrad) {
      dx = Tensor.empty(xs.shape);
      matmulStrided({
        M,
        N: inF,
        K: outF,
        a: { t: g, rowStride: outF, colStride: 1 },
        b: { t: Ws, rowStride: inF, colStride: 1 },
        c: { t: dx, rowStride: inF, colStride: 1 },
      });
    }
    if (Ws.requiresGrad) {
      dW = Tensor.empty([outF, inF]);
      matmulStrided({
        M: outF,
        N: inF,
        K: M,
        a: { t: g, rowStride: 1, colStride: outF },
        b: { t: xs, rowStride: inF, colStride: 1 },
        c: { t: dW, rowStride: inF, colStride: 1 },
      });
    }
    const db = bias?.requiresGrad ? reshape(sumColumns(g.view([M, outF])), [outF]) : undefined;
    return [dx, dW, db];
  });
}

/** Rows of the table for each id (ids never require grad). */
export function embedding(ids: Tensor, table: Weight): Tensor {
  const y = embeddingRaw(ids, table);
  if (!needsGrad(...table.parts)) return y;
  if (table.parts.length !== 1) {
    throw new ShapeError("embedding", "a table split into blocks cannot be trained");
  }
  return record([table.parts[0]], y, [ids], (g, [idsSaved]) => embeddingBackward(idsSaved, g, table));
}

/**
 * Causal GQA attention (no KV cache under a tape). Returns the output and, on request, probabilities.
 * Without `returnProbs` the fused kernels run both ways where `usesFusedAttention` says so (the tape
 * keeps q, k, v, out and the per-row logsumexp, and the backward recomputes the probabilities);
 * otherwise the materialising path keeps the probabilities (B, H_q, L, S) for its backward.
 */
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: { keyLength?: number; returnProbs?: boolean } = {},
): { out: Tensor; probs?: Tensor } {
  if (!needsGrad(q, k, v)) return attentionRaw(q, k, v, opts);
  if (opts.keyLength !== undefined && opts.keyLength !== k.shape[1]) {
    throw new ShapeError("attention", "a KV cache cannot be used while recording gradients");
  }
  const [B, L, Hq, P] = q.shape;
  if (!opts.returnProbs && usesFusedAttention(B, L, k.shape[1], Hq, P)) {
    const f = flashAttention(q, k, v);
    const out = record([q, k, v], f.out, [q, k, v, f.out, f.lse], (g, [qs, ks, vs, os, ls]) => {
      const { dq, dk, dv } = flashAttentionBackward(qs, ks, vs, os, ls, g);
      return [dq, dk, dv];
    });
    f.lse.dispose();
    return { out };
  }
  const r = attentionRaw(q, k, v, { returnProbs: true });
  const probs = r.probs!;
  // The output node carries q, k, v; its backward returns their three gradients.
  const out = record([q, k, v], r.out, [q, k, v, probs], (g, [qs, ks, vs, ps]) => {
    const { dq, dk, dv } = attentionBackward(qs, ks, vs, ps, g);
    return [dq, dk, dv];
  });
  if (opts.returnProbs) return { out, probs };
  probs.dispose();
  return { out };
}

/**
 * Mean next-token cross-entropy of logits (R, V) against targets (R) i32, over rows whose target is
 * not `ignoreIndex` (PyTorch's `F.cross_entropy(reduction="mean")`). Returns a (1) tensor.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex = -100): Tensor {
  const stats = meanCrossEntropy(logits, targets, ignoreIndex); // (mean, count)
  const loss = Tensor.empty([1]);
  copyElements(stats, 0, loss, 0, 1);
  const out = record([logits], loss, [logits, targets, stats], (g, [l, t, s]) => [
    crossEntropyBackward(l, t, s, g, ignoreIndex),
  ]);
  stats.dispose();
  return out;
}
