/**
 * Decoding: sampling rules and generation.
 *
 * @module
 */
export { argmax, sampleFrom, sampleToken, samplingDistribution, type SamplingOptions } from "./sampling.ts";
export { generate, type GenerateOptions, type GenerateResult } from "./generate.ts";
export { GpuSampler, type GpuSamplingOptions, gpuUniform } from "./gpu_sampler.ts";
