/**
 * Recording GPU work: dispatches go into one open command encoder and compute pass, and are submitted
 * together on `flush()` (explicitly, before an upload, before a readback, or when the batch is full).
 *
 * Each dispatch gets its shape parameters in a 256-byte slot of a uniform ring buffer; the ring is
 * uploaded with a single `writeBuffer` just before the batch is submitted, so thousands of small
 * dispatches cost one upload and one submit. Bindings follow one convention in every kernel:
 * `@binding(0)` is the uniform `Params` struct, `@binding(1..)` the storage buffers in order.
 *
 * Capture ({@linkcode beginCapture} … {@linkcode endCapture}) keeps what a stretch of recording did —
 * each dispatch's pipeline and bind group (its parameters in a uniform buffer of the capture's own) and
 * each buffer copy — so that {@linkcode replayCommands} can record the same work again for the cost of
 * three encoder calls per dispatch instead of building every bind group anew (the bind group is most of
 * a small dispatch's host time). The captured work still runs once when its batch is submitted. Work
 * that depends on values known only on the GPU must read them from buffers (e.g. a decode position),
 * since a replay repeats the parameters word for word.
 *
 * @module
 */
import { GpuError } from "../errors.ts";
import { gpu, gpuCallFailure } from "./device.ts";
import { type KernelSpec, pipeline } from "./pipelines.ts";
import { holdReleases, releaseBuffer } from "./buffers.ts";

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

/** One captured command: a dispatch (pipeline, bind group, workgroups) or a buffer copy (bytes). */
type CapturedOp =
  | { kind: "dispatch"; pipeline: GPUComputePipeline; group: GPUBindGroup; groups: [number, number, number] }
  | { kind: "copy"; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; size: number };

/** Work recorded between {@linkcode beginCapture} and {@linkcode endCapture}, replayable. */
export interface CapturedCommands {
  /** The commands in recording order. */
  readonly ops: readonly CapturedOp[];
  /** Dispatches among them. */
  readonly dispatches: number;
  /** The uniform buffers holding the captured parameters (freed by {@linkcode releaseCapture}). */
  readonly uniforms: readonly GPUBuffer[];
  /** Pooled buffers released during the capture, held until {@linkcode releaseCapture}. */
  readonly held: readonly GPUBuffer[];
}

interface Capture {
  ops: CapturedOp[];
  uniforms: GPUBuffer[];
  held: GPUBuffer[];
  /** Slots used in the last uniform buffer. */
  used: number;
}

let capture: Capture | null = null;
const CAPTURE_SLOTS = 1024;

/** Whether a capture is open (uploads and readbacks are refused meanwhile: they cannot be replayed). */
export function capturing(): boolean {
  return capture !== null;
}

/**
 * Starts capturing: every dispatch and copy recorded until {@linkcode endCapture} is also kept for
 * {@linkcode replayCommands}. The buffers the work binds are captured by identity: keep the tensors
 * created before the capture alive for as long as you replay. Temporaries released during the capture
 * do not go back to the pool until {@linkcode releaseCapture}, so no other work is handed them.
 */
export function beginCapture(): void {
  if (capture) throw new GpuError("capture", "a capture is already open");
  const held: GPUBuffer[] = [];
  holdReleases(held);
  capture = { ops: [], uniforms: [], held, used: CAPTURE_SLOTS };
}

/** Ends the capture and returns what it recorded. */
export function endCapture(): CapturedCommands {
  if (!capture) throw new GpuError("capture", "endCapture without beginCapture");
  const c = capture;
  capture = null;
  holdReleases(null);
  return {
    ops: c.ops,
    dispatches: c.ops.filter((o) => o.kind === "dispatch").length,
    uniforms: c.uniforms,
    held: c.held,
  };
}

/**
 * Captures the work `fn` records ({@linkcode beginCapture} … {@linkcode endCapture}). If `fn` throws, the
 * capture is closed and released before the error propagates.
 */
