/**
 * RMSNorm over the last dimension (`kernels/rmsnorm.wgsl`): y = x · rsqrt(mean(x²) + ε) · w.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, Params } from "../gpu/commands.ts";
import { fmtShape, reshape, Tensor } from "./tensor.ts";
import { rowGrid } from "./launch.ts";
import { sumColumns } from "./reduce.ts";

/** RMSNorm of x (…, D) with weight w (D), as LlamaRMSNorm computes it in f32. */
export function rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const D = x.shape[x.shape.length - 1];
  if (w.size !== D) {
    throw new ShapeError("rmsNorm", `weight ${fmtShape(w.shape)} does not fit x ${fmtShape(x.shape)}`);
  }
  const R = x.size / D;
  const y = Tensor.empty(x.shape);
  const { groups, yrow } = rowGrid(R);
  dispatch(
    { file: "rmsnorm.wgsl" },
    [x.buffer, w.buffer, y.buffer],
    new Params().u32(R, D).f32v(eps).u32(yrow),
    groups,
  );
  return y;
}

/** Gradients of {@linkcode rmsNorm} given dy: dx (…, D) and dw (D) (summed over rows). */
export function rmsNormBackward(x: Tensor, w: Tensor, dy: Tensor, eps: number): { dx: Tensor; dw: Tensor } {
  const D = x.shape[x.shape.length - 1];
  const R = x.size / D;
  const dx = Tensor.empty(x.shape);
  using dwRows = Tensor.empty([R, D]);
  const { groups, yrow } = rowGrid(R);
  dispatch(
    { file: "rmsnorm.wgsl", entry: "backward" },
    [x.buffer, w.buffer, dx.buffer, dy.buffer, dwRows.buffer],
    new Params().u32(R, D).f32v(eps).u32(yrow),
    groups,
  );
  return { dx, dw: reshape(sumColumns(dwRows), [D]) };
}
