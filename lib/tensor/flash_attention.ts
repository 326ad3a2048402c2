/**
 * Fused causal GQA attention (`kernels/flash_attention.wgsl`, FlashAttention-2): the forward keeps
 * only the output (B, L, H_q, P) and the per-row logsumexp (B, H_q, L); the backward recomputes the
 * probabilities block by block from q, k, v, out, dOut and the logsumexp. No (L, S) matrix is ever
 * stored, so memory grows with L, not L² (the materialising path of `attention.ts` needs
 * 4·B·H_q·L·S bytes, over one 2 GiB binding at Llama-3.2-1B shapes with B = 8, L = 2048).
 *
 * Semantics equal `attention()`'s: q (B, L, H_q, P), k and v (B, cap, H_kv, P) with S ≤ cap valid
 * positions (`keyLength`), queries at the last L of them, query head h reads kv head ⌊h / (H_q/H_kv)⌋,
 * scale 1/√P by default.
 *
 * Tiles are override constants of the kernels, chosen per head dim to fit the device's workgroup
 * memory (48 KiB on the H200, 32 KiB on lavapipe); see {@linkcode flashTile}.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, groupsFor, Params } from "../gpu/commands.ts";
import { gpu } from "../gpu/device.ts";
import type { KernelSpec } from "../gpu/pipelines.ts";
import { fmtShape, Tensor } from "./tensor.ts";

/** Which kernel a tile is for. */
export type FlashKernel = "forward" | "dq" | "dkv";

/**
 * A workgroup tile: `tx` × `ty` invocations, four rows each; the workgroup owns `4·ty` rows (queries;
 * keys for `dkv`) and walks columns in blocks of `4·tx`.
 */
export interface FlashTile {
  /** Invocations along columns (4·tx columns per block). */
  tx: number;
  /** Invocations along rows (4·ty rows per workgroup). */
  ty: number;
  /**
   * Prefetch the next column block into registers during the current one (default true; only where
   * an invocation stages at most 4 vec4 pairs per block).
   */
  pf?: boolean;
}

/** Tile choices per kernel (a benchmark may try others). */
export interface FlashTiles {
  /** Forward tile. */
  forward?: FlashTile;
  /** dQ kernel tile. */
  dq?: FlashTile;
  /** dK/dV kernel tile. */
  dkv?: FlashTile;
}

/** Candidate tiles, most preferred first (largest blocks that fit the device). */
const CANDIDATES: FlashTile[] = [
  { tx: 8, ty: 16 },
  { tx: 8, ty: 8 },
  { tx: 4, ty: 16 },
  { tx: 16, ty: 8 },
  { tx: 4, ty: 8 },
  { tx: 8, ty: 4 },
  { tx: 4, ty: 4 },
  { tx: 8, ty: 2 },
  { tx: 4, ty: 2 },
];

/** P rounded up to a multiple of 4 (the kernels' vec4 granularity). */
function paddedDim(P: number): number {
  return Math.ceil(P / 4) * 4;
}

/** Bytes of workgroup memory a tile needs for head dim P (the arrays each entry point uses). */
export function flashTileBytes(kind: FlashKernel, P: number, t: FlashTile): number {
  const PS = paddedDim(P) / 4 + 1;
  const BR = 4 * t.ty;
  const BC = 4 * t.tx;
  const TP = t.ty + 1;
  if (kind === "forward") return 16 * (BR * PS + 2 * BC * PS + BC * TP + t.tx * TP);
  if (kind === "dq") return 16 * (2 * BR * PS + 2 * BC * PS + BC * TP);
  return 16 * (2 * BR * PS + 2 * BC * PS + 2 * BC * TP);
}

/** Vec4 pairs one invocation stages per column block. */
function loadsPer(P: number, t: FlashTile): number {
  return Math.ceil((4 * t.tx * (paddedDim(P) / 4)) / (t.tx * t.ty));
}

