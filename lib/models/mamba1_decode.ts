/**
 * Decoding through a Mamba-1 mixer (method.md §3.3, §3.9): the layer's state between calls and the
 * mixer's forward that reads and advances it; the maths of `mamba1Forward`. The state of one layer:
 *
 *   conv (B, D, W − 1)   the last W − 1 conv inputs (x repeated to d_inner before the conv), oldest first
 *   ssm  (B, D, N)       the selective-scan state, D = d_inner
 *
 * L = 1 uses the one-token kernels (`causalConv1dStep`, `selectiveStateUpdate`, in place); L > 1 runs
 * the chunked conv and scan from the state and keeps their final states.
 *
 * Rollback for speculative decoding as `Mamba2Cache`: `begin` copies the state as the checkpoint, calls
 * then cache their per-step inputs — the conv inputs (B, T, D), x after the conv (B, T, D), dt before
 * the scan's bias and softplus (B, T, D) and B (B, T, G, N) (the inputs of `selective_state_update`'s
 * recurrence; C is not needed) — and `commit(m)` replays the first m from the checkpoint
 * (`selectiveReplay`, `convWindow`).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { linear } from "../autograd/ops.ts";
import { causalConv1d, causalConv1dStep } from "../ssm/conv1d.ts";
import { convWindow, selectiveReplay } from "../ssm/decode_state.ts";
import { gatherChannels, negExp } from "../ssm/mamba1_glue.ts";
import { selectiveScan, selectiveStateUpdate } from "../ssm/selective_scan.ts";
import { copyElements } from "../tensor/copy.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";
import type { Mamba1Dims } from "../distill/convert_mamba1.ts";
import type { Mamba1Weights } from "./mamba1_layer.ts";
import type { DeviceCount } from "./mamba2_decode.ts";

interface Round {
  T: number;
  used: number;
  length0: number;
  ckConv: Tensor;
  ckSsm: Tensor;
  /** (B, T, D) conv inputs, (B, T, D) x after the conv, (B, T, D) raw dt, (B, T, G, N) B. */
  xin: Tensor;
  x: Tensor;
  dt: Tensor;
  Bs: Tensor;
}

function disposeRound(r: Round): void {
  for (const t of [r.ckConv, r.ckSsm, r.xin, r.x, r.dt, r.Bs]) t.dispose();
}

/** One Mamba-1 layer's decoding state for `batch` sequences (zeros: nothing seen yet). */
export class Mamba1Cache implements Disposable {
  /** (B, D, W − 1), oldest input first. */
  conv: Tensor;
  /** (B, D, N). */
  ssm: Tensor;
  /** Tokens consumed. */
  length = 0;
  #round: Round | null = null;
  #spare: Round | null = null;

  /** Allocates a zero state for the layer with weights `w` (its A and dt bias drive the replay). */
  constructor(
    readonly batch: number,
    readonly dims: Mamba1Dims,
    readonly weights: Pick<Mamba1Weights, "aLog" | "dtBias">,
  ) {
    this.conv = Tensor.zeros([batch, dims.dInner, dims.convWidth - 1]);
    this.ssm = Tensor.zeros([batch, dims.dInner, dims.dState]);
  }

  /** Groups G = d_inner / N of B and C. */
  get groups(): number {
    return this.dims.dInner / this.dims.dState;
  }

  /** Steps cached since {@linkcode begin} (0 when no round is open). */
  get roundSteps(): number {
    return this.#round?.used ?? 0;
  }

  /** Opens a round of at most `steps` tokens (the current state is its checkpoint). */
  begin(steps: number): void {
    if (!Number.isInteger(steps) || steps < 1) {
      throw new ShapeError("mamba1Cache", `a round needs at least 1 step, got ${steps}`);
    }
    const { dInner: D, dState: N } = this.dims;
    const B = this.batch;
    let r = this.#round ?? this.#spare;
    if (!r || r.T < steps) {
      if (r) disposeRound(r);
      r = {
        T: steps,
        used: 0,
        length0: 0,
        ckConv: Tensor.empty(this.conv.shape),
        ckSsm: Tensor.empty(this.ssm.shape),
        xin: Tensor.empty([B, steps, D]),
        x: Tensor.empty([B, steps, D]),
        dt: Tensor.empty([B, steps, D]),
        Bs: Tensor.empty([B, steps, this.groups, N]),
      };
    }
    r.used = 0;
    r.length0 = this.length;
    copyElements(this.conv, 0, r.ckConv, 0, this.conv.size);
    copyElements(this.ssm, 0, r.ckSsm, 0, this.ssm.size);
    this.#round = r;
    this.#spare = null;
  }

  /** Closes the round keeping its first `steps` tokens (replayed from the checkpoint unless all are kept). */
  commit(steps: number | DeviceCount): void {
    const w = this.weights;
    const r = this.#round;
    if (!r) throw new ShapeError("mamba1Cache", "commit without an open round (call begin first)");
    if (typeof steps !== "number") {
      // The count lives on the GPU: replay with masking (a count of r.used leaves the state as it is).
      const d = { ...steps, max: r.used };
      convWindow(r.ckConv, r.xin, d, this.conv);
      using A = negExp(w.aLog);
      selectiveReplay(r.ckSsm, { x: r.x, dt: r.dt, Bs: r.Bs, A, dtBias: w.dtBias }, d, this.ssm);
      this.length = r.length0 + r.used; // an upper bound: the host does not know the count
      this.#spare = r;
      this.#round = null;
      return;
    }
    if (!Number.isInteger(steps) || steps < 0 || steps > r.used) {
      throw new ShapeError("mamba1Cache", `cannot keep ${steps} of the round's ${r.used} steps`);
    }
    if (steps < r.used) {
      convWindow(r.ckConv, r.xin, steps, this.conv);
      using A = negExp(w.aLog);
      selectiveReplay(r.ckSsm, { x: r.x, dt: r.dt, Bs: r.Bs, A, dtBias: w.dtBias }, steps, this.ssm);
    }
    this.length = r.length0 + steps;
    this.#spare = r;
    this.#round = null;
  }

