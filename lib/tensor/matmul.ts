/**
 * Matrix products on the GPU (`kernels/matmul.wgsl`): the general strided, batched product, and the
 * two forms models use: `matmul` (batched, optional transposes) and `linear` (y = x Wᵀ + b, with W in
 * the checkpoint's (out, in) layout, possibly split into row blocks when it exceeds one binding).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, Params } from "../gpu/commands.ts";
import type { KernelSpec } from "../gpu/pipelines.ts";
import { dummyBuffer } from "../gpu/buffers.ts";
import { copyElements } from "./copy.ts";
import { sumColumns } from "./reduce.ts";
import { fmtShape, numel, Tensor } from "./tensor.ts";

/**
 * How one operand is addressed (in elements). Entry (r, c) of batch b = b0·nb1 + b1 sits at
 * `offset + b0·s0 + ⌊b1/div⌋·s1 + r·rowStride + c·colStride`.
 */
export interface Operand {
  /** The tensor holding the operand. */
  t: Tensor;
  /** Element offset of batch 0, entry (0, 0). */
  offset?: number;
  /** Stride of the outer batch index b0. */
  s0?: number;
  /** Stride of the inner batch index b1. */
  s1?: number;
  /** Divisor applied to b1 before `s1` (GQA: query heads per key/value head). */
  div?: number;
  /** Stride between rows. */
  rowStride: number;
  /** Stride between columns. */
  colStride: number;
}

/** Arguments of {@linkcode matmulStrided}. */
export interface StridedMatmul {
  /** Rows of C. */
  M: number;
  /** Columns of C. */
  N: number;
  /** Inner dimension. */
  K: number;
  /** Batch as (nb0, nb1); defaults to (1, 1). */
  batch?: [number, number];
  /** Left operand, (M, K) per batch entry. */
  a: Operand;
  /** Right operand, (K, N) per batch entry. */
  b: Operand;
  /** Output, (M, N) per batch entry (`div` is ignored). */
  c: Operand;
  /** Scale α of the product. */
  alpha?: number;
  /** Bias (N) added to every row. */
  bias?: Tensor;
  /** Add into C instead of overwriting it. */
  accumulate?: boolean;
}

const SPEC = { file: "matmul.wgsl" };
const MATVEC = { file: "matmul.wgsl", entry: "matvec" };
const MATVEC_TEAM = { file: "matmul.wgsl", entry: "matvec_team" };

/** Most rows one workgroup of a team product can take (the kernels' override MR ≤ 8). */
export const TEAM_ROWS = 8;

/**
 * Rows per workgroup of team products by default: all of them, up to TEAM_ROWS, so that each load of a
 * weight serves every row of a verification. `useTeamRows` caps it for benchmarks (1 gives each row its
 * own workgroups, which share the weights only through the L2 cache).
 */
const TEAM_ROWS_DEFAULT = TEAM_ROWS;
let teamRowsMost = TEAM_ROWS_DEFAULT;
/** Sets the most rows per workgroup of team products (1 … TEAM_ROWS, for benchmarks); returns the previous. */
export function useTeamRows(most: number): number {
  if (!Number.isInteger(most) || most < 1 || most > TEAM_ROWS) {
    throw new RangeError(`team rows ${most} is not an integer in 1 … ${TEAM_ROWS}`);
  }
  const prev = teamRowsMost;
  teamRowsMost = most;
  return prev;
}

/** The most rows per workgroup team products take now (TEAM_ROWS by default; see {@linkcode useTeamRows}). */
export function teamRowsSetting(): number {
  return teamRowsMost;
}

/**
 * Lanes per output column of the team products for inner dimension K: a power of two from 16 to 256,
 * the largest that leaves each lane at least `laneValues` values of K (64 by default: K = 2048 takes 32
 * lanes, K = 8192 128). It depends on K alone, so that every product of one K sums in the same order
 * whatever its rows or outputs.
 */
