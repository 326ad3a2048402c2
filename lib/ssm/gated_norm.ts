/**
 * The gated RMSNorm of Mamba-2 layers on the GPU (`kernels/gated_norm.wgsl`), forward and backward:
 * `rms_norm_ref` of state-spaces/mamba `layernorm_gated.py` with `norm_before_gate=False`
 * (method.md §2.2). The plain-loop twin is in `gated_norm_ref.ts`.
 *
 *   g = x · silu(z);   y = g · rsqrt(mean_{group} g² + ε) · w     per group of `groupSize` channels
 *
 * Shapes: x, z, y (…, D) with D = G · groupSize; weight (D).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, groupsFor, Params } from "../gpu/commands.ts";
import { sumColumns } from "../tensor/reduce.ts";
import { expectShape, fmtShape, reshape, Tensor } from "../tensor/tensor.ts";

/** Options of the gated RMSNorm: ε (inside the square root) and the group size (default D). */
export interface GatedRmsNormOptions {
  /** ε added to mean(g²) inside the square root. */
  eps: number;
  /** Channels per normalised group (D / ngroups); must divide D. Default D (one group). */
  groupSize?: number;
}

/** Gradients of {@linkcode gatedRmsNorm}: x and z (…, D), weight (D). */
export interface GatedRmsNormGrads {
  x: Tensor;
  z: Tensor;
  weight: Tensor;
}

/** Checks the shapes; returns the Params words and the workgroup grid. */
function plan(op: string, x: Tensor, z: Tensor, weight: Tensor, o: GatedRmsNormOptions) {
  const D = x.shape[x.shape.length - 1];
  if (!(D > 0)) throw new ShapeError(op, `expected x (…, D), got ${fmtShape(x.shape)}`);
  expectShape(op, "z (…, D) like x", z, x.shape);
  expectShape(op, "weight (D)", weight, [D]);
  const gs = o.groupSize ?? D;
  if (!Number.isInteger(gs) || gs <= 0 || D % gs !== 0) {
    throw new ShapeError(op, `groupSize ${gs} does not divide D = ${D}`);
  }
  const units = x.size / gs; // (row, group) pairs
  const S = Math.min(256, 2 ** Math.ceil(Math.log2(gs))); // lanes per unit
  const [gx, gy] = groupsFor(units, 256 / S);
  const params = new Params().u32(units, D, gs, S, gx).f32v(o.eps);
  return { D, params, groups: [gx, gy] as [number, number] };
}

/**
 * Gated RMSNorm of x (…, D) gated by z (…, D) with weight (D): g = x · silu(z), normalised per group
 * of `groupSize` consecutive channels, then scaled by the weight (f32, ε inside the square root).
 */
export function gatedRmsNorm(x: Tensor, z: Tensor, weight: Tensor, opts: GatedRmsNormOptions): Tensor {
  const { params, groups } = plan("gatedRmsNorm", x, z, weight, opts);
  const y = Tensor.empty(x.shape);
  dispatch(
    { file: "gated_norm.wgsl" },
    [x.buffer, z.buffer, weight.buffer, y.buffer],
    params,
    groups,
  );
  return y;
}

/**
 * Gradients of {@linkcode gatedRmsNorm} for the upstream gradient dy (…, D): x, z, and the weight's
 * (summed over all rows on the GPU, block by block, no atomics).
 */
export function gatedRmsNormBackward(
  x: Tensor,
  z: Tensor,
  weight: Tensor,
  dy: Tensor,
  opts: GatedRmsNormOptions,
): GatedRmsNormGrads {
  const op = "gatedRmsNormBackward";
  const { D, params, groups } = plan(op, x, z, weight, opts);
  expectShape(op, "dy (…, D) like x", dy, x.shape);
  const dx = Tensor.empty(x.shape);
  const dz = Tensor.empty(x.shape);
  using dwRows = Tensor.empty([x.size / D, D]);
  dispatch(
    { file: "gated_norm.wgsl", entry: "backward" },
    [x.buffer, z.buffer, weight.buffer, null, dy.buffer, dx.buffer, dz.buffer, dwRows.buffer],
    params,
    groups,
  );
  return { x: dx, z: dz, weight: reshape(sumColumns(dwRows), [D]) };
}