  /** Caches a call's per-step inputs (each (B, L, ·) channels-last) when a round is open. */
  record(L: number, xin: Tensor, x: Tensor, dt: Tensor, Bs: Tensor): void {
    const r = this.#round;
    if (!r) return;
    if (r.used + L > r.T) {
      throw new ShapeError("mamba1Cache", `${r.used + L} steps exceed the round's capacity of ${r.T}`);
    }
    const D = this.dims.dInner;
    const GN = this.groups * this.dims.dState;
    for (let b = 0; b < this.batch; b++) {
      const at = b * r.T + r.used;
      copyElements(xin, b * L * D, r.xin, at * D, L * D);
      copyElements(x, b * L * D, r.x, at * D, L * D);
      copyElements(dt, b * L * D, r.dt, at * D, L * D);
      copyElements(Bs, b * L * GN, r.Bs, at * GN, L * GN);
    }
    r.used += L;
  }

  /** Frees the state and the round buffers. */
  [Symbol.dispose](): void {
    this.conv.dispose();
    this.ssm.dispose();
    if (this.#round) disposeRound(this.#round);
    if (this.#spare) disposeRound(this.#spare);
    this.#round = this.#spare = null;
  }
}

/**
 * The Mamba-1 mixer's output (B, L, d_model) for u (B, L, d_model), continuing from `cache` and
 * advancing it by L tokens (equal to `mamba1Forward` on an empty cache).
 */
export function mamba1Decode(u: Tensor, w: Mamba1Weights, d: Mamba1Dims, cache: Mamba1Cache): Tensor {
  if (u.shape.length !== 3 || u.shape[2] !== d.dModel) {
    throw new ShapeError("mamba1Decode", `expected u (B, L, ${d.dModel}), got ${fmtShape(u.shape)}`);
  }
  const [Bt, L] = u.shape;
  if (Bt !== cache.batch) {
    throw new ShapeError("mamba1Decode", `input batch ${Bt} ≠ the cache's batch ${cache.batch}`);
  }
  const N = d.dState;
  const D = d.dInner;
  const r = D / d.dXb;
  const G = D / N;
  // Channels-last (B, L, ·) throughout; the chunked scan wants channels-first (B, ·, L).
  using x0 = linear(u, w.inProjX);
  using xin = gatherChannels(x0, { block: N, repeat: r, from: "last", to: "last" });
  const convOpts = { bias: w.convBias, activation: "silu" as const };
  let xcOwned: Tensor; // (B, D) after a step, (B, L, D) after the chunked conv
  if (L === 1) {
    xcOwned = causalConv1dStep(cache.conv, xin.view([Bt, D]), w.convWeight, convOpts);
  } else {
    const c = causalConv1d(xin, w.convWeight, { ...convOpts, initialState: cache.conv });
    // Copied into the state's own buffer (not swapped), so recorded work keeps addressing one buffer.
    copyElements(c.finalState, 0, cache.conv, 0, cache.conv.size);
    c.finalState.dispose();
    xcOwned = c.y;
  }
  using xc = xcOwned.view([Bt, L, D]);
  using z = linear(u, w.inProjZ);
  using b0 = linear(u, w.bProj);
  using bl = gatherChannels(b0, { block: N, repeat: r, from: "last", to: "last" });
  using cl = linear(u, w.cProj);
  using dtLow = linear(u, w.dtDown);
  using dt = linear(dtLow, w.dtProj, w.dtBias);
  using A = negExp(w.aLog);
  cache.record(L, xin, xc, dt, bl);
  let yOwned: Tensor;
  if (L === 1) {
    const v = (t: Tensor) => t.view([Bt, D]);
    const g = (t: Tensor) => t.view([Bt, G, N]);
    yOwned = selectiveStateUpdate(cache.ssm, v(xc), v(dt), A, g(bl), g(cl), {
      D: w.D,
      z: v(z),
      dtBias: w.dtBias,
      dtSoftplus: true,
    });
  } else {
    const first = (t: Tensor) => gatherChannels(t, { from: "last", to: "first" });
    using xs = first(xc);
    using zs = first(z);
    using bs = first(bl);
    using cs = first(cl);
    using dts = first(dt);
    const s = selectiveScan(
      {
        u: xs,
        delta: dts,
        A,
        B: bs.view([Bt, G, N, L]),
        C: cs.view([Bt, G, N, L]),
        D: w.D,
        z: zs,
        deltaBias: w.dtBias,
      },
      { deltaSoftplus: true, initialState: cache.ssm },
    );
    copyElements(s.lastState, 0, cache.ssm, 0, cache.ssm.size);
    s.lastState.dispose();
    yOwned = gatherChannels(s.y, { from: "first", to: "last" });
    s.y.dispose();
  }
  xcOwned.dispose();
  cache.length += L;
  using yl = yOwned.view([Bt, L, D]);
  const out = linear(yl, w.outProj);
  yOwned.dispose();
  return out;
}