export function teamLanes(K: number): number {
  let t = 16;
  while (t < 256 && 2 * t * teamLaneValues <= K) t *= 2;
  return t;
}
let teamLaneValues = 64;
/** Sets the least values of K per lane that {@linkcode teamLanes} aims at (benchmarks); returns the previous. */
export function setTeamLaneValues(values: number): number {
  if (!Number.isInteger(values) || values < 1) {
    throw new RangeError(`lane values ${values} is not a positive integer`);
  }
  const prev = teamLaneValues;
  teamLaneValues = values;
  return prev;
}

/** The values of K per lane {@linkcode teamLanes} aims at now (64 by default). */
export function teamLaneValuesSetting(): number {
  return teamLaneValues;
}

/**
 * The launch of a team product `op` of M rows, N outputs and inner dimension K: its pipeline (overrides
 * T = {@linkcode teamLanes} and MR = rows per workgroup, the fewest workgroups of at most the set most,
 * balanced, unless `rowsPerGroup` fixes it) and its grid: x over the row groups, y over blocks of 256 / T
 * outputs. Throws a {@linkcode ShapeError} when the outputs need more than 65535 workgroups.
 */
export function teamLaunch(
  op: string,
  spec: KernelSpec,
  M: number,
  N: number,
  K: number,
  rowsPerGroup?: number,
): { spec: KernelSpec; grid: [number, number] } {
  const groups = Math.ceil(M / teamRowsMost);
  const mr = rowsPerGroup ?? Math.ceil(M / groups);
  const t = teamLanes(K);
  const blocks = Math.ceil(N / (256 / t));
  if (blocks > 65535) throw new ShapeError(op, `${N} outputs of ${K} inputs exceed one dispatch`);
  return { spec: { ...spec, constants: { T: t, MR: mr } }, grid: [Math.ceil(M / mr), blocks] };
}

/**
 * A team product's weight bindings (kernels/matmul.wgsl, split_matvec.wgsl, decode_fused.wgsl): f32 weights
 * at their f32 bindings, or, for f16 weights, the spec with the `W_F16` switch set and the weights at their
 * f16 bindings; the other set of bindings gets dummies.
 */
export function teamWeightBindings(
  spec: KernelSpec,
  half: boolean,
  weights: GPUBuffer[],
): { spec: KernelSpec; f32: GPUBuffer[]; f16: GPUBuffer[] } {
  const dummies = weights.map(() => dummyBuffer());
  return half
    ? { spec: { ...spec, constants: { ...spec.constants, W_F16: 1 } }, f32: dummies, f16: weights }
    : { spec, f32: weights, f16: dummies };
}

/** Entry points for products of ≥ {@linkcode BIG_TILES_MIN} tiles of 128×128 (benchmarks compare them). */
export const LARGE_TILE_ENTRIES = ["main128v4", "main128db"] as const;
/** One of {@linkcode LARGE_TILE_ENTRIES}. */
export type LargeTileEntry = typeof LARGE_TILE_ENTRIES[number];
let bigTiles = { file: "matmul.wgsl", entry: "main128v4" as LargeTileEntry };
/** Picks the entry point large products use (for benchmarks comparing kernels); returns the previous one. */
export function useLargeTileEntry(entry: LargeTileEntry): LargeTileEntry {
  const prev = bigTiles.entry;
  bigTiles = { file: "matmul.wgsl", entry };
  return prev;
}
/**
 * Products with at least this many 128×128 tiles use `main128v4` (`main128db` when the operands are not
 * vec4-aligned; 8×8 per invocation, double-buffered); smaller ones keep 64×64 tiles, which fill more of
 * the GPU's multiprocessors. H200, f32 (bench/matmul_entries.ts): at 1024³ (64 tiles) main128v4 takes
 * 0.197 ms against 0.237–0.262 ms for 64×64 tiles; at 4096³ 4.70 ms (29 TFLOP/s) against 12.4–14.1 ms.
 */
