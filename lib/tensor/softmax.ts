/**
 * Row-wise softmax family (`kernels/softmax.wgsl`): the causal attention softmax, log-softmax and
 * per-row cross-entropy.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, Params } from "../gpu/commands.ts";
import { fmtShape, Tensor } from "./tensor.ts";
import { rowGrid } from "./launch.ts";

/**
 * In place: causal softmax of attention scores (…, T, S) where query t may see keys s ≤ t + (S − T)
 * (S − T earlier positions come from a KV cache). Masked entries become exactly 0.
 */
export function causalSoftmaxInPlace(scores: Tensor, T: number): void {
  const S = scores.shape[scores.shape.length - 1];
  if (scores.shape[scores.shape.length - 2] !== T || S < T) {
    throw new ShapeError("causalSoftmax", `scores ${fmtShape(scores.shape)} do not end in (T=${T}, S≥T)`);
  }
  const R = scores.size / S;
  const { groups, yrow } = rowGrid(R);
  dispatch(
    { file: "softmax.wgsl", entry: "causal_softmax" },
    [scores.buffer],
    new Params().u32(R, S, T, yrow),
    groups,
  );
}

/** log-softmax over the last dimension. */
export function logSoftmax(x: Tensor): Tensor {
  const S = x.shape[x.shape.length - 1];
  const R = x.size / S;
  const y = Tensor.empty(x.shape);
  const { groups, yrow } = rowGrid(R);
  dispatch(
    { file: "softmax.wgsl", entry: "log_softmax" },
    [x.buffer, y.buffer],
    new Params().u32(R, S, 1, yrow),
    groups,
  );
  return y;
}

/**
 * Per-row cross-entropy `logsumexp(logits) − logits[target]` of logits (R, V) against i32 targets (R);
 * rows whose target equals `ignoreIndex` (or is out of range) give 0. Returns (R).
 */
export function crossEntropyRows(logits: Tensor, targets: Tensor, ignoreIndex = -100): Tensor {
  const V = logits.shape[logits.shape.length - 1];
  const R = logits.size / V;
  if (targets.size !== R || targets.dtype !== "i32") {
    throw new ShapeError(
      "crossEntropy",
      `targets ${fmtShape(targets.shape)} (${targets.dtype}) for ${R} rows`,
    );
  }
  const loss = Tensor.empty([R]);
  const { groups, yrow } = rowGrid(R);
  dispatch(
    { file: "softmax.wgsl", entry: "cross_entropy" },
    [logits.buffer, loss.buffer, targets.buffer],
    new Params().u32(R, V, 1, yrow).i32v(ignoreIndex),
    groups,
  );
  return loss;
}

/** In place: turns dP into dS = P ⊙ (dP − rowsum(P ⊙ dP)), the softmax's backward, row-wise. */
export function softmaxBackwardInPlace(probs: Tensor, dProbs: Tensor): void {
  const S = probs.shape[probs.shape.length - 1];
  const R = probs.size / S;
  const { groups, yrow } = rowGrid(R);
  dispatch(
    { file: "softmax.wgsl", entry: "softmax_backward" },
    [probs.buffer, dProbs.buffer],
    new Params().u32(R, S, 1, yrow),
    groups,
  );
}

/**
 * Mean cross-entropy over the rows whose target is not `ignoreIndex`: returns `stats` (2) = (mean, n)
 * on the GPU (read `stats` to see the loss; no sync here).
 */
export function meanCrossEntropy(logits: Tensor, targets: Tensor, ignoreIndex = -100): Tensor {
  const V = logits.shape[logits.shape.length - 1];
  const R = logits.size / V;
  using rows = crossEntropyRows(logits, targets, ignoreIndex);
  const stats = Tensor.empty([2]);
  dispatch(
    { file: "softmax.wgsl", entry: "mean_cross_entropy" },
    [rows.buffer, null, targets.buffer, stats.buffer],
    new Params().u32(R, V, 1, 1).i32v(ignoreIndex),
    [1],
  );
  return stats;
}

/** dlogits of the mean cross-entropy, scaled by the loss gradient `gout` (1) on the GPU. */
export function crossEntropyBackward(
  logits: Tensor,
  targets: Tensor,
  stats: Tensor,
  gout: Tensor,
  ignoreIndex = -100,
): Tensor {
  const V = logits.shape[logits.shape.length - 1];
  const R = logits.size / V;
  const dx = Tensor.empty(logits.shape);
  const { groups, yrow } = rowGrid(R);
  dispatch(
    { file: "softmax.wgsl", entry: "cross_entropy_backward" },
    [logits.buffer, dx.buffer, targets.buffer, stats.buffer, gout.buffer],
    new Params().u32(R, V, 1, yrow).i32v(ignoreIndex),
    groups,
  );
  return dx;
}

/**
 * dlogits of Σ_b w_b · (sequence b's summed cross-entropy) with w_b = sign · coef[b] · gout, where
 * coef sits at stats[1 + b]: the backward of sequence-level losses (DPO). Logits (B, T, V).
 */
export function weightedCrossEntropyBackward(
  logits: Tensor,
  targets: Tensor,
  stats: Tensor,
  gout: Tensor,
  sign: number,
  ignoreIndex = -100,
): Tensor {
  const [, T] = logits.shape;
  const V = logits.shape[logits.shape.length - 1];
  const R = logits.size / V;
  const dx = Tensor.empty(logits.shape);
  const { groups, yrow } = rowGrid(R);
  dispatch(
    { file: "softmax.wgsl", entry: "cross_entropy_backward_seq" },
    [logits.buffer, dx.buffer, targets.buffer, stats.buffer, gout.buffer],
    new Params().u32(R, V, T, yrow).i32v(ignoreIndex).f32v(sign),
    groups,
  );
  return dx;
}
