/**
 * A Mamba-2 mixer's decoding of L ≤ a few tokens in two dispatches and no copies
 * (`kernels/mamba2_step.wgsl`), for speculative rounds where a step's time is its dispatches and copies:
 *
 *   mamba2ConvSteps: the depthwise causal conv + SiLU over L tokens from the conv state, the state
 *                    advanced in place (`causalConv1dStep` L times), the inputs written to the round's cache
 *   mamba2SsdStep:   the SSD inputs from xBC and dt (`ssdInputs`), the recurrence S ← exp(A) S + X Bᵀ,
 *                    y = S C (`ssdStateUpdate` L times) and the D skip (`addSkip`), X, A, B written to the
 *                    round's cache
 *
 * The same float operations in the same order as those kernels; the float64 twins are `causalConv1dRef`,
 * `ssdInputsRef`, the recurrence and `addSkipRef`.
 *
 * Shapes: conv x (B, L, C), state (B, C, W − 1); SSD xBC (B·L, 2·H_kv·P + H·N) after the conv, dt_raw
 * (B·L, cols) with the H dt columns from `dtColumn`, state (B, H, P, N) updated in place, y (B·L, H, P).
 * Round caches (B, T, ·), the L tokens at slots slot … slot + L − 1.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, groupsFor, Params } from "../gpu/commands.ts";
import { expectShape, fmtShape, Tensor } from "../tensor/tensor.ts";
import type { Mamba2GlueDims } from "./mamba2_glue.ts";

/** Where the tokens' inputs go in a round's cache (B, T, ·): xs (conv inputs), X, A, Bs (SSD inputs). */
export interface StepRecord {
  /** Conv inputs (B, T, C). */
  xs: Tensor;
  /** (B, T, H, P). */
  X: Tensor;
  /** (B, T, H). */
  A: Tensor;
  /** (B, T, H, N). */
  Bs: Tensor;
  /** The first token's step index (slot + L ≤ T). */
  slot: number;
}

const FILE = "mamba2_step.wgsl";

/** Scratch buffers for record bindings that are not written (rec = 0). */
function scratch(n: number): Tensor[] {
  return Array.from({ length: n }, () => Tensor.empty([4]));
}

/**
 * The conv + SiLU of x (B, L, C) from `state` (B, C, W − 1) (advanced in place), weight (C, W) or
 * (C, 1, W), bias (C); returns (B, L, C). `rec` receives the inputs at its slots.
 */
export function mamba2ConvSteps(
  state: Tensor,
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  rec?: StepRecord,
): Tensor {
  const op = "mamba2ConvSteps";
  if (x.shape.length !== 3) throw new ShapeError(op, `expected x (B, L, C), got ${fmtShape(x.shape)}`);
  const [B, L, C] = x.shape;
  const W = weight.size / C;
  if (!Number.isInteger(W) || W < 1 || W > 9) {
    throw new ShapeError(op, `weight ${fmtShape(weight.shape)} is not (C, W ≤ 9) for C = ${C}`);
  }
  expectShape(op, "state (B, C, W − 1)", state, [B, C, W - 1]);
  expectShape(op, "bias (C)", bias, [C]);
  let T = 1;
  if (rec) {
    T = rec.xs.shape[1];
    expectShape(op, "xs (B, T, C)", rec.xs, [B, T, C]);
    checkSlot(op, rec.slot, L, T);
  }
  const y = Tensor.empty([B, L, C]);
  const rows = B * C;
  const [gx, gy] = groupsFor(rows, 256);
  const s = rec ? [] : scratch(1);
  try {
    dispatch(
      { file: FILE, entry: "conv" },
      [
        ...Array<null>(10).fill(null),
        state.buffer,
        x.buffer,
        weight.buffer,
        bias.buffer,
        y.buffer,
        (rec?.xs ?? s[0]).buffer,
      ],
      new Params().u32(rows, gx * 256, 0, 0, 0, 0, 0, 0, T, rec?.slot ?? 0, rec ? 1 : 0, L, C, W),
      [gx, gy],
    );
  } finally {
    for (const t of s) t.dispose();
  }
  return y;
}

function checkSlot(op: string, slot: number, L: number, T: number): void {
  if (!Number.isInteger(slot) || slot < 0 || slot + L > T) {
    throw new ShapeError(op, `steps ${slot} … ${slot + L - 1} outside the round's ${T} steps`);
  }
}

/** The tokens' y (B·L, H, P); `state` (B, H, P, N) advances in place by L tokens; `rec` receives X, A, B. */
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
  if (state.shape.length !== 4) {
    throw new ShapeError(op, `expected state (B, H, P, N), got ${fmtShape(state.shape)}`);
  }
  const Bt = state.shape[0];
  const L = R / Bt;
  if (!Number.isInteger(L)) throw new ShapeError(op, `${R} token rows are not a multiple of the batch ${Bt}`);
  expectShape(op, "state (B, H, P, N)", state, [Bt, H, P, N]);
  let T = 1;
  if (rec) {
    T = rec.X.shape[1];
    expectShape(op, "X (B, T, H, P)", rec.X, [Bt, T, H, P]);
    expectShape(op, "A (B, T, H)", rec.A, [Bt, T, H]);
    expectShape(op, "Bs (B, T, H, N)", rec.Bs, [Bt, T, H, N]);
    checkSlot(op, rec.slot, L, T);
  }
  const y = Tensor.empty([R, H, P]);
  const rows = Bt * H * P;
  // A team of `lanes` invocations per state row (one per entry) when N ≤ 256, else one per row.
  const lanes = N <= 256 ? 2 ** Math.ceil(Math.log2(N)) : 0;
  const [gx, gy] = lanes ? groupsFor(Math.ceil(rows / (256 / lanes)), 1) : groupsFor(rows, 256);
  // Without a round the record bindings get small scratch buffers (never written: rec = 0).
  using s1 = rec ? null : Tensor.empty([4]);
  using s2 = rec ? null : Tensor.empty([4]);
  using s3 = rec ? null : Tensor.empty([4]);
  dispatch(
    { file: FILE, entry: lanes ? "step" : "step_rows" },
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
    new Params().u32(
      ...[rows, lanes ? gx : gx * 256, H, Hkv, P, N, cols, dt.dtColumn, T, rec?.slot ?? 0, rec ? 1 : 0, L],
      ...[0, 0, lanes],
    ),
    [gx, gy],
  );
  return y;
}
