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
import { gpu, reportGpuError } from "./device.ts";

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
 * The size of the buffer handed out for a request of `bytes`: its pool class, but never past the limit
 * the request fits under (a request that fits one storage binding gets a buffer that does too), and a
 * multiple of 4. Throws {@linkcode GpuError} with the size asked and the limit when `bytes` exceeds
 * `maxBufferBytes`.
 */
export function bufferSize(
  bytes: number,
  maxBindingBytes: number,
  maxBufferBytes: number,
  label = "tensor",
): number {
  const need = Math.ceil(Math.max(4, bytes) / 4) * 4;
  const bufferCap = Math.floor(maxBufferBytes / 4) * 4;
  if (!(need <= bufferCap)) {
    throw new GpuError(
      label,
      `a buffer of ${bytes} bytes was asked for; the device's maxBufferSize is ${maxBufferBytes} bytes`,
    );
  }
  const bindingCap = Math.floor(maxBindingBytes / 4) * 4;
  const cap = need <= bindingCap ? bindingCap : bufferCap;
  // At a cap, the largest multiple of BUFFER_ALIGN under it (keeping later buffers aligned), unless the
  // request itself lies beyond that
  return Math.min(sizeClass(need), Math.max(need, Math.floor(cap / BUFFER_ALIGN) * BUFFER_ALIGN));
}

/**
 * The size granule of every buffer the toolkit creates (256 B). The driver packs buffers one after
 * another at 16-byte alignment, so one buffer of 16 bytes shifts every later one off its 32-byte
 * sectors: on the H200 that made the selective scan's chunk_out, whose rows of y are stored 32 bytes
 * at a time, 25% slower (0.305 against 0.242 ms; docs/results.md §8e).
 */
export const BUFFER_ALIGN = 256;

/** `bytes` rounded up to a multiple of {@linkcode BUFFER_ALIGN} (at least one granule). */
export function alignedSize(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / BUFFER_ALIGN)) * BUFFER_ALIGN;
}

/**
 * A storage buffer of at least `bytes` bytes (pooled). Throws {@linkcode GpuError} with the size asked
 * and the limit when the device cannot hold it.
 */
export function acquireBuffer(bytes: number, label = "tensor"): GPUBuffer {
  const { device, maxBindingBytes, maxBufferBytes } = gpu();
  const size = bufferSize(bytes, maxBindingBytes, maxBufferBytes, label);
  const list = free.get(size);
  let buffer = list?.pop();
  if (buffer) {
    stats.cached -= size;
  } else {
    device.pushErrorScope("out-of-memory");
    buffer = device.createBuffer({ size, usage: TENSOR_USAGE, label });
    const bytesAsked = size;
    device.popErrorScope().then((e) => {
      // The scope captured the error, so record it where the next readback looks (no silent zeros).
      if (e) reportGpuError(`out of memory allocating ${bytesAsked} bytes for ${label}: ${e.message}`);
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
  dummy ??= gpu().device.createBuffer({ size: BUFFER_ALIGN, usage: TENSOR_USAGE, label: "dummy" });
  return dummy;
}

let held: GPUBuffer[] | null = null;

/**
 * While `list` is set, released buffers are kept in it instead of going back to the pool (a capture of
 * recorded work holds the buffers its commands bind, so nothing else can be handed them while the work
 * is replayed); `null` ends that. Returns the list that was set.
 */
export function holdReleases(list: GPUBuffer[] | null): GPUBuffer[] | null {
  const before = held;
  held = list;
  return before;
}

/** Returns a buffer from {@linkcode acquireBuffer} to the pool. */
export function releaseBuffer(buffer: GPUBuffer): void {
  if (held) {
    held.push(buffer);
    return;
  }
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
