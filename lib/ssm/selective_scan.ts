/**
 * The Mamba-1 selective scan on the GPU (`kernels/selective_scan.wgsl`, `kernels/selective_scan_bwd.wgsl`):
 * the forward (one pass with every invocation walking all of L for 1–4 states, `kernels/selective_scan_walk.wgsl`,
 * or three passes over chunks of time), its reverse-time adjoint (gradients of every input), and the
 * one-token step used when decoding. Semantics are those of `selective_scan_ref` of state-spaces/mamba;
 * the plain-loop twins are in `selective_scan_ref.ts`.
 *
 * Shapes (paper letters, outermost first): u, δ, z (B, D, L); A (D, N); B, C (B, N, L) or grouped
 * (B, G, N, L) with channel d using group ⌊d/(D/G)⌋; D skip and δ bias (D); states (B, D, N).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dummyBuffer } from "../gpu/buffers.ts";
import { type Binding, dispatch, groupsFor, Params } from "../gpu/commands.ts";
import type { KernelSpec } from "../gpu/pipelines.ts";
import { expectShape, fmtShape, Tensor } from "../tensor/tensor.ts";

/** Inputs of {@linkcode selectiveScan}; optional ones may be left out. */
export interface SelectiveScanInputs {
  /** Input u (B, D, L). */
  u: Tensor;
  /** Raw time step δ (B, D, L), before the bias and the softplus. */
  delta: Tensor;
  /** A (D, N), negative. */
  A: Tensor;
  /** B (B, N, L) or (B, G, N, L). */
  B: Tensor;
  /** C, the same shape as B. */
  C: Tensor;
  /** Skip D (D): out = y + D u. */
  D?: Tensor;
  /** Gate z (B, D, L): out ← out · silu(z). */
  z?: Tensor;
  /** δ bias (D), added before the softplus. */
  deltaBias?: Tensor;
}

/** Options of {@linkcode selectiveScan}. */
export interface SelectiveScanOptions {
  /** δ ← softplus(δ + bias) (threshold 20); default false, as the reference. */
  deltaSoftplus?: boolean;
  /** State before the first step (B, D, N); zeros when absent. */
  initialState?: Tensor;
  /**
   * Chunk length Q of the three-pass scan over time (results do not depend on it beyond float rounding).
   * Default {@linkcode SCAN_CHUNK}; the backward uses min(Q, {@linkcode MAX_BACKWARD_CHUNK}). Given, it
   * makes the forward the three passes even where the one-pass walk would run.
   */
  chunkLength?: number;
}

/** Gradients returned by {@linkcode selectiveScanBackward}, in the shapes of the inputs. */
export interface SelectiveScanGrads {
  u: Tensor;
  delta: Tensor;
  A: Tensor;
  B: Tensor;
  C: Tensor;
  D?: Tensor;
  z?: Tensor;
  deltaBias?: Tensor;
  initialState?: Tensor;
}

/** Default chunk length Q of the scan over time. */
export const SCAN_CHUNK = 128;
/** Chunk length of the backward: at most this (its workgroup keeps 4 sub-block states of 8 steps). */
export const MAX_BACKWARD_CHUNK = 32;
/** Largest state size N the kernels take. */
export const MAX_STATE = 64;

const FWD = "selective_scan.wgsl";
const BWD = "selective_scan_bwd.wgsl";
const STEP = "selective_scan_step.wgsl";
const WG = 128; // invocations per workgroup of the forward chunk kernels and the token step
const BWG = 64; // invocations per workgroup of the backward
const MAX_DB = 8; // channels per workgroup of the backward
const SUB_STEPS = 8; // steps per sub-block of the chunk passes (selective_scan.wgsl's T)

const HAS_D = 1, HAS_Z = 2, HAS_BIAS = 4, SOFTPLUS = 8, HAS_H0 = 16, VEC4 = 32;

