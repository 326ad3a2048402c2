/**
 * mamba-distill-lab: load a Hugging Face Llama, run it on Deno's WebGPU, and (in progress) distil it
 * into Mamba and hybrid models. This module re-exports the public API; see README.md.
 *
 * @example
 * ```ts ignore
 * import { DEFAULT_MODEL_DIR, evaluateLoss, initGpu, LlamaModel } from "./mod.ts";
 * await initGpu();
 * using model = await LlamaModel.load(DEFAULT_MODEL_DIR);
 * ```
 *
 * @module
 */
export * from "./lib/errors.ts";
export * from "./lib/gpu/mod.ts";
export * from "./lib/tensor/mod.ts";
export * from "./lib/io/mod.ts";
export * from "./lib/data/mod.ts";
export * from "./lib/models/mod.ts";
export * from "./lib/decode/mod.ts";
export * from "./lib/distill/mod.ts";
export * from "./lib/ssm/mod.ts";
export * from "./lib/viz/mod.ts";
export * from "./lib/mixing/mod.ts";
export * from "./lib/train/mod.ts";
export * from "./lib/autograd/mod.ts";
export { Rng } from "./lib/random.ts";
