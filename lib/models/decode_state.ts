/**
 * A model's decoding state across its layers, with rounds for speculative decoding (method.md §3.9):
 * {@linkcode DecodeState.begin} marks a checkpoint, then any number of forward calls consume tokens,
 * then {@linkcode DecodeState.commit} keeps the first `kept` of them. Attention layers truncate their
 * KV cache; Mamba layers replay the kept steps from their checkpoint (`Mamba2Cache`, `Mamba1Cache`).
 *
 * In a round loop that never reads back, the kept count is a word of a GPU buffer
 * ({@linkcode DeviceCount}) and the forward calls take the position from the GPU too
 * (`ForwardOptions.position`): attention layers then keep no host length (the position buffer is the
 * length), and Mamba layers replay with masking.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { KVCache } from "./kv_cache.ts";
import type { LayerCache } from "./llama.ts";
import { type DeviceCount, Mamba2Cache } from "./mamba2_decode.ts";

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

  /**
   * Makes the Mamba-2 layers' round buffers hold their current state as the checkpoint (rounds of up to
   * `steps` tokens), so that a round loop whose commits keep the checkpoint up to date
   * (`commit(DeviceCount)`) records no copies at all.
   */
  prime(steps: number): void {
    if (this.#open) throw new ShapeError("decodeState", "prime during an open round");
    for (const l of this.layers) if (l instanceof Mamba2Cache) l.prime(steps);
  }

  /** Tokens consumed since {@linkcode begin}. */
  get roundSteps(): number {
    return this.#open ? this.length - this.#length0 : 0;
  }

  /**
   * Keeps the first `kept` tokens of the round and forgets the rest. With a count on the GPU, attention
   * layers are left alone (their length is the device position, advanced by whoever wrote the count).
   */
  commit(kept: number | DeviceCount): void {
    if (!this.#open) throw new ShapeError("decodeState", "commit without an open round (call begin first)");
    if (typeof kept !== "number") {
      for (const l of this.layers) if (!(l instanceof KVCache)) l.commit(kept);
      this.#open = false;
      return;
    }
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