const BIG_TILES_MIN = 64;
let bigTilesMin = BIG_TILES_MIN;
/** Sets the least number of 128×128 tiles that takes the large-tile entry (benchmarks); returns the previous. */
export function setLargeTileMin(tiles: number): number {
  const prev = bigTilesMin;
  bigTilesMin = tiles;
  return prev;
}
let smallTilesOnly = false;
/** Forces the 64×64-tile kernel for large products too (for benchmarks comparing the two). */
export function useSmallTilesOnly(on: boolean): void {
  smallTilesOnly = on;
}
/**
 * Products with at most this many rows use the untiled entries (decoding): `matvec_team` when both
 * operands' K axes are contiguous and vec4-aligned (a team of invocations per output), `matvec` otherwise.
 */
export const MATVEC_MAX_ROWS = 8;
/**
 * Rows up to which an x·Wᵀ product past {@linkcode MATVEC_MAX_ROWS} runs as team products on blocks of
 * MATVEC_MAX_ROWS rows instead of the tiled kernel: on the H200 (bench/small_rows.ts, K = 256) the
 * tiled product of 9–128 rows costs at least 44 µs, the blocks 10–31 µs up to 32 rows and as much at 48.
 */
export const MATVEC_BLOCKED_MAX_ROWS = 32;

/**
 * Whether `main128v4` can read both operands as vec4: A with K contiguous, B with K or N contiguous,
 * every offset and row stride a multiple of 4, K (and N for an N-contiguous B) a multiple of 4. With
 * `width` 8: the same for loads of eight elements (kernels/matmul_f16.wgsl `main128k16`).
 */
export function vec4Aligned(args: StridedMatmul, width = 4): boolean {
  const { N, K, a, b } = args;
  const q = (...xs: (number | undefined)[]) => xs.every((x) => (x ?? 0) % width === 0);
  const aOk = a.colStride === 1 && q(a.rowStride, a.offset, a.s0, a.s1, K);
  const bOk = (b.rowStride === 1 && q(b.colStride, K)) || (b.colStride === 1 && q(b.rowStride, N));
  return aOk && bOk && q(b.offset, b.s0, b.s1);
}

/**
 * The uniform block of a strided product (the `Params` struct of `kernels/matmul.wgsl`, which
 * `kernels/matmul_f16.wgsl` shares): sizes, each operand's offset and strides, α and the flags.
 */
export function matmulParams(args: StridedMatmul): Params {
  const { M, N, K, a, b, c } = args;
  const nb1 = (args.batch ?? [1, 1])[1];
  const p = new Params().u32(M, N, K, nb1);
  // Each operand: offset, s0, s1, div, then its (row, column) strides; B's rows run along K.
  for (const op of [a, b]) {
    p.u32(op.offset ?? 0, op.s0 ?? 0, op.s1 ?? 0, op.div ?? 1, op.rowStride, op.colStride);
  }
  p.u32(c.offset ?? 0, c.s0 ?? 0, c.s1 ?? 0, c.rowStride, c.colStride);
  return p.f32v(args.alpha ?? 1).u32((args.bias ? 1 : 0) | (args.accumulate ? 2 : 0));
}

/** Least workgroups a product should have; fewer output tiles than this split K (see {@linkcode splitK}). */
const SPLIT_K_WORKGROUPS = 264;
let splitKOn = true;
/** Turns split-K off or on (for benchmarks and tests comparing the two); returns the previous setting. */
export function useSplitK(on: boolean): boolean {
  const prev = splitKOn;
  splitKOn = on;
  return prev;
}

/**
 * Split-K for products with a small output and a long inner dimension — a weight gradient
 * dW = dYᵀ X (out, in) summed over thousands of tokens: its few 64×64 output tiles would each loop
 * over all of K on a handful of the GPU's multiprocessors. K is cut into S ≥ 2 chunks, each chunk's
 * partial product goes into slab s of a (S, M·N) buffer (one batched dispatch, plus one for a shorter
 * last chunk), and the slabs are summed (sumColumns) and copied into C:
 *
 *   C = α Σ_s A[:, K_s] B[K_s, :]
 *
 * Taken only for unbatched products without bias or accumulation into a contiguous C (M, N) whose
 * kernel would run fewer than SPLIT_K_WORKGROUPS / 2 workgroups (tiles), with K ≥ 1024 and
 * K ≥ 2·max(M, N). Returns whether it recorded the product.
 */
