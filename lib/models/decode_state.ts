/**
 * A model's decoding state across its layers, with rounds for speculative decoding (method.md §3.9):
 * {@linkcode DecodeState.begin} marks a checkpoint, then any number of forward calls consume tokens,
 * then {@linkcode DecodeState.commit} keeps the first `kept` of them. Attention layers truncate their
 * KV cache; Mamba layers replay the kept steps from their checkpoint (`Mamba2Cache`, `Mamba1Cache`).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { KVCache } from "./kv_cache.ts";
import type { LayerCache } from "./llama.ts";

/** Per-layer caches plus the round bookkeeping. Pass `layers` as `forward(ids, { cache })`. */
export class DecodeState implements Disposable {
  #length0 = 0;
  #open = false;

  /** Wraps the caches of `model.createCache(…)` (and owns them). */
  constructor(readonly layers: LayerCache[]) {}

  /** Tokens consumed so far. */
  get length(): number {
    return this.layers[0]?.length ?? 0;
  }

  /** Opens a round of at most `steps` tokens (the current state is its checkpoint). */
  begin(steps: number): void {
    if (this.#open) throw new ShapeError("decodeState", "a round is already open (commit it first)");
    this.#length0 = this.length;
    for (const l of this.layers) if (!(l instanceof KVCache)) l.begin(steps);
    this.#open = true;
  }

  /** Tokens consumed since {@linkcode begin}. */
  get roundSteps(): number {
    return this.#open ? this.length - this.#length0 : 0;
  }

  /** Keeps the first `kept` tokens of the round and forgets the rest. */
  commit(kept: number): void {
    if (!this.#open) throw new ShapeError("decodeState", "commit without an open round (call begin first)");
    if (!Number.isInteger(kept) || kept < 0 || kept > this.roundSteps) {
      throw new ShapeError("decodeState", `cannot keep ${kept} of the round's ${this.roundSteps} tokens`);
    }
    for (const l of this.layers) {
      if (l instanceof KVCache) l.truncate(this.#length0 + kept);
      else l.commit(kept);
    }
    this.#open = false;
  }

  /** Frees every layer's cache. */
  [Symbol.dispose](): void {
    for (const l of this.layers) l[Symbol.dispose]();
  }
}
