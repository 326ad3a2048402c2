/**
 * RMSNorm over the last dimension (`kernels/rmsnorm.wgsl`): y = x · rsqrt(mean(x²) + ε) · w.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, Params } from "../gpu/commands.ts";
import { fmtShape, Tensor } from "./tensor.ts";
import { rowGrid } from "./launch.ts";

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