/** Whether a tile is valid for head dim P on this device (memory, invocations, ≤ 8 chunks). */
export function flashTileFits(kind: FlashKernel, P: number, t: FlashTile): boolean {
  const lim = gpu().device.limits;
  const nc = Math.ceil(paddedDim(P) / 4 / t.tx);
  return t.tx >= 1 && t.ty >= 1 && nc <= 8 &&
    t.tx * t.ty <= lim.maxComputeInvocationsPerWorkgroup && t.ty <= lim.maxComputeWorkgroupSizeY &&
    t.tx <= lim.maxComputeWorkgroupSizeX &&
    flashTileBytes(kind, P, t) <= lim.maxComputeWorkgroupStorageSize;
}

const chosen = new Map<string, FlashTile | null>();

/** The preferred tile for head dim P on this device, or null when none fits (very large P). */
export function flashTile(kind: FlashKernel, P: number): FlashTile | null {
  const key = `${kind}:${P}`;
  if (!chosen.has(key)) chosen.set(key, CANDIDATES.find((t) => flashTileFits(kind, P, t)) ?? null);
  return chosen.get(key)!;
}

/** Whether the fused kernels run head dim P on this device (forward and backward). */
export function flashSupported(P: number): boolean {
  return flashTile("forward", P) !== null && flashTile("dq", P) !== null && flashTile("dkv", P) !== null;
}

function spec(kind: FlashKernel, P: number, tile?: FlashTile): KernelSpec {
  const t = tile ?? flashTile(kind, P);
  if (!t || !flashTileFits(kind, P, t)) {
    throw new ShapeError("flashAttention", `no ${kind} tile fits head dim ${P} on this device`);
  }
  const entry = kind === "forward" ? "forward" : kind === "dq" ? "backward_dq" : "backward_dkv";
  return {
    file: "flash_attention.wgsl",
    entry,
    constants: { TX: t.tx, TY: t.ty, PD: paddedDim(P), PF: t.pf !== false && loadsPer(P, t) <= 4 ? 1 : 0 },
  };
}

/**
 * The pipelines the fused attention of head dim P uses (forward, and with `backward` the three
 * backward kernels), for `precompile` at model load.
 */
export function flashAttentionKernels(P: number, backward = false): KernelSpec[] {
  if (!flashSupported(P)) return [];
  const fwd = [spec("forward", P)];
  if (!backward) return fwd;
  return [
    ...fwd,
    { file: "flash_attention.wgsl", entry: "backward_delta" },
    { file: "flash_attention.wgsl", entry: "backward_dkv_sum" },
    spec("dq", P),
    spec("dkv", P),
  ];
}

/** Options of {@linkcode flashAttention} and {@linkcode flashAttentionBackward}. */
export interface FlashOptions {
  /** Valid key positions S in k/v (default: all of dim 1); queries are the last L of them. */
  keyLength?: number;
  /** Score scale (default 1/√P). */
  scale?: number;
  /** Tiles other than the device's preferred ones (benchmarks). */
  tiles?: FlashTiles;
  /**
   * Backward: one dK/dV workgroup per query head (partials, then a sum over each group) instead of
   * one per kv head walking its group. Default: when the per-kv-head grid has fewer than
   * {@linkcode SPLIT_BELOW} workgroups (too few to fill the GPU).
   */
  splitHeads?: boolean;
}

/** The dK/dV grid size below which the backward splits the GQA group over workgroups by default. */
export const SPLIT_BELOW = 1024;

interface Dims {
  B: number;
  L: number;
  Hq: number;
  P: number;
  cap: number;
  Hkv: number;
  S: number;
  scale: number;
}

function dimsOf(name: string, q: Tensor, k: Tensor, v: Tensor, opts: FlashOptions): Dims {
  if (q.shape.length !== 4 || k.shape.length !== 4 || v.shape.length !== 4) {
    throw new ShapeError(name, `expected 4-D q, k, v, got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}`);
  }
  const [B, L, Hq, P] = q.shape;
  const [Bk, cap, Hkv, Pk] = k.shape;
  const S = opts.keyLength ?? cap;
  if (Bk !== B || Pk !== P || v.shape.join() !== k.shape.join() || Hq % Hkv !== 0 || S > cap || S < L) {
    throw new ShapeError(
      name,
      `q ${fmtShape(q.shape)} does not fit k ${fmtShape(k.shape)} / v ${fmtShape(v.shape)} with S=${S}`,
    );
  }
  return { B, L, Hq, P, cap, Hkv, S, scale: opts.scale ?? 1 / Math.sqrt(P) };
}