/** Sizes and launch layout of one scan. */
interface Layout {
  batch: number;
  D: number;
  L: number;
  N: number;
  G: number;
  /** Chunks and chunk length. */
  nc: number;
  q: number;
  /** Backward and token step: lanes per channel (N rounded up to a power of two), channels per workgroup. */
  np: number;
  db: number;
  /** Forward: channels per workgroup, most groups of B/C one block spans, blocks of 16 states per channel. */
  cw: number;
  gpw: number;
  sb: number;
  flags: number;
}

/** Lanes per channel, and channels per workgroup DB dividing D/G (a block shares one group). */
function lanes(N: number, perGroup: number): { np: number; db: number } {
  const np = 2 ** Math.ceil(Math.log2(N));
  let db = Math.min(MAX_DB, BWG / np);
  while (perGroup % db !== 0) db /= 2;
  return { np, db };
}

/** Most groups that one block of `cw` consecutive channels spans. */
function groupsSpanned(cw: number, D: number, perGroup: number): number {
  let most = 1;
  for (let d0 = 0; d0 < D; d0 += cw) {
    const last = Math.min(d0 + cw, D) - 1;
    most = Math.max(most, Math.floor(last / perGroup) - Math.floor(d0 / perGroup) + 1);
  }
  return most;
}

/**
 * Forward blocks: SB invocations of 16 states per channel, and channels per workgroup such that the
 * staged B and C of the groups a block spans fit (groups × SB ≤ 8).
 */
function blocks(N: number, D: number, perGroup: number): { cw: number; gpw: number; sb: number } {
  const sb = N <= 16 ? 1 : N <= 32 ? 2 : 4;
  let cw = WG / sb;
  while (cw > 1 && groupsSpanned(cw, D, perGroup) * sb > 8) cw /= 2;
  return { cw, gpw: groupsSpanned(cw, D, perGroup), sb };
}

function checkScan(op: string, inp: SelectiveScanInputs, opts: SelectiveScanOptions): Layout {
  const [batch, D, L] = inp.u.shape;
  if (inp.u.shape.length !== 3) {
    throw new ShapeError(op, `expected u (B, D, L), got ${fmtShape(inp.u.shape)}`);
  }
  expectShape(op, "delta (B, D, L) =", inp.delta, [batch, D, L]);
  if (inp.A.shape.length !== 2 || inp.A.shape[0] !== D) {
    throw new ShapeError(op, `expected A (D, N) with D = ${D}, got ${fmtShape(inp.A.shape)}`);
  }
  const N = inp.A.shape[1];
  if (N < 1 || N > MAX_STATE) throw new ShapeError(op, `state size N = ${N} is outside 1 … ${MAX_STATE}`);
  const G = inp.B.shape.length === 4 ? inp.B.shape[1] : 1;
  const grouped = inp.B.shape.length === 4;
  const bShape = grouped ? [batch, G, N, L] : [batch, N, L];
  expectShape(op, grouped ? "B (B, G, N, L) =" : "B (B, N, L) =", inp.B, bShape);
  expectShape(op, "C (the shape of B) =", inp.C, bShape);
  if (G < 1 || D % G !== 0) throw new ShapeError(op, `D = ${D} is not a multiple of the groups G = ${G}`);
  if (inp.D) expectShape(op, "D (D) =", inp.D, [D]);
  if (inp.z) expectShape(op, "z (B, D, L) =", inp.z, [batch, D, L]);
  if (inp.deltaBias) expectShape(op, "deltaBias (D) =", inp.deltaBias, [D]);
  if (opts.initialState) expectShape(op, "initialState (B, D, N) =", opts.initialState, [batch, D, N]);
  const q = opts.chunkLength ?? SCAN_CHUNK;
  if (!Number.isInteger(q) || q < 1) throw new ShapeError(op, `chunk length ${q} is not a positive integer`);
  const flags = (inp.D ? HAS_D : 0) | (inp.z ? HAS_Z : 0) | (inp.deltaBias ? HAS_BIAS : 0) |
    (opts.deltaSoftplus ? SOFTPLUS : 0) | (opts.initialState ? HAS_H0 : 0) |
    (L % 4 === 0 && q % 4 === 0 ? VEC4 : 0);
  const nc = Math.max(1, Math.ceil(L / q));
  return { batch, D, L, N, G, nc, q, ...lanes(N, D / G), ...blocks(N, D, D / G), flags };
}

