/**
 * The tensor core: GPU tensors and the ops of a Llama forward, each with a plain-TS reference.
 *
 * @module
 */
export { type DType, expectShape, fmtShape, numel, readTensors, Tensor } from "./tensor.ts";
export {
  linear,
  matmul,
  type MatmulOptions,
  matmulStrided,
  type Operand,
  type StridedMatmul,
  type Weight,
} from "./matmul.ts";
export { attention, type AttentionOptions, type AttentionResult } from "./attention.ts";
export { add, mul, swiglu } from "./elementwise.ts";
export { embedding } from "./embedding.ts";
export { rmsNorm } from "./rmsnorm.ts";
export { rope, ropeInverseFrequencies, RopeTable } from "./rope.ts";
export { causalSoftmaxInPlace, crossEntropyRows, logSoftmax } from "./softmax.ts";
export { sumRowsInto } from "./reduce.ts";
export { uploadHost } from "./convert.ts";
export { matmulRef } from "./matmul_ref.ts";
export * from "./ops_ref.ts";