/** The uniform words shared by every entry point (see `Params` in the WGSL). */
function params(d: Dims, nblk: number, n = 0, yrow = 0, hsplit = 0): Params {
  return new Params()
    .u32(d.L, d.S, d.cap, d.Hq, d.Hkv, d.P, d.Hq / d.Hkv, nblk)
    .f32v(d.scale * Math.LOG2E)
    .u32(n, yrow, hsplit);
}

/**
 * Fused causal GQA attention: returns out (B, L, H_q, P) and lse (B, H_q, L), the natural-log
 * logsumexp of each query row's scaled scores (what the backward needs).
 */
export function flashAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: FlashOptions = {},
): { out: Tensor; lse: Tensor } {
  const d = dimsOf("flashAttention", q, k, v, opts);
  const s = spec("forward", d.P, opts.tiles?.forward);
  const BR = 4 * s.constants!.TY;
  const nblk = Math.ceil(d.L / BR);
  const out = Tensor.empty(q.shape);
  const lse = Tensor.empty([d.B, d.Hq, d.L]);
  if (d.L === 0) return { out, lse };
  dispatch(s, [q.buffer, k.buffer, v.buffer, out.buffer, lse.buffer], params(d, nblk), [nblk, d.Hq, d.B]);
  return { out, lse };
}

/**
 * Gradients of {@linkcode flashAttention} given its out, lse and dOut (B, L, H_q, P): dq like q, dk
 * and dv like k and v (rows past `keyLength` are zero), dk/dv summed over each group's query heads.
 * Three dispatches: D = rowsum(dOut ⊙ out), then dK/dV per key block and dQ per query block (four
 * with `splitHeads`: dK/dV partials per query head, then their sums over each group).
 */
export function flashAttentionBackward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  lse: Tensor,
  dOut: Tensor,
  opts: FlashOptions = {},
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const d = dimsOf("flashAttentionBackward", q, k, v, opts);
  if (
    out.shape.join() !== q.shape.join() || dOut.shape.join() !== q.shape.join() ||
    lse.size !== d.B * d.Hq * d.L
  ) {
    throw new ShapeError(
      "flashAttentionBackward",
      `out ${fmtShape(out.shape)}, dOut ${fmtShape(dOut.shape)}, lse ${fmtShape(lse.shape)} for q ${
        fmtShape(q.shape)
      }`,
    );
  }
  const sdq = spec("dq", d.P, opts.tiles?.dq);
  const sdkv = spec("dkv", d.P, opts.tiles?.dkv);
  const dq = Tensor.empty(q.shape);
  const dk = Tensor.empty(k.shape);
  const dv = Tensor.empty(v.shape);
  using delta = Tensor.empty([d.B, d.Hq, d.L]);
  const rows = d.B * d.L * d.Hq;
  const [gx, gy] = groupsFor(rows, 64);
  dispatch(
    { file: "flash_attention.wgsl", entry: "backward_delta" },
    [null, null, null, out.buffer, null, dOut.buffer, delta.buffer],
    params(d, 0, rows, gx),
    [gx, gy],
  );
  const bindings = [q.buffer, k.buffer, v.buffer, null, lse.buffer, dOut.buffer, delta.buffer];
  const BRkv = 4 * sdkv.constants!.TY;
  dispatch(sdkv, [...bindings, null, dk.buffer, dv.buffer], params(d, 0), [
    Math.ceil(d.cap / BRkv),
    d.Hkv,
    d.B,
  ]);
  const BRq = 4 * sdq.constants!.TY;
  const nblk = Math.ceil(d.L / BRq);
  if (nblk > 0) dispatch(sdq, [...bindings, dq.buffer], params(d, nblk), [nblk, d.Hq, d.B]);
  return { dq, dk, dv };
}
