/**
 * The element-wise steps of a Mamba-2 layer around its conv, SSD and gated norm, on the GPU
 * (`kernels/mamba2_glue.wgsl`, backward in `kernels/mamba2_glue_bwd.wgsl`), as MambaInLlama's
 * `mamba2/hybrid_mamba_layer.py` computes them (method.md §3.2). The float64 twins are in
 * `mamba2_glue_ref.ts`; the tape rules in `lib/autograd/mamba2_ops.ts`.
 *
 *   split:       zxbcdt (R, cols) → column blocks, e.g. z | xBC | dt_raw
 *   ssd inputs:  dt = softplus(dt_raw + dt_bias);  X = x_g · dt;  A = −exp(A_log) · dt;  B_h = B_g;  C_h = C_h
 *   skip:        y = Y + D · x_g
 *
 * Head h reads kv head g = ⌊h·H_kv/H⌋ (x and B are repeated after the conv, as GQA pairs heads).
 * Shapes: xBC (R, 2·H_kv·P + H·N) = x | B | C (R = B·L rows, any leading dims); dt_raw (R, H), or
 * the H columns from `dtColumn` of wider rows; dt_bias, A_log, D (H); X, Y (R, H, P); A (R, H);
 * B_h, C_h (R, H, N). Head dim P must equal the state size N (MambaInLlama's layout).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dummyBuffer } from "../gpu/buffers.ts";
import { type Binding, dispatch, groupsFor, Params } from "../gpu/commands.ts";
import { sumColumns } from "../tensor/reduce.ts";
import { expectShape, fmtShape, reshape, Tensor } from "../tensor/tensor.ts";

/** Head counts and widths of the glue: H heads of dim P, H_kv kv heads, state size N (= P). */
export interface Mamba2GlueDims {
  H: number;
  Hkv: number;
  P: number;
  N: number;
}

/** The SSD inputs built from xBC and dt: X (R, H, P), A (R, H), B and C (R, H, N). */
export interface SsdInputTensors {
  X: Tensor;
  A: Tensor;
  B: Tensor;
  C: Tensor;
}

/** Where dt_raw sits: its own (R, H) tensor (default), or columns [dtColumn, dtColumn + H) of wider rows. */
export interface DtSource {
  /** First dt_raw column in each row of the dt tensor (default 0, the tensor being (R, H)). */
  dtColumn?: number;
}

/** Gradients of {@linkcode ssdInputs}: xBC (R, C_xbc), dt_raw (R, H), dt_bias and A_log (H). */
export interface SsdInputGrads {
  xbc: Tensor;
  dtRaw: Tensor;
  dtBias: Tensor;
  aLog: Tensor;
}

/** Gradients of {@linkcode addSkip}: xBC (R, C_xbc) (zero outside the x columns) and D (H). */
export interface SkipGrads {
  xbc: Tensor;
  D: Tensor;
}

/** Width of an xBC row: x and B (H_kv·P each) then C (H·N). */
export function xbcWidth(d: Mamba2GlueDims): number {
  return 2 * d.Hkv * d.P + d.H * d.N;
}

function launch(file: string, entry: string, buffers: (Binding | null)[], n: number, words: number[]): void {
  const [gx, gy] = groupsFor(n, 256);
  dispatch({ file, entry }, buffers, new Params().u32(n, gx * 256, ...words), [gx, gy]);
}

const FWD = "mamba2_glue.wgsl";
const BWD = "mamba2_glue_bwd.wgsl";

/** Rows R and the checks shared by the glue ops; returns the Params words after (n, row). */
function plan(op: string, xbc: Tensor, dims: Mamba2GlueDims, dt?: Tensor, dtColumn = 0) {
  const { H, Hkv, P, N } = dims;
  if (P !== N) throw new ShapeError(op, `head dim ${P} ≠ state size ${N} is not supported`);
  if (!(Hkv >= 1 && Hkv <= H)) throw new ShapeError(op, `kv heads ${Hkv} must be in 1…${H}`);
  const C = xbcWidth(dims);
  if (xbc.shape[xbc.shape.length - 1] !== C) {
    throw new ShapeError(op, `expected xBC (…, ${C}) = (…, 2·H_kv·P + H·N), got ${fmtShape(xbc.shape)}`);
  }
  const R = xbc.size / C;
  let cols = H;
  if (dt) {
    cols = dt.shape[dt.shape.length - 1];
    if (dt.size / cols !== R || dtColumn < 0 || dtColumn + H > cols) {
      throw new ShapeError(
        op,
        `expected dt_raw rows (${R}, ≥ ${dtColumn + H}) with H = ${H} columns from ${dtColumn}, got ${
          fmtShape(dt.shape)
        }`,
      );
    }
  }
  return { R, C, words: [R, H, Hkv, P, N, cols, dtColumn, 0] };
}