/** Parameters of selective_scan.wgsl. */
function fwdParams(l: Layout, flags: number, yrow = 0, reverse = 0): Params {
  const { batch, D, L, N, G, nc, q, cw, gpw, sb } = l;
  return new Params().u32(batch, D, L, N, G, nc, q, cw, gpw, flags, yrow, reverse, sb);
}

/** The first twelve parameter words of selective_scan_bwd.wgsl. */
function bwdParams(l: Layout, flags: number, kb = 0): Params {
  return new Params().u32(l.batch, l.D, l.L, l.N, l.G, l.nc, l.q, l.np, l.db, flags, 0, kb);
}

/** An entry point of selective_scan.wgsl. */
function fwd(entry: string): KernelSpec {
  return { file: FWD, entry };
}

/**
 * chunk_out with its workgroup memory sized to the launch: every kernel's declared workgroup memory is
 * allocated, used or not, and on the H200 it bounds how many chunk_out workgroups an SM holds (its
 * 12.5 KiB at most made it 17% slower at N = 16 than 1 KiB, docs/results.md §8g). The B and C stages
 * hold GPW × 8 steps × 4·SB vec4 (override BC: 32 at N ≤ 16 with one group per block, 256 at most), and
 * the partial outputs, which only SB > 1 reads, one element otherwise (override PART). chunk_state keeps
 * the defaults: the same sizing made it 1.5% slower there.
 */
function chunkOut(l: Layout): KernelSpec {
  const constants: Record<string, number> = { BC: bcTileElements(l) / 4 };
  if (l.sb === 1) constants.PART = 1;
  return { file: FWD, entry: "chunk_out", constants };
}

/**
 * chunk_state with its B/C tile loads sized to the launch: each invocation loads ⌈GPW × 8 steps × 16·SB /
 * 128⌉ of the tile's elements (override BCR, 1 at N ≤ 16 with one group per block, 8 at most). With the
 * count a constant, the compiler drops the unused slots' loads and indices: 0.132 → 0.124 ms at B4
 * L2048 D2048 N16 on the H200 (docs/results.md §8h). chunk_out keeps 8, where it was slower.
 */
function chunkState(l: Layout): KernelSpec {
  return { file: FWD, entry: "chunk_state", constants: { BCR: Math.ceil(bcTileElements(l) / WG) } };
}

/**
 * Elements of the B and C tile one sub-block of the chunk passes stages (selective_scan.wgsl's `bc_at`):
 * GPW groups × 8 steps × 16·SB states, the source of both passes' tile constants.
 */
function bcTileElements(l: Layout): number {
  return l.gpw * SUB_STEPS * 16 * l.sb;
}

/** A chunk entry of selective_scan_bwd.wgsl with its stages sized to the launch's DB and NP. */
function bwd(entry: "adjoint_local" | "grads", l: Layout): KernelSpec {
  return { file: BWD, entry, constants: { DBW: l.db, NPB: l.np } };
}

const opt = (t: Tensor | undefined): GPUBuffer => t ? t.buffer : dummyBuffer();

/** Grid of the chunk kernels: (channel blocks, chunks, batch), of the forward's or the backward's blocks. */
function chunkGrid(l: Layout, backward = false): [number, number, number] {
  return [Math.ceil(l.D / (backward ? l.db : l.cw)), l.nc, l.batch];
}

/**
 * Passes 1 and 2: `states` (B, NC, D, N) ends up holding the state entering each chunk, `dsum`
 * (B, NC, D) the chunk sums of δ, and `last` the state after the last step.
 */
