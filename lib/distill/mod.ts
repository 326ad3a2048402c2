/**
 * Distillation: layer plans and the attention → Mamba weight transfer (recipes land with their issue).
 *
 * @module
 */
export { attentionLayersByShare, parseLayerList, stepwiseOrder } from "./plan.ts";
export {
  type AttentionHost,
  convertAttentionToMamba2,
  inverseSoftplus,
  type Mamba2Dims,
  mamba2Dims,
  type Mamba2Init,
} from "./convert_mamba2.ts";
export { type ConvertOptions, convertTeacher, type MambaConfigJson } from "./convert.ts";
