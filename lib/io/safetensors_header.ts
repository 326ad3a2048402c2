/**
 * Parsing and validation of a safetensors header, following the checks of the reference Rust reader
 * (`safetensors/src/tensor.rs`): a u64 little-endian header length, a UTF-8 JSON object, contiguous
 * data offsets that exactly cover the data section, and byte lengths that match shape × dtype.
 *
 * @module
 */

import { SafetensorsError } from "../errors.ts";
import { checkedNumel, type Dtype, DTYPES, dtypeSize, isDtype } from "./dtype.ts";

/** Where one tensor's bytes lie in a safetensors file. */
export interface TensorInfo {
  /** Tensor name (a key of the header). */
  name: string;
  /** Element type. */
  dtype: Dtype;
  /** Dimensions, outermost first. */
  shape: number[];
  /** Absolute byte offset of the first element in the file. */
  byteOffset: number;
  /** Number of bytes (shape × dtype size). */
  byteLength: number;
}

/** The reference reader's cap on the header length. */
export const MAX_HEADER_BYTES = 100_000_000;

/** A validated header: metadata and tensor infos in file order. */
export interface ParsedHeader {
  /** `__metadata__`, or `{}` when absent. */
  metadata: Record<string, string>;
  /** Tensor infos (frozen) by name, in the order their data lies in the file. */
  tensors: Map<string, TensorInfo>;
}

/** Formats a shape like `[2, 3]`. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/**
 * Reads the header length from the first 8 bytes and checks it against the file size.
 * Returns the header length N; the data section starts at 8 + N.
 */
export function checkPrefix(path: string, prefix: Uint8Array, fileSize: number): number {
  if (fileSize === 0) throw new SafetensorsError(path, "file is empty, not a safetensors file");
  if (fileSize < 8) {
    throw new SafetensorsError(
      path,
      `file is ${fileSize} bytes, shorter than the 8-byte header length prefix (truncated file)`,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      path,
      `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`,
    );
  }
  if (8n + n > BigInt(fileSize)) {
    throw new SafetensorsError(
      path,
      `header length ${n} goes beyond the end of the file (${fileSize} bytes): truncated or not a safetensors file`,
    );
  }
  return Number(n);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseMetadata(path: string, v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isPlainObject(v)) throw new SafetensorsError(path, `"__metadata__" must be a string→string map`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== "string") {
      throw new SafetensorsError(
        path,
        `"__metadata__" must be a string→string map, but key "${k}" holds ${JSON.stringify(val)}`,
      );
    }
    out[k] = val;
  }
  return out;
}

interface RawEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

function parseEntry(path: string, name: string, v: unknown): RawEntry {
  const where = `${path}: tensor ${JSON.stringify(name)}`;
  if (!isPlainObject(v)) throw new SafetensorsError(where, "header entry is not an object");
  for (const key of ["dtype", "shape", "data_offsets"]) {
    if (!(key in v)) throw new SafetensorsError(where, `header entry has no "${key}"`);
  }
  const { dtype, shape, data_offsets: offs } = v;
  if (typeof dtype !== "string") throw new SafetensorsError(where, `"dtype" must be a string`);
  if (!isDtype(dtype)) {
    throw new SafetensorsError(
      where,
      `unknown dtype ${JSON.stringify(dtype)} (supported: ${DTYPES.join(", ")})`,
    );
  }
  if (!Array.isArray(shape)) throw new SafetensorsError(where, `"shape" must be an array`);
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
      throw new SafetensorsError(
        where,
        `shape ${JSON.stringify(shape)} has a dimension that is not a non-negative integer`,
      );
    }
  }
  if (
    !Array.isArray(offs) || offs.length !== 2 ||
    !offs.every((o) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0)
  ) {
    throw new SafetensorsError(
      where,
      `"data_offsets" must be [begin, end] with non-negative integers, got ${JSON.stringify(offs)}`,
    );
  }
  const [begin, end] = offs as number[];
  if (begin > end) {
    throw new SafetensorsError(where, `data_offsets [${begin}, ${end}] begin after end`);
  }
  const numel = checkedNumel(shape, dtypeSize(dtype));
  if (numel === null) {
    throw new SafetensorsError(where, `shape ${fmtShape(shape)} × ${dtype} overflows the byte count`);
  }
  const bytes = numel * dtypeSize(dtype);
  if (bytes !== end - begin) {
    throw new SafetensorsError(
      where,
      `shape ${fmtShape(shape)} × ${dtype} needs ${bytes} bytes, offsets give ${end - begin}`,
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

/**
 * Validates the JSON header (`headerBytes`, the N bytes after the prefix) against the data section
 * length and returns the metadata and absolute tensor locations.
 */
export function parseHeader(path: string, headerBytes: Uint8Array, dataLength: number): ParsedHeader {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError(path, "header is not valid UTF-8");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(path, `header is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(json)) throw new SafetensorsError(path, "header is not a JSON object");

  const metadata = parseMetadata(path, json["__metadata__"]);
  const entries: RawEntry[] = [];
  for (const [name, v] of Object.entries(json)) {
    if (name !== "__metadata__") entries.push(parseEntry(path, name, v));
  }

  let last: RawEntry | null = null;
  for (const e of entries) if (last === null || e.end > last.end) last = e;
  if (last !== null && last.end > dataLength) {
    throw new SafetensorsError(
      path,
      `data section is ${dataLength} bytes, header needs ${last.end} (tensor ${JSON.stringify(last.name)} ` +
        `data_offsets [${last.begin}, ${last.end}]): offsets out of range or truncated file`,
    );
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: RawEntry | null = null;
  for (const e of entries) {
    if (e.begin !== pos) {
      const what = e.begin < pos ? "overlaps" : "leaves a gap after";
      const other = prev ? `tensor ${JSON.stringify(prev.name)} (ends at ${pos})` : "the data section start";
      throw new SafetensorsError(
        path,
        `tensor ${JSON.stringify(e.name)} data_offsets [${e.begin}, ${e.end}] ${what} ${other}: ` +
          "offsets must be contiguous",
      );
    }
    pos = e.end;
    prev = e;
  }
  if (pos !== dataLength) {
    throw new SafetensorsError(
      path,
      `data section is ${dataLength} bytes, but the tensors cover only ${pos} (trailing bytes)`,
    );
  }

  const base = 8 + headerBytes.length;
  const tensors = new Map<string, TensorInfo>();
  for (const e of entries) {
    tensors.set(
      e.name,
      Object.freeze({
        name: e.name,
        dtype: e.dtype,
        shape: Object.freeze([...e.shape]) as number[],
        byteOffset: base + e.begin,
        byteLength: e.end - e.begin,
      }),
    );
  }
  return { metadata, tensors };
}
