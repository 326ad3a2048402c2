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
  LINEAR_ATTENTION_A_LOG,
  LINEAR_ATTENTION_TAU,
  type LinearAttentionScales,
  linearAttentionScales,
  type Mamba2Dims,
  mamba2Dims,
  type Mamba2Init,
} from "./convert_mamba2.ts";
export {
  type BlockSource,
  checkMamba1Dims,
  convertAttentionToMamba1,
  type Mamba1Blocks,
  mamba1BlockSources,
  type Mamba1ConvertOptions,
  type Mamba1Dims,
  mamba1Dims,
  type Mamba1Init,
} from "./convert_mamba1.ts";
export { type ConvertOptions, convertTeacher, type MambaConfigJson } from "./convert.ts";
