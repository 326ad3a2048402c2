/**
 * Distillation: layer plans, the attention → Mamba weight transfer, the recipes (MOHAWK, MambaInLlama's
 * stepwise replacement, KD, SFT, DPO) and resumable runs with metrics and an HTML report.
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
export { type ConvertOptions, convertTeacher, copyCheckpointFiles, type MambaConfigJson } from "./convert.ts";
export { attentionLayersOf, convertAndLoad, saveStudent, type StudentInit } from "./student.ts";
export {
  brownIdsForModel,
  loadPreferenceData,
  loadTextData,
  MAX_DATA_BYTES,
  type PreferencePair,
} from "./data.ts";
export {
  addLoss,
  type AlignmentTaskOptions,
  distillTask,
  type DistillTaskOptions,
  dpoTask,
  type DpoTaskOptions,
  hiddenAlignmentTask,
  layerAlignmentTask,
  type LayerObjective,
  type TrainableSpec,
} from "./tasks.ts";
export { concatColumns, mamba2MixingMatrix, matrixOrientationTask } from "./matrix_task.ts";
export {
  MOHAWK_SPLIT,
  parseRecipe,
  type PlanOptions,
  planRecipe,
  type RecipeName,
  RECIPES,
  type StageKind,
  type StagePlan,
} from "./recipes.ts";
export {
  type DistillRunOptions,
  type DistillRunResult,
  runDistillation,
  type RunState,
  type StageResult,
} from "./run.ts";
export { lossFigure, mixingSnapshot, perplexityFigure, type ReportInputs, writeReport } from "./report.ts";
