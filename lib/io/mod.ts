/**
 * I/O layer: safetensors files, Hugging Face Llama configs and checkpoint directories, tokenizers.
 *
 * @example
 * ```ts
 * import { Checkpoint, loadTokenizer } from "./lib/io/mod.ts";
 * using ckpt = await Checkpoint.open("data/brown-llama-6m");
 * const tok = await loadTokenizer("data/brown-llama-6m");
 * const emb = await ckpt.readF32("model.embed_tokens.weight");
 * ```
 *
 * @module
 */

export {
  bf16ToF32,
  type Dtype,
  DTYPES,
  encodeSafetensors,
  f16ToF32,
  f32ToBf16,
  type HostData,
  type HostTensor,
  MAX_HEADER_BYTES,
  SafetensorsFile,
  type TensorInfo,
  writeSafetensors,
} from "./safetensors.ts";
export { type LlamaConfig, parseLlamaConfig, readJsonFile, type RopeConfig } from "./config.ts";
export { Checkpoint, type CheckpointTensorInfo } from "./checkpoint.ts";
export { type ChatMessage, loadTokenizer, type TextTokenizer } from "./tokenizer.ts";
