/**
 * Training checkpoints: model tensors under their checkpoint names, optimizer moments as
 * `optimizer.<name>.exp_avg[_sq]`, and the step, optimizer step and RNG state in `__metadata__`, all
 * in one safetensors file (the weights' own layout). The file is written to a temporary name and
 * renamed over the previous one, so a crash mid-write leaves the last good checkpoint in place.
 *
 * @module
 */
import { CheckpointError } from "../errors.ts";
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

/** Writes `tensors` (name → GPU tensor) and `meta` to `dir/checkpoint.safetensors` atomically. */
export async function saveCheckpoint(
  dir: string,
  tensors: [string, Tensor][],
  meta: CheckpointMeta,
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const values = await readTensors(tensors.map(([, t]) => t));
  const out: Record<string, HostTensor> = {};
  tensors.forEach(([name, t], i) =>
    out[name] = { dtype: "F32", shape: [...t.shape], data: values[i] as Float32Array }
  );
  const path = `${dir}/${CHECKPOINT_FILE}`;
  await writeSafetensors(path, out, {
    format: "pt",
    producer: "mamba-distill-lab",
    step: String(meta.step),
    optimizer_step: String(meta.optimizerStep),
    rng: JSON.stringify(meta.rng),
    extra: JSON.stringify(meta.extra ?? {}),
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
 * same shape) and returns its metadata.
 */
export async function loadCheckpoint(dir: string, tensors: [string, Tensor][]): Promise<CheckpointMeta> {
  const path = `${dir}/${CHECKPOINT_FILE}`;
  using f = await SafetensorsFile.open(path);
  for (const [name, t] of tensors) {
    if (!f.has(name)) throw new CheckpointError(path, `missing tensor "${name}"`);
    const shape = f.info(name).shape;
    if (shape.join() !== t.shape.join()) {
      throw new CheckpointError(path, `tensor "${name}" has shape [${shape}], the run has [${t.shape}]`);
    }
    t.write(await f.readF32(name));
  }
  const m = f.metadata;
  const num = (k: string) => {
    const v = Number(m[k]);
    if (!Number.isInteger(v) || v < 0) throw new CheckpointError(path, `metadata "${k}" is not a step count`);
    return v;
  };
  try {
    return {
      step: num("step"),
      optimizerStep: num("optimizer_step"),
      rng: JSON.parse(m.rng ?? "null"),
      extra: JSON.parse(m.extra ?? "{}"),
    };
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(path, `bad metadata: ${(e as Error).message}`);
  }
}
