/**
 * Reverse-mode autodiff: the tape, differentiable ops and distillation losses.
 *
 * @module
 */
export { activeTape, GradTape, needsGrad, record } from "./tape.ts";
export {
  add as addOp,
  attention as attentionOp,
  crossEntropy,
  embedding as embeddingOp,
  linear as linearOp,
  rmsNorm as rmsNormOp,
  rope as ropeOp,
  scale as scaleOp,
  swiglu as swigluOp,
} from "./ops.ts";
export {
  dpoLoss,
  frobeniusDistance,
  klDivergence,
  type KlOptions,
  type Reduction,
  reverseKlDivergence,
  sequenceLogProbs,
  tokenL2,
} from "./losses.ts";
export {
  causalConv1d as causalConv1dOp,
  gatedRmsNorm as gatedRmsNormOp,
  selectiveScan as selectiveScanOp,
  ssd as ssdOp,
} from "./ssm_ops.ts";
export { gatherChannels as gatherChannelsOp, negExp as negExpOp } from "./mamba1_ops.ts";
export { addSkip as addSkipOp, type DtParams, splitColumns, ssdInputs as ssdInputsOp } from "./mamba2_ops.ts";
export { recordMulti } from "./multi_output.ts";
export { ssdMixingMatrix } from "./mixing_ops.ts";
