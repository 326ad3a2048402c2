/**
 * Models: the Llama teacher, its KV cache, weight loading and evaluation.
 *
 * @module
 */
export { type ForwardOptions, type ForwardOutput, type LayerCache, LlamaModel } from "./llama.ts";
export { KVCache } from "./kv_cache.ts";
export { type LoadOptions } from "./weights.ts";
export { type CausalLM, type EvalOptions, type EvalResult, evaluateLoss } from "./evaluate.ts";
export { DEFAULT_MODEL_DIR } from "./default_model.ts";
export { loadMamba2Weights, mamba2DimsOf, readMambaConfig } from "./hybrid.ts";
export { isMamba1Layer, loadMamba1Weights, mamba1DimsOf } from "./hybrid.ts";
export { mamba1Forward, type Mamba1Weights } from "./mamba1_layer.ts";
export { mamba1ForwardRef, type Mamba1HostWeights } from "./mamba1_layer_ref.ts";
export { mamba2Forward, type Mamba2Options, type Mamba2Weights, sliceColumns } from "./mamba2_layer.ts";
export { Mamba2Cache, mamba2Decode } from "./mamba2_decode.ts";
export { Mamba1Cache, mamba1Decode } from "./mamba1_decode.ts";
export { DecodeState } from "./decode_state.ts";
