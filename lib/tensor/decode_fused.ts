/**
 * Kernels fused for one-token decoding (`kernels/decode_fused.wgsl`): at batch 1 a decoding step's time
 * is its number of dispatches, so the MLP's two products and the SwiGLU run as one.
 *
 *   swigluMatvec:  y = silu(x Wgᵀ) ⊙ (x Wuᵀ)      x (…, K), Wg and Wu (N, K) → y (…, N)
 *   addRmsNorm:    s = a + b,  y = RMSNorm(s) · w   a, b (…, D), w (D) → s, y (…, D)
 *   splitMatvec:   y_j = x W_j[rows_j]ᵀ, j < 3      (q, k, v; or a Mamba-2 in_proj's z, xBC, dt)
 *
 * The float64 twins are `swigluRef` of the two products and `rmsNormRef` of the sum (`ops_ref.ts`).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, Params } from "../gpu/commands.ts";
import type { KernelSpec } from "../gpu/pipelines.ts";
import { teamLaunch, teamWeightBindings, type Weight } from "./matmul.ts";
import { fmtShape, Tensor } from "./tensor.ts";

/**
 * The pipelines of the team products (`linear`'s matvec_team, {@linkcode splitMatvec},
 * {@linkcode swigluMatvec}) for M rows and each inner dimension in `Ks`: what a model compiles up front
 * for its decoding steps (their overrides depend on M and K).
 */
export function teamKernels(M: number, Ks: number[]): KernelSpec[] {
  const files: KernelSpec[] = [
    { file: "matmul.wgsl", entry: "matvec_team" },
    { file: "split_matvec.wgsl" },
    { file: "decode_fused.wgsl", entry: "swiglu_matvec" },
  ];
  const seen = new Map<string, KernelSpec>();
  for (const K of Ks) {
    for (const f of files) {
      const { spec } = teamLaunch("teamKernels", f, M, 1, K);
      seen.set(JSON.stringify(spec), spec);
    }
  }
  return [...seen.values()];
}

/** Rows up to which {@linkcode swigluMatvec} is used by decoding (a team of invocations per output). */
export const SWIGLU_MATVEC_MAX_ROWS = 16;

/** The storage dtype the decoding products take for these weights (all one block, all f32 or all f16), or null. */
function teamDtype(...ws: Weight[]): "f32" | "f16" | null {
  const d = ws[0].parts[0]?.dtype;
  if (d !== "f32" && d !== "f16") return null;
  return ws.every((w) => w.parts.length === 1 && w.parts[0].dtype === d) ? d : null;
}

/**
 * Whether {@linkcode swigluMatvec} takes these weights: one block each, both f32 or both f16, the same
 * shape, K a multiple of 4 (the kernel reads vec4).
 */
export function swigluMatvecFits(gate: Weight, up: Weight): boolean {
  return teamDtype(gate, up) !== null && gate.shape[0] === up.shape[0] && gate.shape[1] === up.shape[1] &&
    gate.shape[1] % 4 === 0;
}

/** y = silu(x Wgᵀ) ⊙ (x Wuᵀ) for x (…, K) and weights (N, K) of one f32 block each; returns (…, N). */
export function swigluMatvec(x: Tensor, gate: Weight, up: Weight): Tensor {
  const op = "swigluMatvec";
  const [N, K] = gate.shape;
  if (!swigluMatvecFits(gate, up)) {
    throw new ShapeError(
      op,
      `gate ${fmtShape(gate.shape)} and up ${fmtShape(up.shape)} must be single blocks of one shape and ` +
        `dtype (f32 or f16) with a multiple of 4 columns`,
    );
  }
  if (x.shape[x.shape.length - 1] !== K) {
    throw new ShapeError(op, `input ${fmtShape(x.shape)} does not fit weights ${fmtShape(gate.shape)}`);
  }
  const M = x.size / K;
  if (M > 65535) throw new ShapeError(op, `${M} rows exceed one dispatch`);
  const y = Tensor.empty([...x.shape.slice(0, -1), N]);
  const team = teamLaunch(op, { file: "decode_fused.wgsl", entry: "swiglu_matvec" }, M, N, K);
  const w = teamWeightBindings(
    team.spec,
    teamDtype(gate, up) === "f16",
    [gate, up].map((g) => g.parts[0].buffer),
  );
  dispatch(w.spec, [x.buffer, ...w.f32, y.buffer, null, ...w.f16], new Params().u32(M, N, K), team.grid);
  return y;
}

