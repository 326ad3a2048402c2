/**
 * A Hugging Face checkpoint directory as `save_pretrained` writes it: `config.json` plus
 * `model.safetensors` or sharded `model-0000k-of-0000n.safetensors` with `model.safetensors.index.json`.
 * Only safetensors are loaded: pickle files (`*.bin`, `*.pt`) could run code when unpickled.
 *
 * @example
 * ```ts
 * using ckpt = await Checkpoint.open("data/brown-llama-6m");
 * ckpt.require("model.norm.weight", [ckpt.config.hiddenSize]);
 * const w = await ckpt.readF32("model.norm.weight");
 * ```
 *
 * @module
 */

import { isAbsolute, join, relative, sep as SEP } from "node:path";
import { CheckpointError } from "../errors.ts";
import { type LlamaConfig, parseLlamaConfig, readJsonFile } from "./config.ts";
import type { HostTensor } from "./dtype.ts";
import { fmtShape, type TensorInfo } from "./safetensors_header.ts";
import { SafetensorsFile } from "./safetensors.ts";

/** Where a checkpoint tensor lies: its {@linkcode TensorInfo} plus the shard file's path. */
export type CheckpointTensorInfo = TensorInfo & { file: string };

const PICKLE = /\.(bin|pt|pth|ckpt|pkl)$/;

const CONVERT_HINT = "only safetensors checkpoints are loaded (unpickling .bin/.pt files can run arbitrary " +
  'code); convert it with: python -c "from transformers import AutoModelForCausalLM as M; ' +
  "M.from_pretrained('DIR').save_pretrained('OUT', safe_serialization=True)\"";

/** Whether something is at `path`; when it cannot be stat'ed (a symlink loop), the reader reports it. */
async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    return !(e instanceof Deno.errors.NotFound);
  }
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

