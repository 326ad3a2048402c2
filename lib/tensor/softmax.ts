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
