/**
 * Storage-buffer pool and GPU memory accounting.
 *
 * Creating and destroying buffers is slow, and a training step allocates the same sizes every time,
 * so released buffers go back to a pool keyed by a rounded size class and are handed out again.
 * Reuse is safe in queue order: commands run in the order they were recorded, and uploads
 * (`queue.writeBuffer`) flush recorded work first (see `commands.ts`).
 *
 * @module
 */
import { GpuError } from "../errors.ts";
import { gpu } from "./device.ts";

/** Usage of every tensor buffer: bound as storage, copied from (readback) and to (upload). */
export const TENSOR_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

const free = new Map<number, GPUBuffer[]>();
const stats = { inUse: 0, cached: 0, peak: 0, created: 0 };

/**
 * Rounds a byte size up to its pool class: multiples of 256 B up to 4 KiB, then four classes per
 * power of two (at most 25% waste).
 */
export function sizeClass(bytes: number): number {
  const b = Math.max(4, bytes);
  if (b <= 4096) return Math.ceil(b / 256) * 256;
  const p = 2 ** Math.floor(Math.log2(b));
  const step = p / 4;
  return Math.ceil(b / step) * step;
}

/**
 * A storage buffer of at least `bytes` bytes (pooled). Throws {@linkcode GpuError} with the size asked
 * and the limit when the device cannot hold it.
 */
export function acquireBuffer(bytes: number, label = "tensor"): GPUBuffer {
  const { device, maxBufferBytes } = gpu();
  const size = sizeClass(bytes);
  if (size > maxBufferBytes) {
    throw new GpuError(
      label,
      `a buffer of ${bytes} bytes exceeds the device's maxBufferSize of ${maxBufferBytes} bytes`,
    );
  }
  const list = free.get(size);
  let buffer = list?.pop();
  if (buffer) {
    stats.cached -= size;
  } else {
    device.pushErrorScope("out-of-memory");
    buffer = device.createBuffer({ size, usage: TENSOR_USAGE, label });
    device.popErrorScope().then((e) => {
      if (e) console.error(`GPU out of memory allocating ${size} bytes for ${label}: ${e.message}`);
    });
    stats.created++;
  }
  stats.inUse += size;
  stats.peak = Math.max(stats.peak, stats.inUse);
  return buffer;
}

let dummy: GPUBuffer | null = null;

/** A small buffer bound where a kernel declares an optional input that is absent (never written). */
export function dummyBuffer(): GPUBuffer {
  dummy ??= gpu().device.createBuffer({ size: 16, usage: TENSOR_USAGE, label: "dummy" });
  return dummy;
}

/** Returns a buffer from {@linkcode acquireBuffer} to the pool. */
export function releaseBuffer(buffer: GPUBuffer): void {
  const size = buffer.size;
  stats.inUse -= size;
  stats.cached += size;
  const list = free.get(size);
  if (list) list.push(buffer);
  else free.set(size, [buffer]);
}

/** Destroys every pooled (unused) buffer, giving its memory back to the driver. */
export function trimPool(): void {
  for (const list of free.values()) for (const b of list) b.destroy();
  free.clear();
  stats.cached = 0;
}

/** GPU memory held by the toolkit, in bytes. */
export interface GpuMemory {
  /** Bytes in buffers owned by live tensors. */
  inUse: number;
  /** Bytes in released buffers kept for reuse. */
  cached: number;
  /** Highest `inUse` seen since start (or the last `resetPeak`). */
  peak: number;
  /** Number of buffers created since start. */
  created: number;
}

/** Current GPU memory accounting of the pool. */
export function gpuMemory(): GpuMemory {
  return { ...stats };
}

/** Resets the peak to the current use. */
export function resetPeak(): void {
  stats.peak = stats.inUse;
}
