/**
 * Mamba-2 SSD on the GPU (`kernels/ssd.wgsl`, `kernels/ssd_state.wgsl`): the chunked scan, its backward
 * and the one-token step. Per (batch, head), with the state H_t (P × N):
 *
 *   H_t = exp(A_t) · H_{t−1} + X_t B_tᵀ,   Y_t = H_t C_t
 *
 * Shapes (the paper's letters, outermost first): X, Y (B, L, H, P); A (B, L, H), the log-decay per step
 * (already times dt); B, C (B, L, H, N), per head (the caller expands groups); states (B, H, P, N).
 * D·x is not part of the op. Ground truth: `ssd_minimal_discrete` (state-spaces/mamba); the float64
 * references are in `ssd_ref.ts`.
 *
 * The forward is three dispatches: chunk states (chunks in parallel), the inter-chunk recurrence
 * (L/Q steps, parallel over the state's entries), and the chunk outputs (intra-chunk quadratic block
 * plus the contribution of the state entering the chunk). The backward recomputes the chunk states
 * and is five dispatches.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dummyBuffer } from "../gpu/buffers.ts";
import { gpu } from "../gpu/device.ts";
import { type Binding, dispatch, groupsFor, Params } from "../gpu/commands.ts";
import { expectShape, fmtShape, Tensor } from "../tensor/tensor.ts";

/** Inputs of the SSD scan. */
export interface SsdInputs {
  /** X (B, L, H, P). */
  X: Tensor;
  /** Log-decay A (B, L, H) (A_h·dt_t, normally ≤ 0). */
  A: Tensor;
  /** B (B, L, H, N). */
  B: Tensor;
  /** C (B, L, H, N). */
  C: Tensor;
  /** The state before t = 0 (B, H, P, N); zeros when absent. */
  initialState?: Tensor;
}

/** Options of the chunked scan. */
export interface SsdOptions {
  /**
   * Chunk length Q, default 64. The GPU kernels hold a Q×Q block in workgroup memory and use
   * min(Q, 64); results do not depend on Q beyond float rounding.
   */
  blockLen?: number;
}

/** The largest chunk the kernels hold in workgroup memory. */
export const MAX_BLOCK_LEN = 64;

interface Sizes {
  Bt: number;
  L: number;
  H: number;
  P: number;
  N: number;
  Q: number;
  nc: number;
}

function sizes(op: string, inp: SsdInputs, opts: SsdOptions): Sizes {
  if (inp.X.shape.length !== 4) {
    throw new ShapeError(op, `expected X (B, L, H, P), got ${fmtShape(inp.X.shape)}`);
  }
  const [Bt, L, H, P] = inp.X.shape;
  if (inp.B.shape.length !== 4) {
    throw new ShapeError(op, `expected B (B, L, H, N), got ${fmtShape(inp.B.shape)}`);
  }
  const N = inp.B.shape[3];
  expectShape(op, "A (B, L, H)", inp.A, [Bt, L, H]);
  expectShape(op, "B (B, L, H, N)", inp.B, [Bt, L, H, N]);
  expectShape(op, "C (B, L, H, N)", inp.C, [Bt, L, H, N]);
  if (inp.initialState) expectShape(op, "initialState (B, H, P, N)", inp.initialState, [Bt, H, P, N]);
  if (L < 1 || P < 1 || N < 1) throw new ShapeError(op, `empty X ${fmtShape(inp.X.shape)} or N = ${N}`);
  const want = opts.blockLen ?? 64;
  if (!Number.isInteger(want) || want < 1) throw new ShapeError(op, `blockLen must be ≥ 1, got ${want}`);
  const Q = Math.min(want, MAX_BLOCK_LEN);
  const nc = Math.ceil(L / Q);
  if (nc > 65535 || H > 65535 || Bt > 65535) {
    throw new ShapeError(op, `too many chunks or heads for one grid: ${fmtShape(inp.X.shape)}, Q ${Q}`);
  }
  const stateBytes = Bt * nc * H * P * N * 4;
  if (stateBytes > gpu().maxBindingBytes) {
    throw new ShapeError(
      op,
      `the chunk states (B, L/Q, H, P, N) = ${fmtShape([Bt, nc, H, P, N])} exceed one GPU binding ` +
        `(${gpu().maxBindingBytes} bytes): split the batch`,
    );
  }
  return { Bt, L, H, P, N, Q, nc };
}

