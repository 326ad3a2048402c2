/**
 * Rotary position embedding, Hugging Face `rotate_half` convention (`kernels/rope.wgsl`).
 *
 * The inverse frequencies are computed in f32 as transformers computes them
 * (`1 / θ^(2i/P)` with `llama3` or `linear` scaling), then cos/sin of `pos · inv_freq` are tabulated
 * on the host in f64 and uploaded once: large-argument trigonometry never runs on the GPU.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import type { RopeConfig } from "../io/config.ts";
import { Tensor } from "./tensor.ts";
import { dispatch, groupsFor, Params } from "../gpu/commands.ts";

/** Inverse frequencies (P/2) in f32 precision, with the config's scaling applied. */
export function ropeInverseFrequencies(rope: RopeConfig, headDim: number): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    // torch: 1.0 / (base ** (arange(0, dim, 2).float() / dim)) in f32.
    const expo = Math.fround(Math.fround(2 * i) / headDim);
    inv[i] = Math.fround(1 / Math.fround(Math.pow(rope.theta, expo)));
  }
  if (rope.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] = Math.fround(inv[i] / rope.factor);
  } else if (rope.type === "llama3") {
    // transformers `_compute_llama3_parameters`: keep high frequencies, divide low ones by `factor`,
    // interpolate smoothly in between.
    const lowWl = rope.originalMaxPositionEmbeddings / rope.lowFreqFactor;
    const highWl = rope.originalMaxPositionEmbeddings / rope.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i];
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWl) continue;
      if (wavelen > lowWl) {
        inv[i] = Math.fround(f / rope.factor);
      } else {
        const smooth = (rope.originalMaxPositionEmbeddings / wavelen - rope.lowFreqFactor) /
          (rope.highFreqFactor - rope.lowFreqFactor);
        inv[i] = Math.fround((1 - smooth) * (f / rope.factor) + smooth * f);
      }
    }
  }
  return inv;
}

/** Host cos/sin table (positions, 2, P/2): row `pos` holds cos then sin of `fround(pos · inv_freq)`. */
export function ropeTableHost(inv: Float32Array, positions: number): Float32Array {
  const half = inv.length;
  const table = new Float32Array(positions * 2 * half);
  for (let pos = 0; pos < positions; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(Math.fround(pos) * inv[i]);
      table[pos * 2 * half + i] = Math.cos(angle);
      table[pos * 2 * half + half + i] = Math.sin(angle);
    }
  }
  return table;
}

/** A GPU cos/sin table for positions [0, positions). */
export class RopeTable implements Disposable {
  /** (positions, 2, P/2). */
  readonly table: Tensor;
  /** Number of positions covered. */
  readonly positions: number;
  /** Head dimension P. */
  readonly headDim: number;
  /** Builds the table for `positions` positions. */
  constructor(rope: RopeConfig, headDim: number, positions: number) {
    if (headDim % 2 !== 0) throw new ShapeError("rope", `head dim ${headDim} must be even`);
    this.headDim = headDim;
    this.positions = positions;
    this.table = Tensor.from(ropeTableHost(ropeInverseFrequencies(rope, headDim), positions), [
      positions,
      headDim,
    ]);
  }
  /** Frees the table. */
  [Symbol.dispose](): void {
    this.table.dispose();
  }
}

/**
 * Applies RoPE to x (B, L, H, P) for positions pos0 … pos0 + L − 1; returns a new tensor. `inverse`
 * rotates by −θ instead: the transpose of the rotation, i.e. RoPE's backward.
 */
export function rope(x: Tensor, table: RopeTable, pos0 = 0, inverse = false): Tensor {
  if (x.shape.length !== 4 || x.shape[3] !== table.headDim) {
    throw new ShapeError("rope", `expected x (B, L, H, ${table.headDim}), got (${x.shape.join(", ")})`);
  }
  const [, L, H, P] = x.shape;
  if (pos0 + L > table.positions) {
    throw new ShapeError("rope", `positions up to ${pos0 + L} exceed the table's ${table.positions}`);
  }
  const y = Tensor.empty(x.shape);
  const n = x.size / 2;
  const [gx, gy] = groupsFor(n, 256);
  const params = new Params().u32(n, gx * 256, L, H, P, pos0).f32v(inverse ? -1 : 1);
  dispatch({ file: "rope.wgsl" }, [x.buffer, table.table.buffer, y.buffer], params, [gx, gy]);
  return y;
}