export function captureCommands(fn: () => void): CapturedCommands {
  beginCapture();
  try {
    fn();
  } catch (e) {
    releaseCapture(endCapture());
    throw e;
  }
  return endCapture();
}

/** Records captured work again, in order, into the open batch (its uniform parameters unchanged). */
export function replayCommands(c: CapturedCommands): void {
  if (capture) throw new GpuError("capture", "cannot replay while capturing");
  const b = open();
  for (const op of c.ops) {
    if (op.kind === "copy") {
      if (b.pass) {
        b.pass.end();
        b.pass = null;
      }
      b.encoder.copyBufferToBuffer(op.src, op.srcOffset, op.dst, op.dstOffset, op.size);
    } else {
      b.pass ??= b.encoder.beginComputePass();
      b.pass.setPipeline(op.pipeline);
      b.pass.setBindGroup(0, op.group);
      b.pass.dispatchWorkgroups(op.groups[0], op.groups[1], op.groups[2]);
      dispatchTotal++;
    }
  }
}

/**
 * Frees a capture's uniform buffers and returns the temporaries it held to the pool (after its last
 * replay has been recorded; work recorded later runs after it in queue order). The open batch, which
 * may hold the capture's own recording or a replay, is submitted first: a buffer destroyed before the
 * submit that uses it makes that submit invalid, while one destroyed after it lives until the GPU is done.
 */
export function releaseCapture(c: CapturedCommands): void {
  flush();
  for (const u of c.uniforms) u.destroy();
  for (const b of c.held) releaseBuffer(b);
}

/** The uniform binding of a captured dispatch: a slot of the capture's own buffers, written now. */
function captureUniform(c: Capture, params: Params): GPUBufferBinding {
  const { device } = gpu();
  if (c.used >= CAPTURE_SLOTS) {
    c.uniforms.push(device.createBuffer({
      size: SLOT * CAPTURE_SLOTS,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: "captured-params",
    }));
    c.used = 0;
  }
  const buffer = c.uniforms[c.uniforms.length - 1];
  const offset = c.used++ * SLOT;
  // Ordered before every later submit, so before the batch this dispatch is recorded in.
  device.queue.writeBuffer(buffer, offset, params.words as Uint32Array<ArrayBuffer>);
  return { buffer, offset, size: SLOT };
}

/** Copies `size` bytes between buffers, in order with the dispatches (and into an open capture). */
export function copyBuffer(
  src: GPUBuffer,
  srcOffset: number,
  dst: GPUBuffer,
  dstOffset: number,
  size: number,
): void {
  encoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  capture?.ops.push({ kind: "copy", src, srcOffset, dst, dstOffset, size });
}

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
  let uniform: GPUBufferBinding;
  if (capture) {
    uniform = captureUniform(capture, params);
  } else {
    ring ??= device.createBuffer({
      size: SLOT * SLOTS,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: "params-ring",
    });
    const offset = b.slots * SLOT;
    ringData.set(new Uint8Array(params.words.buffer), offset);
    b.slots++;
    uniform = { buffer: ring, offset, size: SLOT };
  }
  const p = pipeline(spec);
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: uniform }];
  buffers.forEach((buf, i) => {
    if (buf) entries.push({ binding: i + 1, resource: "buffer" in buf ? buf : { buffer: buf } });
  });
  const group = device.createBindGroup({ layout: p.getBindGroupLayout(0), entries });
  const wg: [number, number, number] = [groups[0], groups[1] ?? 1, groups[2] ?? 1];
  b.pass ??= b.encoder.beginComputePass();
  b.pass.setPipeline(p);
  b.pass.setBindGroup(0, group);
  b.pass.dispatchWorkgroups(wg[0], wg[1], wg[2]);
  capture?.ops.push({ kind: "dispatch", pipeline: p, group, groups: wg });
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
