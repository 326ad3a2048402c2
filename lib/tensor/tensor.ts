/**
 * The GPU tensor: a pooled storage buffer, a shape and a dtype. Compute is f32; i32 holds token ids;
 * f16 is a storage format only (IEEE half, two per 32-bit word, element 2w in the low half of word w),
 * read by the kernels that take it (`kernels/matmul_f16.wgsl`) and shown to the host as f32 values.
 *
 * Tensors own their buffer: `dispose()` (or a `using` declaration) returns it to the pool. Values stay
 * on the GPU; `toArray()` reads back (≥ 11 ms each in Deno), and `readTensors` reads many at once.
 *
 * Shape notation in this codebase follows the papers: `(B, L, D)` batch, length, width; `(H, P)` heads,
 * head dim; `N` state size; `V` vocabulary. Shapes are outermost first, row-major.
 *
 * @module
 */
import { GpuError, ShapeError } from "../errors.ts";
import { gpu } from "../gpu/device.ts";
import { acquireBuffer, releaseBuffer } from "../gpu/buffers.ts";
import { readBuffers, uploadBytes } from "../gpu/transfer.ts";

/** Element types held on the GPU. */
export type DType = "f32" | "i32" | "f16";

/** A host array of a dtype (f16 tensors are read back widened to f32, exactly). */
export type HostArray<D extends DType = DType> = D extends "i32" ? Int32Array : Float32Array;

/** Bytes of `n` elements of a dtype in a GPU buffer (f16: 2 each, padded to a whole 4-byte word). */
export function bytesOf(n: number, dtype: DType): number {
  return dtype === "f16" ? Math.ceil(n / 2) * 4 : n * 4;
}