function chunkParams(s: Sizes): Params {
  return new Params().u32(s.L, s.H, s.P, s.N, s.Q, s.nc);
}

function stateParams(s: Sizes, flags: number): Params {
  return new Params().u32(s.H, s.P * s.N, s.nc, flags, s.P, s.N, 0, 0);
}

/**
 * Chunk states S_c = Σ_s exp(suf_s) X_s B_sᵀ into `states` (B, nc, H, P, N) and chunk totals T (B, H, nc);
 * then the recurrence turns `states` into the state entering each chunk and writes the final state.
 */
function forwardStates(inp: SsdInputs, s: Sizes, states: Tensor, totals: Tensor, finalState: Tensor): void {
  const d = dummyBuffer();
  dispatch(
    { file: "ssd.wgsl", entry: "chunk_state", constants: { MSH: 1 } }, // no M: 16 KiB less workgroup memory (§8h)
    [inp.X.buffer, inp.A.buffer, inp.B.buffer, inp.C.buffer, d, d, d, states.buffer, totals.buffer],
    chunkParams(s),
    [s.nc, s.H, s.Bt],
  );
  dispatch(
    { file: "ssd_state.wgsl", entry: "state_pass" },
    [totals.buffer, states.buffer, inp.initialState?.buffer ?? d, finalState.buffer],
    stateParams(s, inp.initialState ? 1 : 0),
    [Math.ceil((s.P * s.N) / 256), s.H, s.Bt],
  );
}

/**
 * The chunked SSD scan (method.md §2.2): Y (B, L, H, P) and the final state (B, H, P, N).
 *
 * @example
 * ```ts ignore
 * const { Y, finalState } = ssdChunked({ X, A, B, C }, { blockLen: 64 });
 * ```
 */
export function ssdChunked(inp: SsdInputs, opts: SsdOptions = {}): { Y: Tensor; finalState: Tensor } {
  const s = sizes("ssdChunked", inp, opts);
  using states = Tensor.empty([s.Bt, s.nc, s.H, s.P, s.N]);
  using totals = Tensor.empty([s.Bt, s.H, s.nc]);
  const finalState = Tensor.empty([s.Bt, s.H, s.P, s.N]);
  const Y = Tensor.empty([s.Bt, s.L, s.H, s.P]);
  forwardStates(inp, s, states, totals, finalState);
  const d = dummyBuffer();
  const bufs: (Binding | null)[] = [
    inp.X.buffer,
    inp.A.buffer,
    inp.B.buffer,
    inp.C.buffer,
    d,
    states.buffer,
    d,
  ];
  dispatch(
    { file: "ssd.wgsl", entry: "chunk_scan" },
    [...bufs, null, null, Y.buffer],
    chunkParams(s),
    [s.nc, s.H, s.Bt],
  );
  return { Y, finalState };
}

/**
 * Gradients of Σ Y · dY (+ Σ finalState · dFinalState) with respect to X, A, B, C and, when given, the
 * initial state, through the chunked form (derivation in `ssd_ref.ts`, `ssdBackwardRef`). dY has Y's
 * shape (B, L, H, P); dFinalState the state's (B, H, P, N). The chunk states are recomputed.
 */
