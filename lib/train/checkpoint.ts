/**
 * Training checkpoints: model tensors under their checkpoint names, optimizer moments as
 * `optimizer.<name>.exp_avg[_sq]`, and the step, optimizer step and RNG state in `__metadata__`, all
 * in one safetensors file (the weights' own layout). The file is written to a temporary name, fsynced
 * and renamed over the previous one, so a crash mid-write (even `kill -9`) leaves the last good
 * checkpoint in place; temporary files a crash left behind are removed by the next save. Each tensor's
 * checksum is stored too, so a damaged file is refused on load instead of resuming from garbage.
 *
 * @module
 */
import { idsChecksum } from "../data/ids_cache.ts";
import { CheckpointError } from "../errors.ts";
import { Rng } from "../random.ts";
import { type HostTensor, SafetensorsFile, writeSafetensors } from "../io/safetensors.ts";
import { readTensors, type Tensor } from "../tensor/tensor.ts";

/** The file name inside a run directory. */
export const CHECKPOINT_FILE = "checkpoint.safetensors";

/** What a checkpoint restores besides tensors. */
export interface CheckpointMeta {
  /** Steps completed. */
  step: number;
  /** The optimizer's step count (bias corrections). */
  optimizerStep: number;
  /** The data RNG's state. */
  rng: number[];
  /** Free-form JSON the caller keeps (recipe, stage, …). */
  extra?: Record<string, unknown>;
}

/** The checksum stored per tensor: FNV-1a over the f32 values' bit patterns, as 8 hex digits. */
export function tensorChecksum(data: Float32Array): string {
  const words = new Int32Array(data.buffer, data.byteOffset, data.length);
  return idsChecksum(words).toString(16).padStart(8, "0");
}

/**
 * Removes `checkpoint.safetensors.tmp-*` files in `dir`: the partial writes of a process killed while
 * saving (only one run may write a directory at a time). Returns the names removed.
 */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  const removed: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && e.name.startsWith(`${CHECKPOINT_FILE}.tmp-`)) {
        await Deno.remove(`${dir}/${e.name}`).catch(() => {});
        removed.push(e.name);
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return removed;
}

/** Writes `tensors` (name → GPU tensor) and `meta` to `dir/checkpoint.safetensors` atomically. */
export async function saveCheckpoint(
  dir: string,
  tensors: [string, Tensor][],
  meta: CheckpointMeta,
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  await removeStaleTemps(dir);
  const values = await readTensors(tensors.map(([, t]) => t));
  const out: Record<string, HostTensor> = {};
  const sums: Record<string, string> = {};
  tensors.forEach(([name, t], i) => {
    out[name] = { dtype: "F32", shape: [...t.shape], data: values[i] as Float32Array };
    sums[name] = tensorChecksum(values[i] as Float32Array);
  });
  const path = `${dir}/${CHECKPOINT_FILE}`;
  await writeSafetensors(path, out, {
    format: "pt",
    producer: "mamba-distill-lab",
    step: String(meta.step),
    optimizer_step: String(meta.optimizerStep),
    rng: JSON.stringify(meta.rng),
    extra: JSON.stringify(meta.extra ?? {}),
    checksums: JSON.stringify(sums),
  });
  return path;
}

/** Whether `dir` holds a checkpoint. */
export async function hasCheckpoint(dir: string): Promise<boolean> {
  try {
    return (await Deno.stat(`${dir}/${CHECKPOINT_FILE}`)).isFile;
  } catch {
    return false;
  }
}

/**
 * Loads `dir/checkpoint.safetensors` into the given GPU tensors (every name must be present with the
 * same shape) and returns its metadata. A damaged file is refused before any tensor is written: a
 * truncated or malformed one with {@linkcode SafetensorsError}, one whose values do not match their
 * stored checksums (or whose metadata is unreadable) with {@linkcode CheckpointError}; both name the file.
 */
export async function loadCheckpoint(dir: string, tensors: [string, Tensor][]): Promise<CheckpointMeta> {
  const path = `${dir}/${CHECKPOINT_FILE}`;
  using f = await SafetensorsFile.open(path);
  const meta = parseMeta(path, f.metadata);
  const sums = meta.checksums;
  for (const [name, t] of tensors) {
    if (!f.has(name)) throw new CheckpointError(path, `missing tensor "${name}"`);
    const shape = f.info(name).shape;
    if (shape.join() !== t.shape.join()) {
      throw new CheckpointError(path, `tensor "${name}" has shape [${shape}], the run has [${t.shape}]`);
    }
  }
  // Two passes, so that host memory stays at one tensor: verify every checksum, then upload.
  if (sums) {
    for (const [name] of tensors) {
      if (Object.hasOwn(sums, name) && sums[name] !== tensorChecksum(await f.readF32(name))) {
        throw new CheckpointError(
          path,
          `tensor "${name}" does not match its checksum (the file is damaged): cannot resume from it`,
        );
      }
    }
  }
  for (const [name, t] of tensors) t.write(await f.readF32(name));
  return { step: meta.step, optimizerStep: meta.optimizerStep, rng: meta.rng, extra: meta.extra };
}

/** Reads and validates the `__metadata__` of a checkpoint (a {@linkcode CheckpointError} naming `path` if bad). */
function parseMeta(
  path: string,
  m: Record<string, string>,
): CheckpointMeta & { checksums: Record<string, unknown> | null } {
  const num = (k: string) => {
    const v = Number(m[k]);
    if (!Number.isInteger(v) || v < 0) throw new CheckpointError(path, `metadata "${k}" is not a step count`);
    return v;
  };
  const json = (k: string, fallback: string): unknown => {
    try {
      return JSON.parse(m[k] ?? fallback);
    } catch (e) {
      throw new CheckpointError(path, `bad metadata "${k}": ${(e as Error).message}`);
    }
  };
  const isMap = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  const rng = json("rng", "null");
  try {
    Rng.fromState(rng as number[]);
  } catch (e) {
    throw new CheckpointError(path, `bad metadata "rng": ${(e as Error).message}`);
  }
  const extra = json("extra", "{}");
  if (!isMap(extra)) throw new CheckpointError(path, `bad metadata "extra": not an object`);
  const checksums = m.checksums === undefined ? null : json("checksums", "{}");
  if (checksums !== null && !isMap(checksums)) {
    throw new CheckpointError(path, `bad metadata "checksums": not an object`);
  }
  return {
    step: num("step"),
    optimizerStep: num("optimizer_step"),
    rng: rng as number[],
    extra,
    checksums,
  };
}
