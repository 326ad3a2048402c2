/**
 * Mixing matrices: every sequence mixer written as y = M x with M (T × T) per head or channel, rows =
 * output t, columns = source s (method.md §1). Float64 references of softmax attention, linear
 * attention, Mamba-2 / SSD, Mamba-1 and MOHAWK's discrete Mamba-2; the SSD matrix on the GPU with its
 * backward (for MOHAWK stage 1); and per-layer matrices of a loaded model.
 *
 * @module
 */
export * from "./mixing_ref.ts";
export * from "./ssd_mixing.ts";
export * from "./mamba2_inputs.ts";
export * from "./layer_mixing.ts";
export * from "./mamba1_inputs.ts";
