/**
 * Products of f16-stored matrices with f32 accumulation and an f32 result (`kernels/matmul_f16.wgsl`):
 * the storage half of mixed precision. Operands are {@linkcode Tensor}s of dtype `"f16"` (make them with
 * `Tensor.from(values, shape, "f16")` on the host or {@linkcode toF16} on the GPU); the arguments,
 * strides and layouts are those of the f32 product in `matmul.ts`, whose parameter block and shape
 * checks this module reuses. Needs the adapter's `shader-f16` feature (`gpu().hasF16`).
 *
 * @module
 */
import { GpuError, ShapeError } from "../errors.ts";
import { dispatch } from "../gpu/commands.ts";
import { dummyBuffer } from "../gpu/buffers.ts";
import { gpu } from "../gpu/device.ts";
import {
  batchedProduct,
  type MatmulOptions,
  matmulParams,
  type StridedMatmul,
  vec4Aligned,
} from "./matmul.ts";
import { Tensor } from "./tensor.ts";

export { toF16 } from "./convert.ts";

/**
 * Entry points of `kernels/matmul_f16.wgsl` for aligned operands: four halves per load as `vec4<f16>`
 * (`main128v4`) or as two u32 words widened with `unpack2x16float` (`main128u32`), or eight halves per
 * load with K slices of 16 (`main128k16`, operands aligned to 8; others fall back to `main128u32`).
 * Unaligned operands take `main128` (scalar f16 loads).
 */
export const F16_ALIGNED_ENTRIES = ["main128v4", "main128u32", "main128k16"] as const;
/** One of {@linkcode F16_ALIGNED_ENTRIES}. */
export type F16AlignedEntry = typeof F16_ALIGNED_ENTRIES[number];
// main128k16 is the fastest on the H200 (bench/matmul_f16.ts, 2026-12-01: 4096³ NN 4.43 ms = 31.0
// TFLOP/s against 4.85 ms for main128v4 / main128u32 and 4.73 ms for the f32 main128v4).
let alignedEntry: F16AlignedEntry = "main128k16";
/** Picks the entry aligned products use (benchmarks compare them); returns the previous one. */
export function useF16AlignedEntry(entry: F16AlignedEntry): F16AlignedEntry {
  const prev = alignedEntry;
  alignedEntry = entry;
  return prev;
}

/**
 * Records C = α·A·B (+ bias) (+ C) for f16 operands A, B and an f32 output C with arbitrary strides
 * (in elements), as `matmulStrided` does for f32. Every size takes 128×128 tiles: the aligned entry
 * (see {@linkcode F16_ALIGNED_ENTRIES}) when `vec4Aligned` holds, else `main128`.
 */
export function matmulF16Strided(args: StridedMatmul): void {
  const { M, N, a, b, c } = args;
  if (!gpu().hasF16) throw new GpuError("matmulF16", "this adapter has no shader-f16 feature");
  if (a.t.dtype !== "f16" || b.t.dtype !== "f16" || c.t.dtype !== "f32") {
    throw new ShapeError(
      "matmulF16",
      `expected f16 operands and an f32 output, got ${a.t.dtype}, ${b.t.dtype} → ${c.t.dtype}`,
    );
  }
  const [nb0, nb1] = args.batch ?? [1, 1];
  if (M === 0 || N === 0 || nb0 * nb1 === 0) return;
  if (nb0 * nb1 > 65535) throw new ShapeError("matmulF16", `batch ${nb0 * nb1} exceeds 65535`);
  const entry = !vec4Aligned(args)
    ? "main128"
    : alignedEntry === "main128k16" && !vec4Aligned(args, 8)
    ? "main128u32"
    : alignedEntry;
  dispatch(
    { file: "matmul_f16.wgsl", entry },
    [a.t.buffer, b.t.buffer, c.t.buffer, args.bias?.buffer ?? dummyBuffer()],
    matmulParams(args),
    [Math.ceil(N / 128), Math.ceil(M / 128), nb0 * nb1],
  );
}

/**
 * Batched product of f16 matrices, (…, M, K) × (…, K, N) → f32 (…, M, N), with the options and batch
 * rules of `matmul` (NN, NT via `transB`, TN, TT; B without batch dimensions is shared).
 */
export function matmulF16(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const { args, outShape } = batchedProduct("matmulF16", a, b, opts);
  const out = Tensor.empty(outShape);
  matmulF16Strided({ ...args, c: { t: out, s1: args.M * args.N, rowStride: args.N, colStride: 1 } });
  return out;
}