function chunkStates(
  l: Layout,
  inp: SelectiveScanInputs,
  h0: Tensor | undefined,
  out: { states: Tensor; dsum: Tensor; last: Tensor },
): void {
  const { u, delta, A, B, C, deltaBias } = inp;
  const bufs = [u.buffer, delta.buffer, A.buffer, B.buffer, C.buffer, null, null, opt(deltaBias)];
  bufs.push(out.states.buffer, out.dsum.buffer);
  dispatch(chunkState(l), bufs, fwdParams(l, l.flags), chunkGrid(l));
  carry(l, A, out.states, out.dsum, h0, out.last, false);
}

/** chunk_carry over `states` in place, forward or (for the adjoint) from the last chunk down. */
function carry(
  l: Layout,
  A: Tensor,
  states: Tensor,
  dsum: Tensor,
  h0: Tensor | undefined,
  last: Tensor,
  reverse: boolean,
): void {
  const [gx, gy] = groupsFor(l.batch * l.D * l.N, 256);
  const bufs: (Binding | null)[] = [null, null, A.buffer, null, null, null, null, null, states.buffer];
  bufs.push(dsum.buffer, null, opt(h0), last.buffer);
  const p = fwdParams(l, h0 ? HAS_H0 : 0, gx, reverse ? 1 : 0);
  dispatch(fwd("chunk_carry"), bufs, p, [gx, gy]);
}

/** Which forward {@linkcode selectiveScan} runs; every choice gives the same result up to f32 rounding. */
export interface ScanTuning {
  /**
   * The one-pass walk (`kernels/selective_scan_walk.wgsl`, every invocation walking all of L for a few
   * states of a channel) whenever {@linkcode walkForwardFits} and no `chunkLength` is asked for. Default
   * true: on the H200 at B4 L2048 D2048 N16 it takes 0.25 ms against 0.34 ms for the three passes.
   */
  walk?: boolean;
  /**
   * Launch choice of the walk (for benchmarks, bench/scan_walk.ts): states per invocation, the override S.
   * Default N/8 from N = 16 on (2 at N = 16, its fastest), else 1. A launch the sizes do not fit throws.
   */
  walkStates?: 1 | 2 | 4;
  /** Launch choice of the walk: steps per stage, the override T. Default 8. */
  walkSteps?: 4 | 8 | 16;
}

const WALK = "selective_scan_walk.wgsl";

/** The walk's launch for these sizes: states per invocation S, steps per stage T, channels per workgroup R. */
function walkLaunch(N: number, tuning: ScanTuning): { S: number; T: number; R: number } {
  const S = tuning.walkStates ?? (N <= 8 ? 1 : N / 8);
  const T = tuning.walkSteps ?? 8;
  return { S, T, R: WG / (N / S) };
}

/**
 * Whether the walk takes these sizes with this launch (by default: N = 4, 8, 16 or 32). The kernel needs
 * S ∈ {1, 2, 4} states per invocation, N/S = 4, 8 or 16 invocations per channel, at most 2 stage elements
 * per invocation (R·T ≤ 256 and N·T ≤ 256, R = 128 / (N/S) channels per workgroup), and with G > 1 groups
 * every block of R consecutive channels within one group of B and C. Otherwise {@linkcode selectiveScan}
 * runs the three passes.
 */
export function walkForwardFits(N: number, D: number, G: number, tuning: ScanTuning = {}): boolean {
  const { S, T, R } = walkLaunch(N, tuning);
  return [1, 2, 4].includes(S) && [4, 8, 16].includes(N / S) && [4, 8, 16].includes(T) && R * T <= 256 &&
    N * T <= 256 && (G === 1 || (D / G) % R === 0);
}