/** Resolves a shard name from the index, refusing anything that leaves the directory `realDir`. */
async function resolveShard(dir: string, realDir: string, indexPath: string, shard: string): Promise<string> {
  const leaves = () =>
    new CheckpointError(
      indexPath,
      `shard path ${JSON.stringify(shard)} leaves the checkpoint directory ${dir}`,
    );
  if (
    shard === "" || isAbsolute(shard) || /^[A-Za-z]:/.test(shard) || shard.includes("\\") ||
    shard.split("/").includes("..")
  ) throw leaves();
  if (shard.includes("\0")) {
    throw new CheckpointError(indexPath, `shard path ${JSON.stringify(shard)} contains a NUL character`);
  }
  const path = join(dir, shard);
  let real: string;
  try {
    real = await Deno.realPath(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new CheckpointError(indexPath, `shard ${JSON.stringify(shard)} listed in the index is missing`);
    }
    // a symlink loop, a file used as a directory, a name too long: the index is unusable, not a bug
    throw new CheckpointError(
      indexPath,
      `shard ${JSON.stringify(shard)} listed in the index cannot be resolved: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const rel = relative(realDir, real);
  if (rel === ".." || rel.startsWith(`..${SEP}`) || isAbsolute(rel)) throw leaves();
  return path;
}

/** Reads the shard index: tensor name → shard file name. */
async function readWeightMap(indexPath: string): Promise<Map<string, string>> {
  const json = await readJsonFile(indexPath, 64 * 1024 * 1024);
  const wm = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== "object" || wm === null || Array.isArray(wm)) {
    throw new CheckpointError(indexPath, `index has no "weight_map" object`);
  }
  const map = new Map<string, string>();
  for (const [name, file] of Object.entries(wm)) {
    if (typeof file !== "string") {
      throw new CheckpointError(indexPath, `weight_map entry ${JSON.stringify(name)} is not a file name`);
    }
    map.set(name, file);
  }
  return map;
}

/** Reads all shard headers and records which file holds which tensor. */
async function scanShards(
  dir: string,
  indexPath: string,
  weightMap: Map<string, string>,
): Promise<Map<string, CheckpointTensorInfo>> {
  const realDir = await Deno.realPath(dir);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of weightMap) {
    const list = byShard.get(shard) ?? [];
    list.push(name);
    byShard.set(shard, list);
  }
  const tensors = new Map<string, CheckpointTensorInfo>();
  for (const [shard, names] of byShard) {
    const path = await resolveShard(dir, realDir, indexPath, shard);
    using f = await SafetensorsFile.open(path);
    for (const name of names) {
      if (!f.has(name)) {
        throw new CheckpointError(
          indexPath,
          `index maps tensor ${JSON.stringify(name)} to ${shard}, which lacks it`,
        );
      }
      tensors.set(name, Object.freeze({ ...f.info(name), file: path }));
    }
  }
  return tensors;
}

/** An open checkpoint: validated config and tensor locations; shard files are opened on first read. */
export class Checkpoint implements Disposable {
  /** The checkpoint directory as given. */
  readonly dir: string;
  /** The parsed `config.json`. */
  readonly config: LlamaConfig;
  #tensors: Map<string, CheckpointTensorInfo>;
  #open = new Map<string, Promise<SafetensorsFile>>();
  #files: SafetensorsFile[] = [];
  #closed = false;

  private constructor(dir: string, config: LlamaConfig, tensors: Map<string, CheckpointTensorInfo>) {
    this.dir = dir;
    this.config = config;
    this.#tensors = tensors;
  }

  /**
   * Opens a checkpoint directory: parses `config.json`, then reads the headers of `model.safetensors`
   * or of every shard named by `model.safetensors.index.json`. Throws {@linkcode CheckpointError} for a
   * missing directory/config/weights, a pickle-only checkpoint, or a shard path leaving the directory;
   * {@linkcode ConfigError} / {@linkcode SafetensorsError} for malformed files.
   */
  static async open(dir: string): Promise<Checkpoint> {
    let stat: Deno.FileInfo;
    try {
      stat = await Deno.stat(dir);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new CheckpointError(dir, "checkpoint directory does not exist", { cause: e });
      }
      throw e;
    }
    if (!stat.isDirectory) {
      throw new CheckpointError(dir, "not a directory (expected a checkpoint directory)");
    }
    const configPath = join(dir, "config.json");
    if (!await exists(configPath)) {
      throw new CheckpointError(configPath, "missing config.json: not a Hugging Face checkpoint directory");
    }
    const config = parseLlamaConfig(await readJsonFile(configPath), configPath);

    const single = join(dir, "model.safetensors");
    const indexPath = join(dir, "model.safetensors.index.json");
    let tensors: Map<string, CheckpointTensorInfo>;
    if (await exists(single)) {
      using f = await SafetensorsFile.open(single);
      tensors = new Map(f.names().map((n) => [n, Object.freeze({ ...f.info(n), file: single })]));
    } else if (await exists(indexPath)) {
      tensors = await scanShards(dir, indexPath, await readWeightMap(indexPath));
    } else {
      const files = await listFiles(dir);
      const pickles = files.filter((n) => PICKLE.test(n));
      if (pickles.length > 0) {
        throw new CheckpointError(dir, `has only pickle weights (${pickles.join(", ")}): ${CONVERT_HINT}`);
      }
      throw new CheckpointError(dir, "no model.safetensors or model.safetensors.index.json");
    }
    return new Checkpoint(dir, config, tensors);
  }

  /** All tensor names, sorted. */
  names(): string[] {
    return [...this.#tensors.keys()].sort();
  }

  /** Whether the checkpoint has a tensor called `name`. */
  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  /** Dtype, shape, byte range and shard file of `name`; throws {@linkcode CheckpointError} if absent. */
  info(name: string): CheckpointTensorInfo {
    const info = this.#tensors.get(name);
    if (!info) throw new CheckpointError(this.dir, `missing tensor ${JSON.stringify(name)}`);
    return info;
  }

  /**
   * Checks that `name` exists and, when `shape` is given, has exactly that shape; returns its info.
   * Throws {@linkcode CheckpointError} "missing tensor X" or "tensor X has shape [..], expected [..]".
   */
  require(name: string, shape?: number[]): CheckpointTensorInfo {
    const info = this.info(name);
    if (shape && (shape.length !== info.shape.length || shape.some((d, i) => d !== info.shape[i]))) {
      throw new CheckpointError(
        info.file,
        `tensor ${JSON.stringify(name)} has shape ${fmtShape(info.shape)}, expected ${fmtShape(shape)}`,
      );
    }
    return info;
  }

  #shard(path: string): Promise<SafetensorsFile> {
    if (this.#closed) throw new CheckpointError(this.dir, "checkpoint is closed");
    let p = this.#open.get(path);
    if (!p) {
      p = SafetensorsFile.open(path);
      this.#open.set(path, p);
      p.then(
        (f) => this.#closed ? f.close() : this.#files.push(f),
        () => this.#open.delete(path),
      );
    }
    return p;
  }

  /** Reads `name` in its stored dtype (BF16/F16 as raw Uint16Array bits). */
  async read(name: string): Promise<HostTensor> {
    const info = this.info(name);
    return await (await this.#shard(info.file)).read(name);
  }

  /** Reads `name` widened to float32 (bf16 → `u16 << 16`). */
  async readF32(name: string): Promise<Float32Array> {
    const info = this.info(name);
    return await (await this.#shard(info.file)).readF32(name);
  }

  /** Closes every shard opened so far. Safe to call twice. */
  close(): void {
    this.#closed = true;
    for (const f of this.#files) f.close();
    this.#files = [];
    this.#open.clear();
  }

  /** Same as {@linkcode Checkpoint.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