function expectHeads(op: string, name: string, t: Tensor, H: number): void {
  expectShape(op, `${name} (H)`, t, [H]);
}

/** Columns [col0, col0 + n) of a row-major (…, cols) tensor, as a new (…, n) tensor. */
export function sliceColumns(src: Tensor, col0: number, n: number): Tensor {
  const cols = src.shape[src.shape.length - 1];
  if (!(n > 0 && col0 >= 0 && col0 + n <= cols)) {
    throw new ShapeError("sliceColumns", `columns [${col0}, ${col0 + n}) outside ${fmtShape(src.shape)}`);
  }
  const R = src.size / cols;
  const dst = Tensor.empty([...src.shape.slice(0, -1), n]);
  launch(FWD, "slice_cols", [src.buffer, dst.buffer], R * n, [R, 0, 0, 0, 0, cols, col0, n]);
  return dst;
}

/**
 * Writes g (…, n) into columns [col0, col0 + n) of `into` (…, cols) — the backward of
 * {@linkcode sliceColumns} — or zeros there when g is null (a slice that got no gradient).
 */
export function scatterColumns(g: Tensor | null, into: Tensor, col0: number, n: number): void {
  const cols = into.shape[into.shape.length - 1];
  const R = into.size / cols;
  if (!(n > 0 && col0 >= 0 && col0 + n <= cols)) {
    throw new ShapeError("scatterColumns", `columns [${col0}, ${col0 + n}) outside ${fmtShape(into.shape)}`);
  }
  if (g && g.size !== R * n) {
    throw new ShapeError("scatterColumns", `expected (${R}, ${n}) values, got ${fmtShape(g.shape)}`);
  }
  const words = [R, 0, 0, 0, 0, cols, col0, n, g ? 1 : 0];
  const d = dummyBuffer();
  launch(BWD, "scatter_cols", [g ? g.buffer : d, null, null, null, null, null, into.buffer], R * n, words);
}

/**
 * The SSD inputs of a Mamba-2 layer from xBC = silu(conv(x | B | C)) and dt_raw:
 * X = x_g · dt, A = −exp(A_log) · dt, B_h = B_g, C_h = C_h, with dt = softplus(dt_raw + dt_bias).
 * Leading dims of xBC (e.g. (B, L)) carry over to the outputs.
 */
export function ssdInputs(
  xbc: Tensor,
  dt: { dtRaw: Tensor; dtBias: Tensor; aLog: Tensor } & DtSource,
  dims: Mamba2GlueDims,
): SsdInputTensors {
  const op = "ssdInputs";
  const { words } = plan(op, xbc, dims, dt.dtRaw, dt.dtColumn);
  expectHeads(op, "dt_bias", dt.dtBias, dims.H);
  expectHeads(op, "A_log", dt.aLog, dims.H);
  const { H, P, N } = dims;
  const lead = xbc.shape.slice(0, -1);
  const R = words[0];
  const X = Tensor.empty([...lead, H, P]);
  const A = Tensor.empty([...lead, H]);
  const B = Tensor.empty([...lead, H, N]);
  const C = Tensor.empty([...lead, H, N]);
  launch(
    FWD,
    "ssd_inputs",
    [xbc.buffer, X.buffer, dt.dtRaw.buffer, dt.dtBias.buffer, dt.aLog.buffer, A.buffer, B.buffer, C.buffer],
    R * H * Math.max(P, N),
    words,
  );
  return { X, A, B, C };
}

/**
 * Gradients of {@linkcode ssdInputs} given dX, dA, dB, dC (each may be absent: zero). d dt_bias and
 * d A_log are column sums of per-row terms (deterministic, no atomics).
 */