function splitK(args: StridedMatmul): boolean {
  const { M, N, K, a, b, c } = args;
  const [nb0, nb1] = args.batch ?? [1, 1];
  if (!splitKOn || nb0 * nb1 !== 1 || args.bias || args.accumulate || M <= MATVEC_MAX_ROWS) return false;
  // long-K products only (K ≥ 2·max(M, N)): square products keep their kernels (and benchmarks)
  if (c.rowStride !== N || c.colStride !== 1 || K < 1024 || K < 2 * Math.max(M, N)) return false;
  // workgroups of the kernel the product would take: 128×128 tiles when there are enough of them
  const big = Math.ceil(M / 128) * Math.ceil(N / 128);
  const tiles = big >= bigTilesMin && !smallTilesOnly ? big : Math.ceil(M / 64) * Math.ceil(N / 64);
  if (tiles >= SPLIT_K_WORKGROUPS / 2) return false;
  const want = Math.min(Math.ceil(SPLIT_K_WORKGROUPS / tiles), Math.floor(K / 256));
  if (want < 2) return false;
  const chunk = Math.ceil(K / want / 64) * 64;
  const full = Math.floor(K / chunk);
  const rem = K - full * chunk;
  const S = full + (rem > 0 ? 1 : 0);
  using slabs = Tensor.empty([S, M * N]);
  const part = (k: number, batch: number, kOffset: number, slab: number) =>
    matmulStrided({
      M,
      N,
      K: k,
      batch: [1, batch],
      a: { ...a, s0: 0, s1: k * a.colStride, div: 1, offset: (a.offset ?? 0) + kOffset * a.colStride },
      b: { ...b, s0: 0, s1: k * b.rowStride, div: 1, offset: (b.offset ?? 0) + kOffset * b.rowStride },
      c: { t: slabs, offset: slab * M * N, s1: M * N, rowStride: N, colStride: 1 },
      alpha: args.alpha,
    });
  // The chunks' own products must not split again.
  const prev = splitKOn;
  splitKOn = false;
  try {
    part(chunk, full, 0, 0);
    if (rem > 0) part(rem, 1, full * chunk, full);
  } finally {
    splitKOn = prev;
  }
  using sum = sumColumns(slabs);
  copyElements(sum, 0, c.t, c.offset ?? 0, M * N);
  return true;
}

