/**
 * Uploading checkpoint tensors: f32 as is; bf16 and f16 as their raw 16-bit halves (half the bytes
 * over the bus), widened to f32 by `kernels/convert.wgsl` on the GPU. WGSL has no bf16 type. And the
 * other direction for f16 storage tensors: {@linkcode toF16} narrows an f32 tensor on the GPU.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import type { HostTensor } from "../io/safetensors.ts";
import { acquireBuffer, releaseBuffer } from "../gpu/buffers.ts";
import { uploadBytes } from "../gpu/transfer.ts";
import { fmtShape, Tensor } from "./tensor.ts";
import { launchElements } from "./launch.ts";

/**
 * Uploads rows [r0, r1) of a host tensor (any float dtype, or I32) as an f32/i32 GPU tensor of shape
 * (r1 − r0, …rest). Without a range, the whole tensor.
 */
export function uploadHost(t: HostTensor, r0 = 0, r1 = t.shape[0] ?? 1): Tensor {
  const rowSize = t.shape.slice(1).reduce((a, b) => a * b, 1);
  const shape = t.shape.length === 0 ? [] : [r1 - r0, ...t.shape.slice(1)];
  const lo = r0 * rowSize;
  const hi = r1 * rowSize;
  switch (t.dtype) {
    case "F32":
      return Tensor.from((t.data as Float32Array).subarray(lo, hi), shape);
    case "I32":
      return Tensor.from((t.data as Int32Array).subarray(lo, hi), shape, "i32");
    case "BF16":
    case "F16": {
      const halves = (t.data as Uint16Array).subarray(lo, hi);
      const raw = acquireBuffer(Math.ceil(halves.length / 2) * 4, "raw16");
      uploadBytes(raw, halves);
      const out = Tensor.empty(shape);
      launchElements({ file: "convert.wgsl", entry: t.dtype === "BF16" ? "widen_bf16" : "widen_f16" }, [
        raw,
        out.buffer,
      ], halves.length);
      releaseBuffer(raw);
      return out;
    }
    case "F64":
      return Tensor.from(Float32Array.from((t.data as Float64Array).subarray(lo, hi)), shape);
    default:
      throw new ShapeError("upload", `cannot upload dtype ${t.dtype} as a float tensor`);
  }
}

/**
 * An f16 storage tensor of the same shape holding `t`'s f32 values rounded to halves (`narrow_f16` of
 * `kernels/convert.wgsl`; values beyond ±65504 are undefined in WGSL). Doc of the rounding: see the kernel.
 */
export function toF16(t: Tensor): Tensor {
  if (t.dtype !== "f32") {
    throw new ShapeError("toF16", `expected an f32 tensor ${fmtShape(t.shape)}, got ${t.dtype}`);
  }
  const out = Tensor.empty(t.shape, "f16");
  const words = Math.ceil(t.size / 2);
  if (words > 0) {
    launchElements({ file: "convert.wgsl", entry: "narrow_f16" }, [t.buffer, out.buffer], words, [t.size]);
  }
  return out;
}