export function ssdBackward(
  inp: SsdInputs,
  dY: Tensor,
  opts: SsdOptions & { dFinalState?: Tensor } = {},
): { X: Tensor; A: Tensor; B: Tensor; C: Tensor; initialState?: Tensor } {
  const s = sizes("ssdBackward", inp, opts);
  expectShape("ssdBackward", "dY (B, L, H, P)", dY, [s.Bt, s.L, s.H, s.P]);
  if (opts.dFinalState) {
    expectShape("ssdBackward", "dFinalState (B, H, P, N)", opts.dFinalState, [s.Bt, s.H, s.P, s.N]);
  }
  const d = dummyBuffer();
  using hin = Tensor.empty([s.Bt, s.nc, s.H, s.P, s.N]);
  using totals = Tensor.empty([s.Bt, s.H, s.nc]);
  using fin = Tensor.empty([s.Bt, s.H, s.P, s.N]);
  forwardStates(inp, s, hin, totals, fin);
  // dH_c^off = Σ_l exp(cum_l) dY_l C_lᵀ, then the reverse recurrence turns it into dS_c = 𝒢_{c+1}.
  using dS = Tensor.empty([s.Bt, s.nc, s.H, s.P, s.N]);
  dispatch(
    { file: "ssd.wgsl", entry: "chunk_state", constants: { DY_C: 1 } },
    [inp.X.buffer, inp.A.buffer, inp.B.buffer, inp.C.buffer, dY.buffer, d, d, dS.buffer, totals.buffer],
    chunkParams(s),
    [s.nc, s.H, s.Bt],
  );
  const dInit = Tensor.empty([s.Bt, s.H, s.P, s.N]);
  dispatch(
    { file: "ssd_state.wgsl", entry: "state_pass_bwd" },
    [totals.buffer, dS.buffer, opts.dFinalState?.buffer ?? d, dInit.buffer],
    stateParams(s, opts.dFinalState ? 1 : 0),
    [Math.ceil((s.P * s.N) / 256), s.H, s.Bt],
  );
  const g = {
    X: Tensor.empty(inp.X.shape),
    A: Tensor.empty(inp.A.shape),
    B: Tensor.empty(inp.B.shape),
    C: Tensor.empty(inp.C.shape),
  };
  dispatch(
    { file: "ssd.wgsl", entry: "chunk_bwd" },
    [
      inp.X.buffer,
      inp.A.buffer,
      inp.B.buffer,
      inp.C.buffer,
      dY.buffer,
      hin.buffer,
      dS.buffer,
      null,
      null,
      null,
      g.X.buffer,
      g.B.buffer,
      g.C.buffer,
      g.A.buffer,
    ],
    chunkParams(s),
    [s.nc, s.H, s.Bt],
  );
  if (inp.initialState) return { ...g, initialState: dInit };
  dInit.dispose();
  return g;
}

/**
 * One token of the recurrence for decoding: updates `state` (B, H, P, N) in place,
 * state ← exp(a) · state + x Bᵀ, and returns y = state C (B, H, P). x (B, H, P); a (B, H) the
 * log-decay; B, C (B, H, N).
 */
export function ssdStateUpdate(state: Tensor, x: Tensor, a: Tensor, B: Tensor, C: Tensor): Tensor {
  const op = "ssdStateUpdate";
  if (state.shape.length !== 4) {
    throw new ShapeError(op, `expected state (B, H, P, N), got ${fmtShape(state.shape)}`);
  }
  const [Bt, H, P, N] = state.shape;
  expectShape(op, "x (B, H, P)", x, [Bt, H, P]);
  expectShape(op, "a (B, H)", a, [Bt, H]);
  expectShape(op, "B (B, H, N)", B, [Bt, H, N]);
  expectShape(op, "C (B, H, N)", C, [Bt, H, N]);
  const y = Tensor.empty([Bt, H, P]);
  const rows = Bt * H * P;
  const [gx, gy] = groupsFor(rows, 256);
  dispatch(
    { file: "ssd_state.wgsl", entry: "step" },
    [null, null, null, null, state.buffer, x.buffer, a.buffer, B.buffer, C.buffer, y.buffer],
    new Params().u32(H, P * N, 0, 0, P, N, rows, gx * 256),
    [gx, gy],
  );
  return y;
}