/**
 * The selective scan (`selective_scan_ref`): returns out (B, D, L) and the last state (B, D, N).
 *
 * By default, when {@linkcode walkForwardFits} and `opts.chunkLength` is not given, in one pass
 * (`kernels/selective_scan_walk.wgsl`): each invocation walks all of L for 1–4 states of one channel, and
 * the channel's y is summed across its invocations in workgroup memory every 8 steps. Otherwise in three
 * passes over chunks of Q = `opts.chunkLength` steps: chunk end states from zero,
 * the short scan across chunks, and each chunk recomputed from its entering state to emit y.
 *
 * @example
 * ```ts
 * import { initGpu } from "../gpu/device.ts";
 * import { Tensor } from "../tensor/tensor.ts";
 * import { selectiveScan } from "./selective_scan.ts";
 *
 * await initGpu();
 * const ones = (...shape: number[]) =>
 *   Tensor.from(new Float32Array(shape.reduce((a, b) => a * b)).fill(1), shape);
 * const { y, lastState } = selectiveScan({
 *   u: ones(1, 2, 3), delta: ones(1, 2, 3), A: ones(2, 4), B: ones(1, 4, 3), C: ones(1, 4, 3),
 * });
 * console.assert(y.shape.join() === "1,2,3" && lastState.shape.join() === "1,2,4");
 * ```
 */
export function selectiveScan(
  inp: SelectiveScanInputs,
  opts: SelectiveScanOptions = {},
  tuning: ScanTuning = {},
): { y: Tensor; lastState: Tensor } {
  const l = checkScan("selectiveScan", inp, opts);
  const launch = tuning.walkStates !== undefined || tuning.walkSteps !== undefined;
  if (launch && !walkForwardFits(l.N, l.D, l.G, tuning)) {
    const { S, T } = walkLaunch(l.N, tuning);
    throw new ShapeError(
      "selectiveScan",
      `the walk's launch S = ${S}, T = ${T} does not fit N = ${l.N}, D = ${l.D}, G = ${l.G} (see walkForwardFits)`,
    );
  }
  if ((tuning.walk ?? true) && opts.chunkLength === undefined && walkForwardFits(l.N, l.D, l.G, tuning)) {
    return walkForward(l, inp, opts.initialState, walkLaunch(l.N, tuning));
  }
  const y = Tensor.empty([l.batch, l.D, l.L]);
  const lastState = Tensor.empty([l.batch, l.D, l.N]);
  using states = Tensor.empty([l.batch, l.nc, l.D, l.N]);
  using dsum = Tensor.empty([l.batch, l.nc, l.D]);
  chunkStates(l, inp, opts.initialState, { states, dsum, last: lastState });
  const { u, delta, A, B, C, D, z, deltaBias } = inp;
  const bufs: (Binding | null)[] = [
    u.buffer,
    delta.buffer,
    A.buffer,
    B.buffer,
    C.buffer,
    opt(D),
    opt(z),
    opt(deltaBias),
  ];
  bufs.push(states.buffer, null, y.buffer);
  dispatch(chunkOut(l), bufs, fwdParams(l, l.flags), chunkGrid(l));
  return { y, lastState };
}

/**
 * The one-pass walk: one dispatch of `selective_scan_walk.wgsl`, a workgroup per (block of 128 / (N/S)
 * channels, batch), each invocation walking all of L for S states of its channel.
 */
function walkForward(
  l: Layout,
  inp: SelectiveScanInputs,
  h0: Tensor | undefined,
  { S, T, R }: { S: number; T: number; R: number },
): { y: Tensor; lastState: Tensor } {
  const y = Tensor.empty([l.batch, l.D, l.L]);
  const lastState = Tensor.empty([l.batch, l.D, l.N]);
  const { u, delta, A, B, C, D, z, deltaBias } = inp;
  const bufs: (Binding | null)[] = [u.buffer, delta.buffer, A.buffer, B.buffer, C.buffer, opt(D), opt(z)];
  bufs.push(opt(deltaBias), null, null, y.buffer, opt(h0), lastState.buffer);
  const spec = { file: WALK, entry: "walk", constants: { S, T, NS: l.N } };
  dispatch(spec, bufs, fwdParams(l, l.flags), [Math.ceil(l.D / R), l.batch]);
  return { y, lastState };
}

