/**
 * A Mamba-2 mixer's one-token SSD step in one dispatch (`kernels/mamba2_step.wgsl`): the SSD inputs from
 * xBC and dt (`ssdInputs`), the state update (`ssdStateUpdate`) and the D skip (`addSkip`), and inside a
 * speculative round the step's X, A, B written into the round's cache (what `Mamba2Cache.record` copies).
 * The same float operations in the same order as those three kernels; the float64 twins are
 * `ssdInputsRef`, the recurrence S ← exp(A) S + X Bᵀ, y = S C, and `addSkipRef`.
 *
 * Shapes: xBC (R, 2·H_kv·P + H·N) after the conv; dt_raw (R, cols) with the H dt columns from
 * `dtColumn`; state (R, H, P, N) updated in place; returns y (R, H, P). Round buffers (R, T, ·).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, groupsFor, Params } from "../gpu/commands.ts";
import { expectShape, fmtShape, Tensor } from "../tensor/tensor.ts";
import type { Mamba2GlueDims } from "./mamba2_glue.ts";

/** Where a step's SSD inputs go in a round's cache: X (R, T, H, P), A (R, T, H), Bs (R, T, H, N). */
export interface StepRecord {
  /** (R, T, H, P). */
  X: Tensor;
  /** (R, T, H). */
  A: Tensor;
  /** (R, T, H, N). */
  Bs: Tensor;
  /** The step's index t < T. */
  slot: number;
}

/** The step's y (R, H, P); `state` (R, H, P, N) advances in place; `rec` receives X, A, B. */
export function mamba2SsdStep(
  xbc: Tensor,
  dt: { dtRaw: Tensor; dtColumn: number; dtBias: Tensor; aLog: Tensor },
  D: Tensor,
  state: Tensor,
  dims: Mamba2GlueDims,
  rec?: StepRecord,
): Tensor {
  const op = "mamba2SsdStep";
  const { H, Hkv, P, N } = dims;
  const C = 2 * Hkv * P + H * N;
  if (xbc.shape[xbc.shape.length - 1] !== C) {
    throw new ShapeError(op, `expected xBC (…, ${C}), got ${fmtShape(xbc.shape)}`);
  }
  const R = xbc.size / C;
  const cols = dt.dtRaw.shape[dt.dtRaw.shape.length - 1];
  if (dt.dtRaw.size !== R * cols || dt.dtColumn < 0 || dt.dtColumn + H > cols) {
    throw new ShapeError(op, `dt_raw ${fmtShape(dt.dtRaw.shape)} has no ${H} columns from ${dt.dtColumn}`);
  }
  for (const [name, t] of [["dt_bias", dt.dtBias], ["A_log", dt.aLog], ["D", D]] as const) {
    expectShape(op, `${name} (H)`, t, [H]);
  }
  expectShape(op, "state (R, H, P, N)", state, [R, H, P, N]);
  let T = 1;
  if (rec) {
    T = rec.X.shape[1];
    expectShape(op, "X (R, T, H, P)", rec.X, [R, T, H, P]);
    expectShape(op, "A (R, T, H)", rec.A, [R, T, H]);
    expectShape(op, "Bs (R, T, H, N)", rec.Bs, [R, T, H, N]);
    if (!Number.isInteger(rec.slot) || rec.slot < 0 || rec.slot >= T) {
      throw new ShapeError(op, `slot ${rec.slot} outside the round's ${T} steps`);
    }
  }
  const y = Tensor.empty([R, H, P]);
  const rows = R * H * P;
  const [gx, gy] = groupsFor(rows, 256);
  // Without a round the record bindings get small scratch buffers (never written: rec = 0).
  using s1 = rec ? null : Tensor.empty([4]);
  using s2 = rec ? null : Tensor.empty([4]);
  using s3 = rec ? null : Tensor.empty([4]);
  dispatch(
    { file: "mamba2_step.wgsl", entry: "step" },
    [
      xbc.buffer,
      dt.dtRaw.buffer,
      dt.dtBias.buffer,
      dt.aLog.buffer,
      D.buffer,
      state.buffer,
      y.buffer,
      (rec?.X ?? s1!).buffer,
      (rec?.A ?? s2!).buffer,
      (rec?.Bs ?? s3!).buffer,
    ],
    new Params().u32(rows, gx * 256, H, Hkv, P, N, cols, dt.dtColumn, T, rec?.slot ?? 0, rec ? 1 : 0),
    [gx, gy],
  );
  return y;
}
