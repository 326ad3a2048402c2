/**
 * Differentiable glue of the Mamba-2 mixer (`lib/ssm/mamba2_glue.ts`): the column split of
 * zxbcdt = in_proj(u), the SSD inputs built from xBC and dt, and the D skip. Outside a recording
 * tape each runs its forward kernel only; under one it records a backward that runs the kernels of
 * `kernels/mamba2_glue_bwd.wgsl` (checked against float64 references in tests/ssm/mamba2_glue_test.ts).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import {
  addSkip as addSkipRaw,
  addSkipBackward,
  type Mamba2GlueDims,
  scatterColumns,
  sliceColumns,
  ssdInputs as ssdInputsRaw,
  ssdInputsBackward,
  type SsdInputTensors,
} from "../ssm/mamba2_glue.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";
import { recordMulti } from "./multi_output.ts";
import { needsGrad, record } from "./tape.ts";

/**
 * Splits src (…, cols) into consecutive column blocks of `widths` (summing to cols), e.g.
 * zxbcdt → z | xBC | dt_raw. Under a tape the blocks' gradients are written into one d src
 * (each column once, zeros for a block that got no gradient).
 */
export function splitColumns(src: Tensor, widths: number[]): Tensor[] {
  const cols = src.shape[src.shape.length - 1];
  if (widths.reduce((a, b) => a + b, 0) !== cols || widths.some((w) => !(w > 0))) {
    throw new ShapeError("splitColumns", `widths ${widths.join(" + ")} do not cover ${fmtShape(src.shape)}`);
  }
  const starts = widths.map((_, k) => widths.slice(0, k).reduce((a, b) => a + b, 0));
  const parts = widths.map((w, k) => sliceColumns(src, starts[k], w));
  return recordMulti([src], parts, [], (grads) => {
    const d = Tensor.empty(src.shape);
    grads.forEach((g, k) => scatterColumns(g ?? null, d, starts[k], widths[k]));
    return [d];
  });
}

/** dt_raw (…, H), dt_bias (H) and A_log (H) of {@linkcode ssdInputs}. */
export interface DtParams {
  dtRaw: Tensor;
  dtBias: Tensor;
  aLog: Tensor;
  /** First dt_raw column of wider rows (only when dt_raw itself needs no gradient). */
  dtColumn?: number;
}

/**
 * X = x_g · dt, A = −exp(A_log) · dt, B_h = B_g, C_h = C_h from xBC (…, 2·H_kv·P + H·N) and
 * dt = softplus(dt_raw + dt_bias). One backward for all four outputs: d xBC, d dt_raw, d dt_bias,
 * d A_log.
 */
export function ssdInputs(xbc: Tensor, dt: DtParams, dims: Mamba2GlueDims): SsdInputTensors {
  const inputs = [xbc, dt.dtRaw, dt.dtBias, dt.aLog];
  if (dt.dtColumn !== undefined && needsGrad(dt.dtRaw)) {
    throw new ShapeError(
      "ssdInputs",
      "a dt_raw that requires grad must be its own (…, H) tensor (no dtColumn)",
    );
  }
  const out = ssdInputsRaw(xbc, dt, dims);
  const [X, A, B, C] = recordMulti(
    inputs,
    [out.X, out.A, out.B, out.C],
    inputs,
    ([gX, gA, gB, gC], [xs, raw, bias, aLog]) => {
      const d = ssdInputsBackward(xs, { dtRaw: raw, dtColumn: dt.dtColumn, dtBias: bias, aLog }, {
        X: gX,
        A: gA,
        B: gB,
        C: gC,
      }, dims);
      return [d.xbc, d.dtRaw, d.dtBias, d.aLog];
    },
  );
  return { X, A, B, C };
}

/** y = Y + D · x_g (the D skip of the mixer); in place into Y outside a tape. */
export function addSkip(Y: Tensor, xbc: Tensor, D: Tensor, dims: Mamba2GlueDims): Tensor {
  if (!needsGrad(Y, xbc, D)) return addSkipRaw(Y, xbc, D, dims, true).retain();
  const y = addSkipRaw(Y, xbc, D, dims);
  return record([Y, xbc, D], y, [xbc, D], (g, [xs, Ds]) => {
    const d = addSkipBackward(xs, Ds, g, dims);
    return [g.retain(), d.xbc, d.D];
  });
}
