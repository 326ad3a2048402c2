/**
 * Safetensors reader and writer. {@linkcode SafetensorsFile} reads only the header when opened
 * (validating it completely, as the reference Rust reader does) and then reads single tensors on
 * demand through a file handle, so multi-GB checkpoints are never buffered whole.
 *
 * @example
 * ```ts
 * using f = await SafetensorsFile.open("model.safetensors");
 * const w = await f.readF32("model.norm.weight");
 * ```
 *
 * @module
 */

import { SafetensorsError } from "../errors.ts";
import { bytesToData, dataToF32, type HostTensor } from "./dtype.ts";
import { checkPrefix, parseHeader, type TensorInfo } from "./safetensors_header.ts";

export {
  bf16ToF32,
  type Dtype,
  DTYPES,
  f16ToF32,
  f32ToBf16,
  type HostData,
  type HostTensor,
} from "./dtype.ts";
export { MAX_HEADER_BYTES, type TensorInfo } from "./safetensors_header.ts";
export { encodeSafetensors, writeSafetensors } from "./safetensors_write.ts";

async function readExact(file: Deno.FsFile, offset: number, out: Uint8Array): Promise<number> {
  await file.seek(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < out.length) {
    const n = await file.read(out.subarray(done));
    if (n === null || n === 0) break;
    done += n;
  }
  return done;
}

/** An open safetensors file: validated header in memory, tensor data read lazily. */
export class SafetensorsFile implements Disposable {
  /** Path the file was opened from. */
  readonly path: string;
  /** The header's `__metadata__` map (`{}` when absent). */
  readonly metadata: Record<string, string>;
  #file: Deno.FsFile | null;
  #tensors: Map<string, TensorInfo>;
  /** Serialises seek+read pairs on the shared handle. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    path: string,
    file: Deno.FsFile,
    metadata: Record<string, string>,
    tensors: Map<string, TensorInfo>,
  ) {
    this.path = path;
    this.#file = file;
    this.metadata = metadata;
    this.#tensors = tensors;
  }

  /**
   * Opens `path` and reads and validates its header (8-byte length + JSON) without reading any tensor
   * data. Throws {@linkcode SafetensorsError} naming the file for a missing, truncated or malformed file.
   */
  static async open(path: string): Promise<SafetensorsFile> {
    let file: Deno.FsFile;
    try {
      // stat first: opening a FIFO (or a device) for reading can block forever
      if (!(await Deno.stat(path)).isFile) throw new SafetensorsError(path, "not a regular file");
      file = await Deno.open(path, { read: true });
    } catch (e) {
      if (e instanceof SafetensorsError) throw e;
      if (e instanceof Deno.errors.NotFound) throw new SafetensorsError(path, "file not found", { cause: e });
      // permission denied, a symlink loop, a file used as a directory, a NUL in the name, ...
      throw new SafetensorsError(path, `cannot open: ${(e as Error).message}`, { cause: e });
    }
    try {
      const stat = await file.stat();
      if (!stat.isFile) throw new SafetensorsError(path, "not a regular file");
      const prefix = new Uint8Array(8);
      const got = await readExact(file, 0, prefix);
      const n = checkPrefix(path, prefix, got < 8 ? got : stat.size);
      const header = new Uint8Array(n);
      if (await readExact(file, 8, header) !== n) {
        throw new SafetensorsError(path, "file shrank while reading the header (truncated file)");
      }
      const { metadata, tensors } = parseHeader(path, header, stat.size - 8 - n);
      return new SafetensorsFile(path, file, metadata, tensors);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** Tensor names in the order their data lies in the file. */
  names(): string[] {
    return [...this.#tensors.keys()];
  }

  /** Whether the file holds a tensor called `name`. */
  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  /** Dtype, shape and absolute byte range of `name`; throws {@linkcode SafetensorsError} if absent. */
  info(name: string): TensorInfo {
    const info = this.#tensors.get(name);
    if (!info) {
      throw new SafetensorsError(
        this.path,
        `no tensor ${JSON.stringify(name)} (the file has ${this.#tensors.size} tensors)`,
      );
    }
    return info;
  }

  /** The raw little-endian bytes of `name`, in a fresh 8-byte-aligned buffer. */
  async readBytes(name: string): Promise<Uint8Array> {
    const info = this.info(name);
    const run = this.#queue.then(async () => {
      if (this.#file === null) throw new SafetensorsError(this.path, "file is closed");
      const out = new Uint8Array(info.byteLength);
      if (await readExact(this.#file, info.byteOffset, out) !== out.length) {
        throw new SafetensorsError(
          `${this.path}: tensor ${JSON.stringify(name)}`,
          "file ended before the tensor's data (truncated since it was opened?)",
        );
      }
      return out;
    });
    this.#queue = run.catch(() => {});
    return await run;
  }

  /** Reads `name` into the typed array of its dtype (F16/BF16 as raw Uint16Array bits). */
  async read(name: string): Promise<HostTensor> {
    const { dtype, shape } = this.info(name);
    const bytes = await this.readBytes(name);
    return { dtype, shape: [...shape], data: bytesToData(dtype, bytes) };
  }

  /** Reads `name` widened (or rounded) to float32: bf16 is `u16 << 16`, f16 exact, f64/ints rounded. */
  async readF32(name: string): Promise<Float32Array> {
    const t = await this.read(name);
    return dataToF32(t.dtype, t.data);
  }

  /** Closes the file handle; pending reads fail. Safe to call twice. */
  close(): void {
    this.#file?.close();
    this.#file = null;
  }

  /** Same as {@linkcode SafetensorsFile.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