/**
 * s = a + b and y = RMSNorm(s) · w (ε inside the root, as LlamaRMSNorm) for a, b (…, D), w (D), in one
 * dispatch: a residual connection and the RMSNorm after it. Returns [s, y]. With `lastOf` = L (a, b
 * (B, L, D)), y is only the last row of each sequence, (B, 1, D) (a decoder's final norm, lastOnly).
 */
export function addRmsNorm(a: Tensor, b: Tensor, w: Tensor, eps: number, lastOf?: number): [Tensor, Tensor] {
  const op = "addRmsNorm";
  const D = a.shape[a.shape.length - 1];
  if (b.shape.join() !== a.shape.join() || w.size !== D) {
    throw new ShapeError(
      op,
      `a ${fmtShape(a.shape)}, b ${fmtShape(b.shape)} and w ${fmtShape(w.shape)} do not fit`,
    );
  }
  const R = a.size / D;
  if (R > 65535) throw new ShapeError(op, `${R} rows exceed one dispatch`);
  if (lastOf !== undefined && (a.shape.length !== 3 || a.shape[1] !== lastOf)) {
    throw new ShapeError(op, `lastOf ${lastOf} needs a (B, ${lastOf}, D) input, got ${fmtShape(a.shape)}`);
  }
  const s = Tensor.empty(a.shape);
  const y = Tensor.empty(lastOf === undefined ? a.shape : [a.shape[0], 1, D]);
  dispatch(
    { file: "decode_fused.wgsl", entry: "add_rmsnorm" },
    [a.buffer, b.buffer, w.buffer, y.buffer, s.buffer],
    new Params().u32(R, D, 0).f32v(eps).u32(lastOf ?? 1, lastOf === undefined ? 0 : 1),
    [R],
  );
  return [s, y];
}

/** Rows up to which decoding uses {@linkcode splitMatvec} (its values equal linear's matvec up to 8). */
export const SPLIT_MATVEC_MAX_ROWS = 8;

/** Rows [row0, row0 + rows) of a weight (out, in): one block of {@linkcode splitMatvec}. */
export interface RowBlock {
  /** The weight, one f32 block. */
  w: Weight;
  /** First row. */
  row0: number;
  /** Row count. */
  rows: number;
}

/** Whether {@linkcode splitMatvec} takes these weights (one block each, all f32 or all f16, K a multiple of 4). */
export function splitMatvecFits(...ws: Weight[]): boolean {
  return teamDtype(...ws) !== null && ws.every((w) => w.shape[1] % 4 === 0);
}

/**
 * Three row blocks of products in one dispatch (`kernels/split_matvec.wgsl`): y_j = x W_j[rows_j]ᵀ for
 * x (…, K), each y_j (…, rows_j) its own tensor; the same values as `linear` on each block (its matvec
 * for up to 8 rows). Use: q, k, v of an attention layer, or z, xBC, dt of a Mamba-2 in_proj.
 */
export function splitMatvec(x: Tensor, blocks: [RowBlock, RowBlock, RowBlock]): [Tensor, Tensor, Tensor] {
  const op = "splitMatvec";
  const K = x.shape[x.shape.length - 1];
  for (const b of blocks) {
    if (!splitMatvecFits(b.w) || b.w.shape[1] !== K) {
      throw new ShapeError(
        op,
        `weight ${fmtShape(b.w.shape)} is not one f32 or f16 block of ${K} columns (a multiple of 4)`,
      );
    }
    if (!(b.rows > 0 && b.row0 >= 0 && b.row0 + b.rows <= b.w.shape[0])) {
      throw new ShapeError(op, `rows [${b.row0}, ${b.row0 + b.rows}) outside ${fmtShape(b.w.shape)}`);
    }
  }
  const M = x.size / K;
  if (M > 65535) throw new ShapeError(op, `${M} rows exceed one dispatch`);
  const lead = x.shape.slice(0, -1);
  const ys = blocks.map((b) => Tensor.empty([...lead, b.rows])) as [Tensor, Tensor, Tensor];
  const n = blocks.reduce((s, b) => s + b.rows, 0);
  const ws = blocks.map((b) => b.w);
  if (!splitMatvecFits(...ws)) {
    throw new ShapeError(op, "the three weights must share one dtype (f32 or f16)");
  }
  const team = teamLaunch(op, { file: "split_matvec.wgsl" }, M, n, K);
  const w = teamWeightBindings(team.spec, teamDtype(...ws) === "f16", ws.map((x) => x.parts[0].buffer));
  dispatch(
    w.spec,
    [x.buffer, ...w.f32, ...ys.map((y) => y.buffer), ...w.f16],
    new Params().u32(M, K, ...blocks.map((b) => b.rows), ...blocks.map((b) => b.row0)),
    team.grid,
  );
  return ys;
}