export function ssdInputsBackward(
  xbc: Tensor,
  dt: { dtRaw: Tensor; dtBias: Tensor; aLog: Tensor } & DtSource,
  grads: Partial<SsdInputTensors>,
  dims: Mamba2GlueDims,
): SsdInputGrads {
  const op = "ssdInputsBackward";
  const { R, words } = plan(op, xbc, dims, dt.dtRaw, dt.dtColumn);
  const { H, P, N } = dims;
  const want = { X: [R, H, P], A: [R, H], B: [R, H, N], C: [R, H, N] } as const;
  const owned: Tensor[] = [];
  const g = (k: keyof SsdInputTensors) => {
    const t = grads[k];
    if (!t) {
      const z = Tensor.zeros(want[k]);
      owned.push(z);
      return z;
    }
    if (t.size !== want[k].reduce((a, b) => a * b, 1)) {
      throw new ShapeError(op, `expected d${k} ${fmtShape(want[k])}, got ${fmtShape(t.shape)}`);
    }
    return t;
  };
  const [dX, dA, dB, dC] = [g("X"), g("A"), g("B"), g("C")];
  const dxbc = Tensor.empty(xbc.shape);
  const dtRawGrad = Tensor.empty([...xbc.shape.slice(0, -1), H]);
  using aTerm = Tensor.empty([R, H]);
  const raw = dt.dtRaw.buffer;
  launch(
    BWD,
    "ssd_inputs_dxbc",
    [dX.buffer, dB.buffer, dC.buffer, raw, dt.dtBias.buffer, null, dxbc.buffer],
    dxbc.size,
    words,
  );
  launch(
    BWD,
    "ssd_inputs_ddt",
    [dX.buffer, dA.buffer, xbc.buffer, raw, dt.dtBias.buffer, dt.aLog.buffer, dtRawGrad.buffer, aTerm.buffer],
    R * H,
    words,
  );
  for (const t of owned) t.dispose();
  const dtBias = reshape(sumColumns(dtRawGrad.view([R, H])), [H]);
  const aLog = reshape(sumColumns(aTerm), [H]);
  return { xbc: dxbc, dtRaw: dtRawGrad, dtBias, aLog };
}

/**
 * The skip connection y = Y + D · x_g for Y (…, H, P) and xBC (…, C_xbc): in place into Y when
 * `inPlace` (forward only), else into a new tensor.
 */
export function addSkip(Y: Tensor, xbc: Tensor, D: Tensor, dims: Mamba2GlueDims, inPlace = false): Tensor {
  const op = "addSkip";
  const { R, words } = plan(op, xbc, dims);
  expectHeads(op, "D", D, dims.H);
  const { H, P } = dims;
  if (Y.size !== R * H * P) {
    throw new ShapeError(op, `expected Y (${R}, ${H}, ${P}) values, got ${fmtShape(Y.shape)}`);
  }
  if (inPlace) {
    launch(FWD, "add_skip", [xbc.buffer, Y.buffer, null, D.buffer], R * H * P, words);
    return Y;
  }
  const y = Tensor.empty(Y.shape);
  launch(FWD, "add_skip_out", [xbc.buffer, y.buffer, Y.buffer, D.buffer], R * H * P, words);
  return y;
}

/** Gradients of {@linkcode addSkip} (dY itself passes through to Y unchanged). */
export function addSkipBackward(xbc: Tensor, D: Tensor, dY: Tensor, dims: Mamba2GlueDims): SkipGrads {
  const op = "addSkipBackward";
  const { R, words } = plan(op, xbc, dims);
  expectHeads(op, "D", D, dims.H);
  const { H, P } = dims;
  if (dY.size !== R * H * P) {
    throw new ShapeError(op, `expected dY (${R}, ${H}, ${P}) values, got ${fmtShape(dY.shape)}`);
  }
  const dxbc = Tensor.empty(xbc.shape);
  launch(BWD, "skip_dxbc", [dY.buffer, D.buffer, null, null, null, null, dxbc.buffer], dxbc.size, words);
  using dTerm = Tensor.empty([R, H]);
  launch(BWD, "skip_dd", [dY.buffer, null, xbc.buffer, null, null, null, dTerm.buffer], R * H, words);
  return { xbc: dxbc, D: reshape(sumColumns(dTerm), [H]) };
}
