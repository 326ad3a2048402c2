/**
 * Decoding: sampling rules and generation.
 *
 * @module
 */
export { argmax, sampleFrom, sampleToken, samplingDistribution, type SamplingOptions } from "./sampling.ts";
export {
  encodePrompt,
  generate,
  type GenerateOptions,
  type GenerateResult,
  stopTokens,
  textStream,
} from "./generate.ts";
export {
  ARGMAX_SLICE,
  argmaxParts,
  argmaxSlices,
  GpuSampler,
  type GpuSamplingOptions,
  gpuUniform,
  pcg,
  samplerParams,
  SPLIT_ARGMAX_FROM,
} from "./gpu_sampler.ts";
export {
  type AcceptBuffers,
  type RoundRecord,
  roundSeed,
  speculativeAccept,
  speculativeGenerate,
  type SpeculativeOptions,
  type SpeculativeResult,
} from "./speculative.ts";
export { type AcceptOutcome, drawIndexOrder, speculativeAcceptRef } from "./speculative_ref.ts";
export {
  autoFusedDraft,
  FUSED_DRAFT_AUTO_MAX_BYTES,
  FUSED_DRAFT_MAX_POSITIONS,
  FUSED_DRAFT_PREFILL_CHUNK,
  FusedDraft,
  type FusedDraftOptions,
  fusedDraftStepBytes,
  fusedDraftUnsupported,
} from "./fused_draft.ts";
