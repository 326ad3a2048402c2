/**
 * Kernels fused for one-token decoding (`kernels/decode_fused.wgsl`): at batch 1 a decoding step's time
 * is its number of dispatches, so the MLP's two products and the SwiGLU run as one.
 *
 *   swigluMatvec:  y = silu(x Wgᵀ) ⊙ (x Wuᵀ)      x (…, K), Wg and Wu (N, K) → y (…, N)
 *
 * The float64 twin is `swigluRef` of the two products (`ops_ref.ts`).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, Params } from "../gpu/commands.ts";
import type { Weight } from "./matmul.ts";
import { fmtShape, Tensor } from "./tensor.ts";

/** Rows up to which {@linkcode swigluMatvec} is used by decoding (one invocation per output). */
export const SWIGLU_MATVEC_MAX_ROWS = 16;

/** Whether {@linkcode swigluMatvec} takes these weights: one f32 block each, the same shape. */
export function swigluMatvecFits(gate: Weight, up: Weight): boolean {
  return gate.parts.length === 1 && up.parts.length === 1 && gate.parts[0].dtype === "f32" &&
    up.parts[0].dtype === "f32" && gate.shape[0] === up.shape[0] && gate.shape[1] === up.shape[1];
}

/** y = silu(x Wgᵀ) ⊙ (x Wuᵀ) for x (…, K) and weights (N, K) of one f32 block each; returns (…, N). */
export function swigluMatvec(x: Tensor, gate: Weight, up: Weight): Tensor {
  const op = "swigluMatvec";
  const [N, K] = gate.shape;
  if (!swigluMatvecFits(gate, up)) {
    throw new ShapeError(
      op,
      `gate ${fmtShape(gate.shape)} and up ${fmtShape(up.shape)} must be single f32 blocks of one shape`,
    );
  }
  if (x.shape[x.shape.length - 1] !== K) {
    throw new ShapeError(op, `input ${fmtShape(x.shape)} does not fit weights ${fmtShape(gate.shape)}`);
  }
  const M = x.size / K;
  if (M > 65535) throw new ShapeError(op, `${M} rows exceed one dispatch`);
  const y = Tensor.empty([...x.shape.slice(0, -1), N]);
  dispatch(
    { file: "decode_fused.wgsl", entry: "swiglu_matvec" },
    [x.buffer, gate.parts[0].buffer, up.parts[0].buffer, y.buffer],
    new Params().u32(M, N, K),
    [Math.ceil(N / 64), M],
  );
  return y;
}
