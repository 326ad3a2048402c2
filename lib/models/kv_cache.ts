/**
 * Key/value cache for attention layers: per layer K and V of shape (B, capacity, H_kv, P), of which
 * the first `length` positions are filled. `truncate` rolls back (speculative decoding rejects).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { copyElements } from "../tensor/copy.ts";
import { Tensor } from "../tensor/tensor.ts";

/** One attention layer's cache. */
export class KVCache implements Disposable {
  /** (B, capacity, H_kv, P). */
  readonly k: Tensor;
  /** (B, capacity, H_kv, P). */
  readonly v: Tensor;
  /** Positions filled. */
  length = 0;
  /** Allocates an empty cache. */
  constructor(
    readonly batch: number,
    readonly capacity: number,
    readonly kvHeads: number,
    readonly headDim: number,
  ) {
    this.k = Tensor.empty([batch, capacity, kvHeads, headDim]);
    this.v = Tensor.empty([batch, capacity, kvHeads, headDim]);
  }

  /** Appends new keys and values (B, L, H_kv, P) at positions [length, length + L). */
  append(k: Tensor, v: Tensor): void {
    const [B, L, H, P] = k.shape;
    if (B !== this.batch || H !== this.kvHeads || P !== this.headDim) {
      throw new ShapeError(
        "kvCache",
        `cannot append k (${k.shape.join(", ")}) to a (${this.k.shape.join(", ")}) cache`,
      );
    }
    if (this.length + L > this.capacity) {
      throw new ShapeError("kvCache", `${this.length + L} positions exceed the capacity of ${this.capacity}`);
    }
    const row = H * P;
    for (let b = 0; b < B; b++) {
      copyElements(k, b * L * row, this.k, (b * this.capacity + this.length) * row, L * row);
      copyElements(v, b * L * row, this.v, (b * this.capacity + this.length) * row, L * row);
    }
    this.length += L;
  }

  /** Forgets positions from `length` on. */
  truncate(length: number): void {
    if (length < 0 || length > this.length) {
      throw new ShapeError("kvCache", `cannot truncate ${this.length} to ${length}`);
    }
    this.length = length;
  }

  /** Frees the cache. */
  [Symbol.dispose](): void {
    this.k.dispose();
    this.v.dispose();
  }
}
