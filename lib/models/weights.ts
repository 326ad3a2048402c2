/**
 * Loading checkpoint tensors onto the GPU as f32 (`Weight` row blocks for matrices).
 *
 * @module
 */
import type { Checkpoint } from "../io/checkpoint.ts";
import { gpu } from "../gpu/device.ts";
import { uploadHost } from "../tensor/convert.ts";
import type { Weight } from "../tensor/matmul.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Options for weight loading. */
export interface LoadOptions {
  /**
   * Largest f32 block in bytes; matrices above it are split into row blocks. Defaults to the device's
   * storage-binding limit (128 MiB on the CPU adapter, 2 GiB on an H100). Tests lower it to exercise
   * the split path on small models.
   */
  maxPartBytes?: number;
}

/** Reads a 2-D tensor `name` of shape (rows, cols) and uploads it as row blocks. */
export async function loadWeight(
  ckpt: Checkpoint,
  name: string,
  shape: [number, number],
  opts: LoadOptions = {},
): Promise<Weight> {
  ckpt.require(name, shape);
  const host = await ckpt.read(name);
  const maxBytes = opts.maxPartBytes ?? gpu().maxBindingBytes;
  const rowsPerPart = Math.max(1, Math.floor(maxBytes / (shape[1] * 4)));
  const parts: Tensor[] = [];
  for (let r = 0; r < shape[0]; r += rowsPerPart) {
    parts.push(uploadHost(host, r, Math.min(shape[0], r + rowsPerPart)));
  }
  return { parts, shape };
}

/** Reads a 1-D tensor (a norm weight or a bias) of `size` values. */
export async function loadVector(ckpt: Checkpoint, name: string, size: number): Promise<Tensor> {
  ckpt.require(name, [size]);
  return uploadHost(await ckpt.read(name));
}

/** Frees a weight's blocks. */
export function disposeWeight(w: Weight): void {
  for (const p of w.parts) p.dispose();
}
