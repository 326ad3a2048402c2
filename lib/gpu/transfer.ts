/**
 * Moving bytes between host and GPU.
 *
 * Every readback in Deno costs at least ~11 ms (its `mapAsync` polls with a 10 ms sleep), whatever
 * its size, and blocks the event loop, so `readBuffers` copies any number of ranges into staging
 * buffers in one submit and maps them together: one wait for all. Uploads flush recorded work first,
 * because `queue.writeBuffer` is ordered before any batch submitted after it.
 *
 * @module
 */
import { checkGpuErrors, gpu, gpuCallFailure } from "./device.ts";
import { type Binding, capturing, encoder, flush } from "./commands.ts";
import { GpuError } from "../errors.ts";
import { alignedSize } from "./buffers.ts";

/** Uploads `data` into `buffer` at `offset` (flushing recorded work first). */
export function uploadBytes(buffer: GPUBuffer, data: ArrayBufferView, offset = 0): void {
  if (capturing()) {
    throw new GpuError("upload", "an upload cannot be captured for replay (upload before the capture)");
  }
  flush();
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  // writeBuffer needs a multiple of 4 bytes.
  const padded = bytes.byteLength % 4 === 0 ? bytes : (() => {
    const p = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
    p.set(bytes);
    return p;
  })();
  gpu().device.queue.writeBuffer(buffer, offset, padded as Uint8Array<ArrayBuffer>);
}

/** A range to read back. `size` defaults to the whole buffer after `offset`. */
export interface ReadRange {
  /** The buffer to read. */
  buffer: GPUBuffer;
  /** Byte offset (multiple of 4). */
  offset?: number;
  /** Byte count (multiple of 4). */
  size?: number;
}

/** Reads several buffer ranges back with one submit and one wait. */
export async function readBuffers(ranges: ReadRange[]): Promise<ArrayBuffer[]> {
  if (capturing()) throw new GpuError("readback", "a readback cannot be captured for replay");
  const { device } = gpu();
  const enc = encoder();
  const staging = ranges.map((r) => {
    const offset = r.offset ?? 0;
    const size = r.size ?? r.buffer.size - offset;
    const s = device.createBuffer({
      size: alignedSize(size),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    if (size > 0) enc.copyBufferToBuffer(r.buffer, offset, s, 0, size);
    return { s, size };
  });
  flush();
  try {
    await Promise.all(staging.map(({ s }) => s.mapAsync(GPUMapMode.READ)));
    checkGpuErrors("readback");
    return staging.map(({ s, size }) => {
      const out = s.getMappedRange(0, Math.max(4, size)).slice(0, size);
      s.unmap();
      s.destroy();
      return out;
    });
  } catch (e) {
    // A mapping that fails, or an unmap on a device lost meanwhile: a typed error, not a DOMException.
    for (const { s } of staging) {
      try {
        s.destroy();
      } catch {
        // a lost device may refuse even this
      }
    }
    throw await gpuCallFailure("readback", e);
  }
}

/** Resolves a binding to a read range. */
export function rangeOf(b: Binding): ReadRange {
  return "buffer" in b ? b : { buffer: b };
}
