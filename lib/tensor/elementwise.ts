/**
 * Element-wise ops (`kernels/elementwise.wgsl`): residual `add`, `mul`, and the SwiGLU gate.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { fmtShape, Tensor } from "./tensor.ts";
import { launchElements } from "./launch.ts";
import { dispatch, groupsFor, Params } from "../gpu/commands.ts";

function binary(entry: string, a: Tensor, b: Tensor): Tensor {
  if (a.size !== b.size) {
    throw new ShapeError(entry, `shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} differ`);
  }
  const c = Tensor.empty(a.shape);
  launchElements({ file: "elementwise.wgsl", entry }, [a.buffer, b.buffer, c.buffer], a.size);
  return c;
}

/** a + b (same shapes). */
export function add(a: Tensor, b: Tensor): Tensor {
  return binary("add", a, b);
}

/** a · b element-wise (same shapes). */
export function mul(a: Tensor, b: Tensor): Tensor {
  return binary("mul", a, b);
}

/** silu(gate) · up: the gated activation of a Llama MLP. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  return binary("swiglu", gate, up);
}

/** Gradients of `c = silu(a) · b` given dc. */
export function swigluBackward(a: Tensor, b: Tensor, dc: Tensor): { da: Tensor; db: Tensor } {
  const da = Tensor.empty(a.shape);
  const db = Tensor.empty(b.shape);
  launchElements(
    { file: "elementwise.wgsl", entry: "swiglu_backward" },
    [a.buffer, b.buffer, dc.buffer, da.buffer, db.buffer],
    a.size,
  );
  return { da, db };
}

/** α · a. */
export function scale(a: Tensor, alpha: number): Tensor {
  const c = Tensor.empty(a.shape);
  const [gx, gy] = groupsFor(a.size, 256);
  dispatch(
    { file: "elementwise.wgsl", entry: "scale" },
    [a.buffer, null, c.buffer],
    new Params().u32(a.size, gx * 256).f32v(alpha),
    [gx, gy],
  );
  return c;
}
