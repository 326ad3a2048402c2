/**
 * Next-token sampling on the GPU (`kernels/sample.wgsl`): the chosen token is written into a token
 * history and into the next step's input ids, so a decode loop runs without reading back; the host
 * reads the history every few dozen tokens.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, Params } from "../gpu/commands.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { SamplingOptions } from "./sampling.ts";

/** Sampling settings plus the seed of the counter-based generator. */
export interface GpuSamplingOptions extends SamplingOptions {
  /** Seed (default 0): with the step index it fixes every draw. */
  seed?: number;
}

/** The PCG hash of `kernels/sample.wgsl` (u32 → u32). */
export function pcg(v: number): number {
  const s = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const w = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
  return ((w >>> 22) ^ w) >>> 0;
}

/** The kernel's uniform draw U ∈ [0, 1) for (seed, step, row): its host twin, for tests and replay. */
export function gpuUniform(seed: number, step: number, row = 0): number {
  const h = pcg((pcg((seed ^ pcg(step)) >>> 0) + row) >>> 0);
  return (h >>> 8) / 16777216;
}

/**
 * The uniform words of `kernels/sample.wgsl` for `batch` rows of `vocab` logits, a token history of
 * `capacity` slots and slot (and draw index) `step`.
 */
export function samplerParams(
  batch: number,
  vocab: number,
  capacity: number,
  step: number,
  o: GpuSamplingOptions,
): Params {
  const t = o.temperature ?? 1;
  return new Params().u32(batch, vocab, capacity, step, (o.seed ?? 0) >>> 0, o.topK ?? 0)
    .f32v(t > 0 ? 1 / t : 0, o.topP ?? 1);
}

/** Logits per workgroup of the split argmax (`argmax_part`: 256 invocations × 8 loads each). */
export const ARGMAX_SLICE = 2048;

/** Vocabulary size from which greedy decoding splits its argmax over workgroups by default. */
export const SPLIT_ARGMAX_FROM = 16384;

/**
 * Slices G of the split argmax for a vocabulary of `vocab` (`kernels/sample.wgsl` `argmax_part`), or 0
 * when the argmax stays one workgroup's pass: always when sampling (temperature > 0), and by default
 * below {@linkcode SPLIT_ARGMAX_FROM} entries, where the extra dispatch costs more than the pass it
 * spreads out; `splitArgmax` forces either way.
 */
export function argmaxSlices(vocab: number, o: { temperature?: number; splitArgmax?: boolean }): number {
  // The slices' pairs carry each index as an f32 value, exact below 2^24: larger vocabularies stay one
  // pass unless the split is asked for, which is then an error.
  const fits = vocab < 2 ** 24;
  if ((o.temperature ?? 1) > 0 || !(o.splitArgmax ?? (vocab >= SPLIT_ARGMAX_FROM && fits))) return 0;
  if (!fits) throw new ShapeError("argmax", `a vocabulary of ${vocab} is past the split argmax's 2^24`);
  return Math.min(65535, Math.ceil(vocab / ARGMAX_SLICE));
}

/**
 * The first stage of the split argmax: for each of the `rows` rows of `logits` (rows, V), the maximum
 * of each of its G slices and the first index of it, into `parts` (rows, G, 2). `sample`, `sample_next`
 * and `sample_round` then take `parts` as their logits with the word nparts = G.
 */
export function argmaxParts(logits: Tensor, parts: Tensor, rows: number, vocab: number, G: number): void {
  if (logits.size !== rows * vocab) {
    throw new ShapeError("argmax", `logits (${logits.shape.join(", ")}) are not ${rows} rows of ${vocab}`);
  }
  if (parts.size !== rows * G * 2) {
    throw new ShapeError("argmax", `parts (${parts.shape.join(", ")}) are not (${rows}, ${G}, 2)`);
  }
  dispatch(
    { file: "sample.wgsl", entry: "argmax_part" },
    [logits.buffer, null, null, null, null, parts.buffer],
    samplerParams(rows, vocab, 0, 0, { temperature: 0 }).u32(0, 0, G),
    [G, rows],
  );
}