/** Records C = α·A·B (+ bias) (+ C) for arbitrary strides; the one primitive behind every product here. */
export function matmulStrided(args: StridedMatmul): void {
  const { M, N, a, b, c } = args;
  const [nb0, nb1] = args.batch ?? [1, 1];
  if (M === 0 || N === 0 || nb0 * nb1 === 0) return;
  if (nb0 * nb1 > 65535) throw new ShapeError("matmul", `batch ${nb0 * nb1} exceeds 65535`);
  if (M > MATVEC_MAX_ROWS && M <= MATVEC_BLOCKED_MAX_ROWS && b.rowStride === 1 && vec4Aligned(args)) {
    // A few more rows than a team product takes (decoding a batch of sequences, a short prompt): team
    // products on blocks of MATVEC_MAX_ROWS rows cost less than the tiled kernel's floor. Every block,
    // the last included, runs MATVEC_MAX_ROWS rows per workgroup: one pipeline per K
    // ({@linkcode blockedTeamKernels}, compiled when a model loads).
    for (let m0 = 0; m0 < M; m0 += MATVEC_MAX_ROWS) {
      teamProduct({
        ...args,
        M: Math.min(MATVEC_MAX_ROWS, M - m0),
        a: { ...a, offset: (a.offset ?? 0) + m0 * a.rowStride },
        c: { ...c, offset: (c.offset ?? 0) + m0 * c.rowStride },
      }, MATVEC_MAX_ROWS);
    }
    return;
  }
  if (splitK(args)) return;
  const p = matmulParams(args);
  const buffers = [a.t.buffer, b.t.buffer, c.t.buffer, args.bias?.buffer ?? dummyBuffer()];
  const teamShaped = M <= MATVEC_MAX_ROWS && b.rowStride === 1 && vec4Aligned(args);
  if (b.t.dtype === "f16" || a.t.dtype === "f16") {
    // f16 weights are for decoding products only (an f16 draft LM head): x·Wᵀ of at most
    // MATVEC_MAX_ROWS rows, vec4-aligned, x in f32 (`linear` cuts longer inputs into row blocks).
    if (a.t.dtype !== "f32" || !teamShaped) {
      throw new ShapeError(
        "matmul",
        `an f16 weight takes x·Wᵀ of ≤ ${MATVEC_MAX_ROWS} f32 rows with K a multiple of 4 (got M = ${M}, ` +
          `K = ${args.K}, x ${a.t.dtype}); use matmulF16 for f16 operands on both sides`,
      );
    }
  }
  if (teamShaped) {
    teamProduct(args);
  } else if (M <= MATVEC_MAX_ROWS) {
    dispatch(MATVEC, buffers, p, [Math.ceil(N / 64), M, nb0 * nb1]);
  } else if (Math.ceil(M / 128) * Math.ceil(N / 128) * nb0 * nb1 >= bigTilesMin && !smallTilesOnly) {
    const spec = bigTiles.entry === "main128v4" && !vec4Aligned(args)
      ? { file: "matmul.wgsl", entry: "main128db" }
      : bigTiles;
    dispatch(spec, buffers, p, [Math.ceil(N / 128), Math.ceil(M / 128), nb0 * nb1]);
  } else {
    dispatch(SPEC, buffers, p, [Math.ceil(N / 64), Math.ceil(M / 64), nb0 * nb1]);
  }
}

/**
 * x·Wᵀ as a team product (`matvec_team`): both operands' K axes contiguous and vec4-aligned, at most
 * TEAM_ROWS rows; a team of invocations per output reads W's row together, each load serving all rows of
 * the workgroup. `rowsPerGroup` fixes the rows per workgroup (rows past M are computed and not stored).
 */
function teamProduct(args: StridedMatmul, rowsPerGroup?: number): void {
  const [nb0, nb1] = args.batch ?? [1, 1];
  const team = teamLaunch("matmul", MATVEC_TEAM, args.M, args.N, args.K, rowsPerGroup);
  const w = teamWeightBindings(team.spec, args.b.t.dtype === "f16", [args.b.t.buffer]);
  const bias = args.bias?.buffer ?? dummyBuffer();
  dispatch(w.spec, [args.a.t.buffer, ...w.f32, args.c.t.buffer, bias, ...w.f16], matmulParams(args), [
    ...team.grid,
    nb0 * nb1,
  ]);
}

/**
 * The team-product pipelines of {@linkcode MATVEC_BLOCKED_MAX_ROWS}-row products (MATVEC_MAX_ROWS rows per
 * workgroup) for the inner dimensions Ks, for a model load to compile up front.
 */
export function blockedTeamKernels(Ks: number[]): KernelSpec[] {
  const seen = new Map<string, KernelSpec>();
  for (const K of Ks) {
    const { spec } = teamLaunch("matmul", MATVEC_TEAM, MATVEC_MAX_ROWS, 1, K, MATVEC_MAX_ROWS);
    seen.set(JSON.stringify(spec), spec);
  }
  return [...seen.values()];
}

/** Options of {@linkcode matmul}. */
export interface MatmulOptions {
  /** Use Aᵀ (A stored as (…, K, M)). */
  transA?: boolean;
  /** Use Bᵀ (B stored as (…, N, K)). */
  transB?: boolean;
  /** Scale of the product. */
  alpha?: number;
}