/** sums (R, M) = Σ_k part (R, K, M) read from element offset `off` of `part`. */
function sumPartials(part: Tensor, off: number, R: number, K: number, M: number, sums: Tensor): void {
  const [gx, gy] = groupsFor(R * M, 256);
  const bufs: (Binding | null)[] = new Array(16).fill(null);
  bufs.push(part.buffer, sums.buffer);
  const p = new Params().u32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, gx, 0, 0, 0, 0, R, K, M, off);
  dispatch({ file: BWD, entry: "sum_partials" }, bufs, p, [gx, gy]);
}

/**
 * Gradients of Σ out · dy (+ Σ lastState · dLastState) with respect to every input of
 * {@linkcode selectiveScan} (and the initial state when one is given). The forward's chunk-entering
 * states are recomputed (passes 1–2), the adjoint is carried across chunks in reverse, and each chunk is
 * recomputed from its entering state while the adjoint walks back through it.
 */
export function selectiveScanBackward(
  inp: SelectiveScanInputs,
  dy: Tensor,
  opts: SelectiveScanOptions & { dLastState?: Tensor } = {},
): SelectiveScanGrads {
  const op = "selectiveScanBackward";
  const lf = checkScan(op, inp, opts);
  // The backward's own chunks: at most MAX_BACKWARD_CHUNK steps.
  const q = Math.min(lf.q, MAX_BACKWARD_CHUNK);
  const vec4 = lf.L % 4 === 0 && q % 4 === 0 ? VEC4 : 0;
  const l: Layout = { ...lf, q, nc: Math.max(1, Math.ceil(lf.L / q)), flags: (lf.flags & ~VEC4) | vec4 };
  const { batch, D, L, N, G, nc, db } = l;
  expectShape(op, "dy (B, D, L) =", dy, [batch, D, L]);
  if (opts.dLastState) expectShape(op, "dLastState (B, D, N) =", opts.dLastState, [batch, D, N]);
  const { u, delta, A, B, C, z, deltaBias } = inp;
  // Forward passes 1–2: the state entering each chunk, and the chunk sums of δ.
  using hin = Tensor.empty([batch, nc, D, N]);
  using dsum = Tensor.empty([batch, nc, D]);
  using last = Tensor.empty([batch, D, N]);
  chunkStates(l, inp, opts.initialState, { states: hin, dsum, last });
  // Adjoint out of each chunk, then the reverse carry: the adjoint entering each chunk from the future.
  using adj = Tensor.empty([batch, nc, D, N]);
  const local = [u.buffer, delta.buffer, A.buffer, B.buffer, C.buffer, null, opt(z), opt(deltaBias)];
  local.push(dy.buffer, null, adj.buffer);
  dispatch(bwd("adjoint_local", l), local, bwdParams(l, l.flags), chunkGrid(l, true));
  const dInit = opts.initialState ? Tensor.empty([batch, D, N]) : undefined;
  {
    using scratch = dInit ? undefined : Tensor.empty([batch, D, N]);
    carry(l, A, adj, dsum, opts.dLastState, (dInit ?? scratch)!, true);
  }
  // Per-chunk gradients and partial sums.
  const kb = D / G / db;
  const grads: SelectiveScanGrads = {
    u: Tensor.empty([batch, D, L]),
    delta: Tensor.empty([batch, D, L]),
    A: Tensor.empty([D, N]),
    B: Tensor.empty(B.shape),
    C: Tensor.empty(C.shape),
    D: inp.D ? Tensor.empty([D]) : undefined,
    z: z ? Tensor.empty([batch, D, L]) : undefined,
    deltaBias: deltaBias ? Tensor.empty([D]) : undefined,
    initialState: dInit,
  };
  const bcSize = batch * G * kb * N * L;
  const offD = batch * nc * D * N;
  const offBias = offD + batch * nc * D;
  using bcpart = Tensor.empty([2 * bcSize]);
  using red = Tensor.empty([offBias + batch * nc * D]);
  using dzScratch = z ? undefined : Tensor.empty([1]);
  const bufs: (Binding | null)[] = [u.buffer, delta.buffer, A.buffer, B.buffer, C.buffer, opt(inp.D), opt(z)];
  bufs.push(opt(deltaBias), dy.buffer, hin.buffer, adj.buffer, grads.u.buffer, grads.delta.buffer);
  bufs.push((grads.z ?? dzScratch)!.buffer, bcpart.buffer, red.buffer);
  const p = bwdParams(l, l.flags, kb).u32(offD, offBias, bcSize);
  dispatch(bwd("grads", l), bufs, p, chunkGrid(l, true));
  sumPartials(bcpart, 0, batch * G, kb, N * L, grads.B);
  sumPartials(bcpart, bcSize, batch * G, kb, N * L, grads.C);
  sumPartials(red, 0, 1, batch * nc, D * N, grads.A);
  if (grads.D) sumPartials(red, offD, 1, batch * nc, D, grads.D);
  if (grads.deltaBias) sumPartials(red, offBias, 1, batch * nc, D, grads.deltaBias);
  return grads;
}