/** Token history and next-input buffers for `batch` sequences of up to `capacity` new tokens. */
export class GpuSampler implements Disposable {
  /** (B, capacity) i32: the sampled tokens, slot = step. */
  readonly tokens: Tensor;
  /** (B, 1) i32: the last sampled token of each row — feed it to the next forward. */
  readonly next: Tensor;

  /** Allocates the buffers. */
  constructor(readonly batch: number, readonly vocab: number, readonly capacity: number) {
    this.tokens = Tensor.zeros([batch, capacity], "i32");
    this.next = Tensor.zeros([batch, 1], "i32");
  }

  #params(step: number, o: GpuSamplingOptions): Params {
    return samplerParams(this.batch, this.vocab, this.capacity, step, o);
  }

  #check(logits: Tensor): void {
    if (logits.size !== this.batch * this.vocab) {
      throw new ShapeError(
        "sample",
        `logits (${logits.shape.join(", ")}) are not (${this.batch}, ${this.vocab})`,
      );
    }
  }

  /** Samples step `step`'s token of every row from the last logits (B, 1, V) or (B, V). */
  sample(logits: Tensor, step: number, opts: GpuSamplingOptions = {}): void {
    this.#check(logits);
    if (step >= this.capacity) {
      throw new ShapeError("sample", `step ${step} exceeds the capacity ${this.capacity}`);
    }
    dispatch(
      { file: "sample.wgsl", entry: "sample" },
      [logits.buffer, this.tokens.buffer, this.next.buffer],
      this.#params(step, opts),
      [this.batch],
    );
  }

  /**
   * Samples every row's token at the step that a position counter on the GPU gives (`sample_next`):
   * slot and draw index counts[`word`] − `offset`, then the counter advances by one. The commands are
   * the same at every step, so a decode loop records them once and replays them. `logits` are (B, 1, V)
   * or (B, V), or with `nparts` = G the split argmax's (B, G, 2) slice maxima ({@linkcode argmaxParts}).
   */
  sampleNext(
    logits: Tensor,
    counts: Tensor,
    offset: number,
    opts: GpuSamplingOptions & { word?: number; nparts?: number } = {},
  ): void {
    const G = opts.nparts ?? 0;
    if (G === 0) this.#check(logits);
    else if (logits.size !== this.batch * G * 2) {
      throw new ShapeError("sample", `parts (${logits.shape.join(", ")}) are not (${this.batch}, ${G}, 2)`);
    }
    const word = opts.word ?? 0;
    dispatch(
      { file: "sample.wgsl", entry: "sample_next" },
      [logits.buffer, this.tokens.buffer, this.next.buffer, null, counts.buffer],
      this.#params(offset, opts).u32(word, 0, G),
      [this.batch],
    );
    if (this.batch > 1) {
      dispatch(
        { file: "sample.wgsl", entry: "count_up" },
        [null, null, null, null, counts.buffer],
        this.#params(offset, opts).u32(word),
        [1],
      );
    }
  }

  /** The kept, normalised next-token distributions (B, V) under `opts` (caller owns the tensor). */
  distribution(logits: Tensor, opts: GpuSamplingOptions = {}): Tensor {
    this.#check(logits);
    const dist = Tensor.empty([this.batch, this.vocab]);
    dispatch(
      { file: "sample.wgsl", entry: "distribution" },
      [logits.buffer, null, null, dist.buffer],
      this.#params(0, opts),
      [this.batch],
    );
    return dist;
  }

  /** Reads the tokens of steps [from, to) of every row (one GPU sync). */
  async read(from: number, to: number): Promise<Int32Array[]> {
    const all = (await this.tokens.toArray()) as Int32Array;
    return Array.from(
      { length: this.batch },
      (_, b) => all.slice(b * this.capacity + from, b * this.capacity + to),
    );
  }

  /** Frees the buffers. */
  [Symbol.dispose](): void {
    this.tokens.dispose();
    this.next.dispose();
  }
}