/**
 * Batched product of the last two dimensions: (…, M, K) × (…, K, N) → (…, M, N). Batch dimensions
 * must match, or B may have none (shared across the batch).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const { args, outShape } = batchedProduct("matmul", a, b, opts);
  const out = Tensor.empty(outShape);
  matmulStrided({ ...args, c: { t: out, s1: args.M * args.N, rowStride: args.N, colStride: 1 } });
  return out;
}

/**
 * The strided form of a batched product (…, M, K) × (…, K, N) (B with no batch dimensions is shared),
 * without its output: the arguments for `matmulStrided` (or the f16 product) and the output shape.
 * Throws a {@linkcode ShapeError} naming `op` when the shapes do not multiply.
 */
export function batchedProduct(
  op: string,
  a: Tensor,
  b: Tensor,
  opts: MatmulOptions = {},
): { args: Omit<StridedMatmul, "c">; outShape: number[] } {
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new ShapeError(op, `needs matrices, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  }
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [M, K] = opts.transA ? [ac, ar] : [ar, ac];
  const [K2, N] = opts.transB ? [bc, br] : [br, bc];
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const shared = batchB.length === 0;
  if (K !== K2 || (!shared && batchA.join() !== batchB.join())) {
    throw new ShapeError(
      op,
      `shapes ${fmtShape(a.shape)}${opts.transA ? "ᵀ" : ""} and ${fmtShape(b.shape)}${
        opts.transB ? "ᵀ" : ""
      } do not multiply`,
    );
  }
  return {
    args: {
      M,
      N,
      K,
      batch: [1, numel(batchA)],
      a: { t: a, s1: ar * ac, rowStride: opts.transA ? 1 : ac, colStride: opts.transA ? ac : 1 },
      b: { t: b, s1: shared ? 0 : br * bc, rowStride: opts.transB ? 1 : bc, colStride: opts.transB ? bc : 1 },
      alpha: opts.alpha,
    },
    outShape: [...batchA, M, N],
  };
}

/**
 * A linear layer's weight in the checkpoint layout (out, in), possibly split into row blocks so that
 * each block fits one storage binding (a Llama-3 embedding is > 2 GiB in f32).
 */
export interface Weight {
  /** Row blocks, in order; their row counts sum to `shape[0]`. */
  parts: Tensor[];
  /** (out, in). */
  shape: [number, number];
}

/** y = x Wᵀ (+ b): (…, in) → (…, out). Writes each row block of W into its columns of y. */
export function linear(x: Tensor, w: Weight, bias?: Tensor): Tensor {
  const [outF, inF] = w.shape;
  if (x.shape[x.shape.length - 1] !== inF) {
    throw new ShapeError("linear", `input ${fmtShape(x.shape)} does not fit weight ${fmtShape(w.shape)}`);
  }
  if (bias && bias.size !== outF) {
    throw new ShapeError("linear", `bias has ${bias.size} values, expected ${outF}`);
  }
  if (w.parts.length > 1 && bias) {
    throw new ShapeError("linear", "a bias with a split weight is not supported");
  }
  const M = x.size / inF;
  const y = Tensor.empty([...x.shape.slice(0, -1), outF]);
  let col = 0;
  for (const part of w.parts) {
    const rows = part.shape[0];
    // An f16 weight takes the decoding product only: longer inputs go through it MATVEC_MAX_ROWS rows
    // at a time.
    const block = part.dtype === "f16" ? MATVEC_MAX_ROWS : M;
    for (let m0 = 0; m0 < M; m0 += block) {
      matmulStrided({
        M: Math.min(block, M - m0),
        N: rows,
        K: inF,
        a: { t: x, offset: m0 * inF, rowStride: inF, colStride: 1 },
        b: { t: part, rowStride: 1, colStride: inF },
        c: { t: y, offset: m0 * outF + col, rowStride: outF, colStride: 1 },
        bias,
      });
    }
    col += rows;
  }
  return y;
}