/** `data` as a host array of the dtype's bits (f16: rounded to nearest, ties to even). */
function hostBits(data: ArrayLike<number>, dtype: DType): Float32Array | Int32Array | Float16Array {
  if (dtype === "f16") return data instanceof Float16Array ? data : Float16Array.from(data);
  if (dtype === "i32") return data instanceof Int32Array ? data : Int32Array.from(data);
  return data instanceof Float32Array ? data : Float32Array.from(data);
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** `(2, 8, 33)`: a shape in the paper-style notation used in error messages. */
export function fmtShape(shape: readonly number[]): string {
  return `(${shape.join(", ")})`;
}

/**
 * A dense, row-major tensor in GPU memory.
 *
 * Ownership is reference-counted: a new tensor holds one reference; `retain()` adds one (the autograd
 * tape retains what backward needs), `dispose()` drops one, and the buffer returns to the pool when
 * none is left. So model code may dispose intermediates eagerly whether or not a tape is recording.
 */
export class Tensor implements Disposable {
  /** Shape, outermost first. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
  #requiresGrad = false;
  /** The accumulated gradient of a parameter after `backward` (owned by the tensor). */
  grad: Tensor | null = null;
  #buffer: GPUBuffer | null;
  #refs = 1;

  /** Wraps an existing buffer (ownership passes to the tensor). Prefer the factories below. */
  constructor(buffer: GPUBuffer, shape: readonly number[], dtype: DType = "f32") {
    this.#buffer = buffer;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = numel(shape);
  }

  /** An uninitialised tensor (contents are whatever the pooled buffer held). */
  static empty(shape: readonly number[], dtype: DType = "f32", label?: string): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new ShapeError("tensor", `bad shape ${fmtShape(shape)}`);
    }
    const bytes = bytesOf(numel(shape), dtype);
    const max = gpu().maxBufferBytes;
    if (bytes > max) {
      throw new GpuError(
        label ?? "tensor",
        `a tensor of shape ${
          fmtShape(shape)
        } needs ${bytes} bytes; the device's maxBufferSize is ${max} bytes`,
      );
    }
    return new Tensor(acquireBuffer(bytes, label), shape, dtype);
  }

  /**
   * A tensor holding `data` (its length must equal the shape's element count); for f16 the values are
   * rounded to the nearest half (ties to even) on the host.
   */
  static from(data: ArrayLike<number>, shape: readonly number[], dtype: DType = "f32"): Tensor {
    if (data.length !== numel(shape)) {
      throw new ShapeError("tensor", `${data.length} values do not fill shape ${fmtShape(shape)}`);
    }
    const t = Tensor.empty(shape, dtype);
    const host = hostBits(data, dtype);
    if (host.length > 0) uploadBytes(t.buffer, host);
    return t;
  }

  /** A tensor of zeros. */
  static zeros(shape: readonly number[], dtype: DType = "f32"): Tensor {
    const t = Tensor.empty(shape, dtype); // checks the shape and the device's limit before any host array
    if (t.size > 0) {
      uploadBytes(t.buffer, new Uint8Array(t.byteLength));
    }
    return t;
  }

  /** The GPU buffer (throws if disposed). Its size may exceed `byteLength` (pool size classes). */
  get buffer(): GPUBuffer {
    if (!this.#buffer) throw new ShapeError("tensor", "used after dispose()");
    return this.#buffer;
  }

  /** Bytes of data (4 per element; f16: 2, padded to a whole word). */
  get byteLength(): number {
    return bytesOf(this.size, this.dtype);
  }

  /** Whether the tensor fits one storage binding of the device. */
  get bindable(): boolean {
    return this.byteLength <= gpu().maxBindingBytes;
  }

  /**
   * The same buffer seen with another shape of equal element count (no copy). A view borrows: it must
   * not outlive its base, and disposing it does nothing unless it came from `retain()`.
   */
  view(shape: readonly number[]): Tensor {
    if (numel(shape) !== this.size) {
      throw new ShapeError("tensor", `cannot view ${fmtShape(this.shape)} as ${fmtShape(shape)}`);
    }
    return new TensorView(this.base, shape, false);
  }

  /** The tensor owning the buffer (itself, or a view's base). */
  get base(): Tensor {
    return this;
  }

  /** Whether gradients flow to this tensor (a trainable parameter, or a value derived from one). */
  get requiresGrad(): boolean {
    return this.#requiresGrad;
  }
  set requiresGrad(on: boolean) {
    this.#requiresGrad = on;
  }

  /** Adds a reference and returns a handle that owns it (`dispose()` it when done). */
  retain(): Tensor {
    this.#refs++;
    return this;
  }

  /** Overwrites the contents with `data` (same element count; f16 tensors round it to halves). */
  write(data: Float32Array | Int32Array): void {
    if (data.length !== this.size) {
      throw new ShapeError("tensor", `${data.length} values for ${fmtShape(this.shape)}`);
    }
    uploadBytes(this.buffer, this.dtype === "f16" ? hostBits(data, "f16") : data);
  }

  /** Reads the values back (one GPU sync). */
  async toArray(): Promise<HostArray> {
    const [out] = await readTensors([this]);
    return out;
  }

  /** Drops one reference; the buffer returns to the pool with the last. Safe to call again after that. */
  dispose(): void {
    if (!this.#buffer) return;
    if (--this.#refs > 0) return;
    releaseBuffer(this.#buffer);
    this.#buffer = null;
    this.grad?.dispose();
    this.grad = null;
  }

  /** `using t = …` disposes at the end of the scope. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Whether the buffer has been released. */
  get disposed(): boolean {
    return this.#buffer === null;
  }
}

/** A reshaped alias of another tensor's buffer; owning only when made by `retain()`. */
class TensorView extends Tensor {
  #base: Tensor;
  #owning: boolean;
  constructor(base: Tensor, shape: readonly number[], owning: boolean) {
    super(base.buffer, shape, base.dtype);
    this.#base = base;
    this.#owning = owning;
  }
  override get buffer(): GPUBuffer {
    return this.#base.buffer;
  }
  override get base(): Tensor {
    return this.#base;
  }
  override get requiresGrad(): boolean {
    return this.#base.requiresGrad;
  }
  override set requiresGrad(on: boolean) {
    this.#base.requiresGrad = on;
  }
  override retain(): Tensor {
    this.#base.retain();
    return new TensorView(this.#base, this.shape, true);
  }
  override dispose(): void {
    if (this.#owning) {
      this.#owning = false;
      this.#base.dispose();
    }
  }
  override get disposed(): boolean {
    return this.#base.disposed;
  }
}

/** Reads many tensors back with a single GPU sync. */
export async function readTensors(tensors: Tensor[]): Promise<HostArray[]> {
  const bufs = await readBuffers(tensors.map((t) => ({ buffer: t.buffer, offset: 0, size: t.byteLength })));
  return bufs.map((b, i) => {
    const t = tensors[i];
    if (t.dtype === "f16") return Float32Array.from(new Float16Array(b, 0, t.size));
    return t.dtype === "f32" ? new Float32Array(b) : new Int32Array(b);
  });
}

/** Throws a {@linkcode ShapeError} naming the op, the tensor and both shapes when `t` has the wrong shape. */
export function expectShape(op: string, name: string, t: Tensor, shape: readonly number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new ShapeError(op, `expected ${name} ${fmtShape(shape)}, got ${fmtShape(t.shape)}`);
  }
}

/** `t` with another shape of the same size, taking over the reference the caller held on `t`. */
export function reshape(t: Tensor, shape: readonly number[]): Tensor {
  if (t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  const v = t.view(shape).retain();
  t.dispose();
  return v;
}