/**
 * One decoding step of the scan (`selective_state_update_ref`), updating `state` (B, D, N) in place:
 * dt ← softplus(dt + dtBias) when `dtSoftplus`; state ← state · exp(dt A) + dt B x; returns
 * y = Σ_n state C + D x, times silu(z) when z is given, (B, D). B and C are (B, N) or (B, G, N).
 */
export function selectiveStateUpdate(
  state: Tensor,
  x: Tensor,
  dt: Tensor,
  A: Tensor,
  B: Tensor,
  C: Tensor,
  opts: { D?: Tensor; z?: Tensor; dtBias?: Tensor; dtSoftplus?: boolean } = {},
): Tensor {
  const op = "selectiveStateUpdate";
  if (state.shape.length !== 3) {
    throw new ShapeError(op, `expected state (B, D, N), got ${fmtShape(state.shape)}`);
  }
  const [batch, D, N] = state.shape;
  if (N > MAX_STATE) throw new ShapeError(op, `state size N = ${N} exceeds ${MAX_STATE}`);
  expectShape(op, "x (B, D) =", x, [batch, D]);
  expectShape(op, "dt (B, D) =", dt, [batch, D]);
  expectShape(op, "A (D, N) =", A, [D, N]);
  const grouped = B.shape.length === 3;
  const G = grouped ? B.shape[1] : 1;
  const bShape = grouped ? [batch, G, N] : [batch, N];
  expectShape(op, grouped ? "B (B, G, N) =" : "B (B, N) =", B, bShape);
  expectShape(op, "C (the shape of B) =", C, bShape);
  if (G < 1 || D % G !== 0) throw new ShapeError(op, `D = ${D} is not a multiple of the groups G = ${G}`);
  if (opts.D) expectShape(op, "D (D) =", opts.D, [D]);
  if (opts.z) expectShape(op, "z (B, D) =", opts.z, [batch, D]);
  if (opts.dtBias) expectShape(op, "dtBias (D) =", opts.dtBias, [D]);
  const np = 2 ** Math.ceil(Math.log2(N));
  const db = Math.min(MAX_DB, WG / np);
  const flags = (opts.D ? HAS_D : 0) | (opts.z ? HAS_Z : 0) | (opts.dtBias ? HAS_BIAS : 0) |
    (opts.dtSoftplus ? SOFTPLUS : 0);
  const y = Tensor.empty([batch, D]);
  const o = opts;
  const bufs = [x.buffer, dt.buffer, A.buffer, B.buffer, C.buffer, opt(o.D), opt(o.z), opt(o.dtBias)];
  bufs.push(state.buffer, y.buffer);
  const p = new Params().u32(batch, D, N, G, np, db, flags);
  dispatch({ file: STEP }, bufs, p, [Math.ceil(D / db), batch]);
  return y;
}
