/**
 * Recording GPU work: dispatches go into one open command encoder and compute pass, and are submitted
 * together on `flush()` (explicitly, before an upload, before a readback, or when the batch is full).
 *
 * Each dispatch gets its shape parameters in a 256-byte slot of a uniform ring buffer; the ring is
 * uploaded with a single `writeBuffer` just before the batch is submitted, so thousands of small
 * dispatches cost one upload and one submit. Bindings follow one convention in every kernel:
 * `@binding(0)` is the uniform `Params` struct, `@binding(1..)` the storage buffers in order.
 *
 * @module
 */
import { GpuError } from "../errors.ts";
import { gpu, gpuCallFailure } from "./device.ts";
import { type KernelSpec, pipeline } from "./pipelines.ts";

const SLOT = 256;
const SLOTS = 2048;

/** Packs a kernel's uniform parameters (u32, i32, f32 words in declaration order). */
export class Params {
  /** The packed words. */
  readonly words: Uint32Array = new Uint32Array(SLOT / 4);
  private readonly f32 = new Float32Array(this.words.buffer);
  private readonly i32 = new Int32Array(this.words.buffer);
  private n = 0;
  /** Appends unsigned integers. */
  u32(...v: number[]): this {
    for (const x of v) this.words[this.n++] = x >>> 0;
    return this;
  }
  /** Appends signed integers. */
  i32v(...v: number[]): this {
    for (const x of v) this.i32[this.n++] = x | 0;
    return this;
  }
  /** Appends floats. */
  f32v(...v: number[]): this {
    for (const x of v) this.f32[this.n++] = x;
    return this;
  }
  /** Number of words written. */
  get length(): number {
    return this.n;
  }
}

/** A storage binding: a whole buffer, or a byte range of one. */
export type Binding = GPUBuffer | { buffer: GPUBuffer; offset: number; size: number };

interface Batch {
  encoder: GPUCommandEncoder;
  pass: GPUComputePassEncoder | null;
  slots: number;
}

let batch: Batch | null = null;
let ring: GPUBuffer | null = null;
const ringData = new Uint8Array(SLOT * SLOTS);
let dispatchTotal = 0;

function open(): Batch {
  if (!batch) batch = { encoder: gpu().device.createCommandEncoder(), pass: null, slots: 0 };
  return batch;
}

/** The open command encoder with no compute pass open (for copies and timestamp passes). */
export function encoder(): GPUCommandEncoder {
  const b = open();
  if (b.pass) {
    b.pass.end();
    b.pass = null;
  }
  return b.encoder;
}

/** Opens a compute pass with timestamp writes (the next dispatches go into it). */
export function beginTimedPass(writes: GPUComputePassTimestampWrites): void {
  const enc = encoder();
  batch!.pass = enc.beginComputePass({ timestampWrites: writes });
}

/** Ends the open compute pass, if any (closing a timed region). */
export function endPass(): void {
  if (batch?.pass) {
    batch.pass.end();
    batch.pass = null;
  }
}

/**
 * Records one dispatch of a kernel.
 * @param spec the kernel (file, entry point, constants)
 * @param buffers storage buffers for `@binding(1)`, `@binding(2)`, …; `null` skips a binding that
 *   this entry point does not use (its pipeline layout, derived from the shader, omits it)
 * @param params the uniform parameters for `@binding(0)`
 * @param groups workgroup counts (x, y, z)
 */
export function dispatch(
  spec: KernelSpec,
  buffers: (Binding | null)[],
  params: Params,
  groups: [number, number?, number?],
): void {
  const { device, maxBindingBytes } = gpu();
  // A whole buffer or range past one binding's limit would only fail later, as a validation error.
  for (let i = 0; i < buffers.length; i++) {
    const bytes = buffers[i]?.size ?? 0;
    if (bytes > maxBindingBytes) {
      throw new GpuError(
        `${spec.file}:${spec.entry ?? "main"}`,
        `binding ${i + 1} is a buffer of ${bytes} bytes; the device's maxStorageBufferBindingSize is ` +
          `${maxBindingBytes} bytes (split the tensor or use a smaller batch)`,
      );
    }
  }
  if (batch && batch.slots >= SLOTS) flush();
  const b = open();
  ring ??= device.createBuffer({
    size: SLOT * SLOTS,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    label: "params-ring",
  });
  const offset = b.slots * SLOT;
  ringData.set(new Uint8Array(params.words.buffer), offset);
  b.slots++;
  const p = pipeline(spec);
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: ring, offset, size: SLOT } }];
  buffers.forEach((buf, i) => {
    if (buf) entries.push({ binding: i + 1, resource: "buffer" in buf ? buf : { buffer: buf } });
  });
  const group = device.createBindGroup({ layout: p.getBindGroupLayout(0), entries });
  b.pass ??= b.encoder.beginComputePass();
  b.pass.setPipeline(p);
  b.pass.setBindGroup(0, group);
  b.pass.dispatchWorkgroups(groups[0], groups[1] ?? 1, groups[2] ?? 1);
  dispatchTotal++;
}

/** Submits all recorded work. Cheap when nothing is recorded. */
export function flush(): void {
  if (!batch) return;
  const { device } = gpu();
  if (batch.pass) batch.pass.end();
  if (batch.slots > 0) device.queue.writeBuffer(ring!, 0, ringData, 0, batch.slots * SLOT);
  device.queue.submit([batch.encoder.finish()]);
  batch = null;
}

/** Number of dispatches recorded since start (for benchmarks and tests). */
export function dispatchCount(): number {
  return dispatchTotal;
}

/** Waits until the GPU has finished all submitted work (costs one ≥ 11 ms sync in Deno). */
export async function sync(): Promise<void> {
  flush();
  try {
    await gpu().device.queue.onSubmittedWorkDone();
  } catch (e) {
    throw await gpuCallFailure("sync", e);
  }
}

/** Workgroup count covering `n` items with `size` per group, as (x, y) within the 65535 limit. */
export function groupsFor(n: number, size: number): [number, number] {
  const g = Math.max(1, Math.ceil(n / size));
  if (g <= 65535) return [g, 1];
  const y = Math.ceil(g / 65535);
  return [Math.ceil(g / y), y];
}
