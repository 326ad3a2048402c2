/**
 * Safetensors writer: the same byte layout as the reference Rust writer (`serialize`): header padded
 * with spaces to a multiple of 8, tensors ordered by descending dtype then name, little-endian C order.
 * Files are written atomically (temporary file in the same directory, fsync, rename, fsync of the
 * directory).
 *
 * @module
 */

import { SafetensorsError } from "../errors.ts";
import {
  checkedNumel,
  dataFits,
  dataToBytes,
  dtypeArrayName,
  dtypeRank,
  dtypeSize,
  type HostTensor,
  isDtype,
} from "./dtype.ts";
import { fmtShape } from "./safetensors_header.ts";

interface Layout {
  /** The 8-byte length prefix followed by the padded header. */
  head: Uint8Array;
  /** Tensor bytes in file order. */
  chunks: Uint8Array[];
  /** Total file size. */
  size: number;
}

/** Compares strings by Unicode code point (the byte order of their UTF-8, as Rust's `String` does). */
function byCodePoint(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return (x.done ? 0 : 1) - (y.done ? 0 : 1);
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

function checkTensor(where: string, name: string, t: HostTensor): Uint8Array {
  const at = `${where}tensor ${JSON.stringify(name)}`;
  if (name === "__metadata__") throw new SafetensorsError(at, "the name is reserved for the metadata map");
  if (!isDtype(t.dtype)) throw new SafetensorsError(at, `unknown dtype ${JSON.stringify(t.dtype)}`);
  const numel = Array.isArray(t.shape) ? checkedNumel(t.shape, dtypeSize(t.dtype)) : null;
  if (numel === null) {
    throw new SafetensorsError(at, `shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`);
  }
  if (!dataFits(t.dtype, t.data)) {
    throw new SafetensorsError(
      at,
      `${t.dtype} data must be a ${dtypeArrayName(t.dtype)}, got ${t.data?.constructor?.name}`,
    );
  }
  if (t.data.length !== numel) {
    throw new SafetensorsError(
      at,
      `data has ${t.data.length} elements, shape ${fmtShape(t.shape)} needs ${numel}`,
    );
  }
  return dataToBytes(t.data);
}

function layout(
  where: string,
  tensors: Record<string, HostTensor> | Map<string, HostTensor>,
  metadata?: Record<string, string>,
): Layout {
  const list = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))]
    .map(([name, t]) => ({ name, t, bytes: checkTensor(where, name, t) }))
    .sort((a, b) => dtypeRank(b.t.dtype) - dtypeRank(a.t.dtype) || byCodePoint(a.name, b.name));

  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new SafetensorsError(where + "__metadata__", `value of key "${k}" is not a string`);
      }
    }
    header["__metadata__"] = metadata;
  }
  let offset = 0;
  for (const { name, t, bytes } of list) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  return { head, chunks: list.map((e) => e.bytes), size: head.length + offset };
}

/**
 * Serialises tensors (and optional `__metadata__`) to safetensors bytes in memory.
 * Throws {@linkcode SafetensorsError} for an invalid tensor (bad dtype/shape, wrong array type or length).
 */
export function encodeSafetensors(
  tensors: Record<string, HostTensor> | Map<string, HostTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const { head, chunks, size } = layout("", tensors, metadata);
  const out = new Uint8Array(size);
  out.set(head, 0);
  let pos = head.length;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done, done + (1 << 26)));
}

/** Flushes the directory holding `path` (best effort), so that a rename in it survives a power loss. */
async function syncParentDir(path: string): Promise<void> {
  const cut = path.lastIndexOf("/");
  const dir = cut < 0 ? "." : cut === 0 ? "/" : path.slice(0, cut);
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // Some systems cannot open or fsync a directory; the rename itself is still atomic.
  }
}

/**
 * Writes tensors (and optional `__metadata__`) to a safetensors file at `path`, atomically: the bytes
 * go to `<path>.tmp-<random>` in the same directory, are fsynced, then the file is renamed over `path`
 * and the directory is fsynced. A process killed at any point leaves either the old file or the new
 * one at `path` (and possibly a stale `<path>.tmp-*`, never read by the loaders).
 * Streams tensor by tensor, so memory stays at the tensors' own size. Throws {@linkcode SafetensorsError}
 * for invalid tensors or when the file cannot be written (the temporary file is removed).
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, HostTensor> | Map<string, HostTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const { head, chunks } = layout(`${path}: `, tensors, metadata);
  const rand = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, "0"));
  const tmp = `${path}.tmp-${rand.join("")}`;
  let file: Deno.FsFile | null = null;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true });
    await writeAll(file, head);
    for (const c of chunks) await writeAll(file, c);
    await file.sync();
    file.close();
    file = null;
    await Deno.rename(tmp, path);
  } catch (e) {
    file?.close();
    await Deno.remove(tmp).catch(() => {});
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied) {
      throw new SafetensorsError(path, `cannot write: ${(e as Error).message}`, { cause: e });
    }
    throw e;
  }
  await syncParentDir(path);
}
