/**
 * A small on-disk cache for tokenized train/validation ids, so that the corpus is tokenized once per
 * tokenizer. File layout (little-endian): the 8-byte magic `MDLIDS01`, u32 train length, u32
 * validation length, u32 checksum of the ids, u32 zero; then the train ids and the validation ids
 * as int32. Files are written to a temporary name and renamed into place, so a reader never sees a
 * half-written cache; anything that does not check out is treated as a miss.
 *
 * @module
 */

import { dirname, join } from "node:path";

const MAGIC = "MDLIDS01";
const HEADER_BYTES = 24;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Train and validation ids, as stored in one cache file. */
export interface IdsPair {
  /** Training ids. */
  train: Int32Array;
  /** Validation ids. */
  validation: Int32Array;
}

/** A 32-bit FNV-1a-style hash over int32 words (detects truncation and bit rot, not tampering). */
export function idsChecksum(...arrays: Int32Array[]): number {
  let h = 0x811c9dc5;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) h = Math.imul(h ^ a[i], 0x01000193);
    h = Math.imul(h ^ a.length, 0x01000193);
  }
  return h >>> 0;
}

/** First 16 hex digits of the SHA-256 of `text`: a file-name-safe cache key. */
export async function cacheKey(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Reads an environment variable; undefined when unset or when env access is not permitted. */
function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The toolkit's cache directory: `$XDG_CACHE_HOME/mamba-distill-lab`, else `~/.cache/mamba-distill-lab`
 * (`%LOCALAPPDATA%` on Windows); undefined when no home directory is known.
 */
export function defaultCacheDir(): string | undefined {
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return join(xdg, "mamba-distill-lab");
  const home = env("HOME") ?? env("USERPROFILE");
  if (home) return join(home, ".cache", "mamba-distill-lab");
  const local = env("LOCALAPPDATA");
  return local ? join(local, "mamba-distill-lab") : undefined;
}

/** Reads a cache file; undefined when it is missing, unreadable or corrupt. */
export async function readIdsCache(path: string): Promise<IdsPair | undefined> {
  if (!LITTLE_ENDIAN) return undefined;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch {
    return undefined;
  }
  if (bytes.length < HEADER_BYTES || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    return undefined;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nTrain = view.getUint32(8, true);
  const nVal = view.getUint32(12, true);
  const sum = view.getUint32(16, true);
  if (view.getUint32(20, true) !== 0 || bytes.length !== HEADER_BYTES + 4 * (nTrain + nVal)) return undefined;
  const train = new Int32Array(bytes.slice(HEADER_BYTES, HEADER_BYTES + 4 * nTrain).buffer);
  const validation = new Int32Array(bytes.slice(HEADER_BYTES + 4 * nTrain).buffer);
  return idsChecksum(train, validation) === sum ? { train, validation } : undefined;
}

/**
 * Writes a cache file atomically (temporary file in the same directory, then rename), creating the
 * directory. Returns false, leaving no temporary file behind, when it cannot be written.
 */
export async function writeIdsCache(path: string, ids: IdsPair): Promise<boolean> {
  if (!LITTLE_ENDIAN) return false;
  const { train, validation } = ids;
  const bytes = new Uint8Array(HEADER_BYTES + 4 * (train.length + validation.length));
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  const view = new DataView(bytes.buffer);
  view.setUint32(8, train.length, true);
  view.setUint32(12, validation.length, true);
  view.setUint32(16, idsChecksum(train, validation), true);
  bytes.set(new Uint8Array(train.buffer, train.byteOffset, train.byteLength), HEADER_BYTES);
  bytes.set(
    new Uint8Array(validation.buffer, validation.byteOffset, validation.byteLength),
    HEADER_BYTES + train.byteLength,
  );
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
    return true;
  } catch {
    await Deno.remove(tmp).catch(() => {});
    return false;
  }
}
