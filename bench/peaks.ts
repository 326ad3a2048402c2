/**
 * The datasheet peaks of the GPUs the benchmarks run on, to quote each kernel as a fraction of what the
 * hardware can do: memory bandwidth for memory-bound kernels, FP32 (non-tensor-core) FLOP/s for f32
 * matmul. The measured device-copy bandwidth from bench/pytorch_reference.py sits beside these in the
 * combined results.
 *
 * @module
 */

/** A GPU's datasheet limits. */
export interface Peak {
  /** Name as the datasheet gives it. */
  gpu: string;
  /** HBM bandwidth, bytes/s. */
  bytes_per_s: number;
  /** FP32 FLOP/s without tensor cores (FMA counted as 2). */
  fp32_flops: number;
}

/** Known GPUs, matched against the adapter name (first match wins). */
const PEAKS: [RegExp, Peak][] = [
  [/H200/i, { gpu: "NVIDIA H200 SXM", bytes_per_s: 4.8e12, fp32_flops: 66.9e12 }],
  [/H100.*(HBM3|SXM)/i, { gpu: "NVIDIA H100 SXM (80GB HBM3)", bytes_per_s: 3.35e12, fp32_flops: 66.9e12 }],
  [/H100.*PCIe/i, { gpu: "NVIDIA H100 PCIe", bytes_per_s: 2.0e12, fp32_flops: 51.2e12 }],
];

/** The datasheet peaks for an adapter name, or undefined when the GPU is not in the table. */
export function peakFor(adapter: string): Peak | undefined {
  return PEAKS.find(([re]) => re.test(adapter))?.[1];
}
