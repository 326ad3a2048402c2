/**
 * Decoding through a Mamba-2 mixer (method.md §3.2, §3.9): the layer's state between calls, and the
 * mixer's forward that reads and advances it. The state of one layer is
 *
 *   conv (B, C, W − 1)     the last W − 1 inputs of the depthwise conv (C = d_inner + 2·d_xb), oldest first
 *   ssm  (B, H, P, N)      the SSD state H_t
 *
 * A call of L tokens continues from it: L = 1 uses the one-token kernels (`causalConv1dStep`,
 * `ssdStateUpdate`, both in place); L > 1 (a prompt's prefill, a speculative verification) runs the
 * chunked conv and SSD with the state as initial state and keeps their final states.
 *
 * Rollback for speculative decoding: {@linkcode Mamba2Cache.begin} copies the state as the round's
 * checkpoint and from then on every call caches its per-step inputs — the conv inputs (B, T, C) and the
 * SSD inputs X = x·dt (B, T, H, P), A = A·dt (B, T, H), B (B, T, H, N); C is not needed. Keeping the first
 * m steps ({@linkcode Mamba2Cache.commit}) replays them from the checkpoint (`ssdReplay`) and takes the
 * conv window they leave (`convWindow`); no per-step state is stored. The reference release replays
 * lazily inside its next fused verification kernel; here the replay is its own small dispatch at commit.
 * The conv part plays the role of the reference's ring buffer of W − 1 + K slots, laid out per round
 * instead of circularly: the checkpoint's W − 1 inputs, then the round's; rolling back picks the window
 * that ends at the kept position (same memory, and no cost outside speculative rounds).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { causalConv1d, causalConv1dStep } from "../ssm/conv1d.ts";
import { commitMamba2, convWindow, ssdReplay } from "../ssm/decode_state.ts";
import { gatedRmsNorm } from "../ssm/gated_norm.ts";
import { ssdChunked, ssdStateUpdate } from "../ssm/ssd.ts";
import { linear } from "../autograd/ops.ts";
import { copyElements } from "../tensor/copy.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { Mamba2Dims } from "../distill/convert_mamba2.ts";
import { addSkip, sliceColumns, ssdInputs } from "../ssm/mamba2_glue.ts";
import { SPLIT_MATVEC_MAX_ROWS, splitMatvec, splitMatvecFits } from "../tensor/decode_fused.ts";
import { mamba2ConvSteps, mamba2SsdStep, type StepRecord } from "../ssm/mamba2_step.ts";
import type { Mamba2Options, Mamba2Weights } from "./mamba2_layer.ts";

/** A kept-token count in a GPU buffer: word `word` of the i32 tensor `counts`. */
export interface DeviceCount {
  /** i32 buffer. */
  counts: Tensor;
  /** Index of the count. */
  word: number;
}

interface Round {
  /** Capacity T: the most steps the round can cache. */
  T: number;
  /** Steps cached so far. */
  used: number;
  /** Length of the cache when the round began. */
  length0: number;
  ckConv: Tensor;
  ckSsm: Tensor;
  /** (B, T, C) conv inputs. */
  xs: Tensor;
  /** (B, T, H, P). */
  X: Tensor;
  /** (B, T, H). */
  A: Tensor;
  /** (B, T, H, N). */
  Bs: Tensor;
}

/** One Mamba-2 layer's decoding state for `batch` sequences (zeros: nothing seen yet). */
export class Mamba2Cache implements Disposable {
  /** (B, C, W − 1), oldest input first. */
  conv: Tensor;
  /** (B, H, P, N). */
  ssm: Tensor;
  /** Tokens consumed. */
  length = 0;
  #round: Round | null = null;
  #spare: Round | null = null;
  /** Whether the round buffers' checkpoint equals the current state (then begin copies nothing). */
  #ckValid = false;

  /** Allocates a zero state. */
  constructor(readonly batch: number, readonly dims: Mamba2Dims) {
    const C = dims.dInner + 2 * dims.dXb;
    this.conv = Tensor.zeros([batch, C, dims.convWidth - 1]);
    this.ssm = Tensor.zeros([batch, dims.nHeads, dims.headDim, dims.dState]);
  }

  /** Conv channels C = d_inner + 2·d_xb. */
  get channels(): number {
    return this.dims.dInner + 2 * this.dims.dXb;
  }

  /** Steps cached since {@linkcode begin} (0 when no round is open). */
  get roundSteps(): number {
    return this.#round?.used ?? 0;
  }

  /**
   * Opens a round of at most `steps` tokens: the current state becomes the checkpoint and later calls
   * cache their per-step inputs.
   */
  begin(steps: number): void {
    if (!Number.isInteger(steps) || steps < 1) {
      throw new ShapeError("mamba2Cache", `a round needs at least 1 step, got ${steps}`);
    }
    const { nHeads: H, headDim: P, dState: N } = this.dims;
    const B = this.batch;
    let r = this.#round ?? this.#spare;
    let fresh = false;
    if (!r || r.T < steps) {
      if (r) disposeRound(r);
      fresh = true;
      r = {
        T: steps,
        used: 0,
        length0: 0,
        ckConv: Tensor.empty(this.conv.shape),
        ckSsm: Tensor.empty(this.ssm.shape),
        xs: Tensor.empty([B, steps, this.channels]),
        X: Tensor.empty([B, steps, H, P]),
        A: Tensor.empty([B, steps, H]),
        Bs: Tensor.empty([B, steps, H, N]),
      };
    }
    r.used = 0;
    r.length0 = this.length;
    if (fresh || !this.#ckValid) {
      copyElements(this.conv, 0, r.ckConv, 0, this.conv.size);
      copyElements(this.ssm, 0, r.ckSsm, 0, this.ssm.size);
    }
    this.#ckValid = false; // the round's calls move the state on
    this.#round = r;
    this.#spare = null;
  }

  /**
   * Makes the round buffers (for rounds of up to `steps` tokens) hold the current state as their
   * checkpoint, so that the next {@linkcode begin} copies nothing (a round loop then records no copy).
   */
  prime(steps: number): void {
    this.begin(steps);
    this.#round!.used = 0;
    this.#spare = this.#round;
    this.#round = null;
    this.#ckValid = true;
  }

  /** Called by every forward through this state: the checkpoint no longer equals it. */
  touch(): void {
    this.#ckValid = false;
  }

  /**
   * Closes the round keeping its first `steps` tokens: the state becomes the one after them (replayed
   * from the checkpoint unless every cached step is kept).
   */
  commit(steps: number | DeviceCount): void {
    const r = this.#round;
    if (!r) throw new ShapeError("mamba2Cache", "commit without an open round (call begin first)");
    if (typeof steps !== "number") {
      // The count lives on the GPU: replay with masking (a count of r.used leaves the state as it is),
      // and write the new state into the checkpoint too, so the next round starts without copies.
      const d = { ...steps, max: r.used, refresh: true };
      if (this.dims.convWidth - 1 <= 8) {
        const ssd = { checkpoint: r.ckSsm, inputs: { X: r.X, A: r.A, Bs: r.Bs }, out: this.ssm };
        commitMamba2(ssd, { checkpoint: r.ckConv, xs: r.xs, out: this.conv }, d); // one dispatch
      } else {
        convWindow(r.ckConv, r.xs, d, this.conv);
        ssdReplay(r.ckSsm, { X: r.X, A: r.A, Bs: r.Bs }, d, this.ssm);
      }
      this.length = r.length0 + r.used; // an upper bound: the host does not know the count
      this.#spare = r;
      this.#round = null;
      this.#ckValid = true;
      return;
    }
    if (!Number.isInteger(steps) || steps < 0 || steps > r.used) {
      throw new ShapeError("mamba2Cache", `cannot keep ${steps} of the round's ${r.used} steps`);
    }
    if (steps < r.used) {
      convWindow(r.ckConv, r.xs, steps, this.conv);
      ssdReplay(r.ckSsm, { X: r.X, A: r.A, Bs: r.Bs }, steps, this.ssm);
    }
    this.length = r.length0 + steps;
    this.#spare = r;
    this.#round = null;
    this.#ckValid = false;
  }

  /**
   * For the fused decoding kernels (`mamba2ConvSteps`, `mamba2SsdStep`): reserves the round's next `L`
   * steps and returns where the kernels write those steps' inputs (null when no round is open).
   */
  recordSlots(L: number): StepRecord | null {
    const r = this.#round;
    if (!r) return null;
    if (r.used + L > r.T) {
      throw new ShapeError("mamba2Cache", `${r.used + L} steps exceed the round's capacity of ${r.T}`);
    }
    const slot = r.used;
    r.used += L;
    return { xs: r.xs, X: r.X, A: r.A, Bs: r.Bs, slot };
  }

  /** Caches a call's per-step inputs (rows of L steps) when a round is open. */
  record(L: number, xs: Tensor, X: Tensor, A: Tensor, Bs: Tensor): void {
    const r = this.#round;
    if (!r) return;
    if (r.used + L > r.T) {
      throw new ShapeError("mamba2Cache", `${r.used + L} steps exceed the round's capacity of ${r.T}`);
    }
    const { nHeads: H, headDim: P, dState: N } = this.dims;
    const C = this.channels;
    for (let b = 0; b < this.batch; b++) {
      const at = b * r.T + r.used;
      copyElements(xs, b * L * C, r.xs, at * C, L * C);
      copyElements(X, b * L * H * P, r.X, at * H * P, L * H * P);
      copyElements(A, b * L * H, r.A, at * H, L * H);
      copyElements(Bs, b * L * H * N, r.Bs, at * H * N, L * H * N);
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

function disposeRound(r: Round): void {
  for (const t of [r.ckConv, r.ckSsm, r.xs, r.X, r.A, r.Bs]) t.dispose();
}

/**
 * The mixer's output (B, L, d_model) for u (B, L, d_model), continuing from `cache` and advancing it by
 * L tokens; the same maths as `mamba2Forward` (which it equals on an empty cache). `fused` (decoding
 * with few rows) computes in_proj's blocks in one dispatch instead of a product and two column slices,
 * the conv over the tokens in one (`mamba2ConvSteps`) and their SSD inputs, recurrence and D skip in one
 * (`mamba2SsdStep`), both writing the round's cache themselves (no copies).
 */
export function mamba2Decode(
  u: Tensor,
  w: Mamba2Weights,
  o: Mamba2Options,
  cache: Mamba2Cache,
  fused = false,
): Tensor {
  const { dInner, dXb, nHeads: H, headDim: P, dState: N, nGroups } = o.dims;
  if (P !== N) throw new ShapeError("mamba2", `head dim ${P} ≠ state size ${N} is not supported`);
  const [Bt, L] = u.shape;
  if (Bt !== cache.batch) {
    throw new ShapeError("mamba2Decode", `input batch ${Bt} ≠ the cache's batch ${cache.batch}`);
  }
  cache.touch();
  const C = 2 * dXb + dInner;
  const cols = 2 * dInner + 2 * dXb + H;
  // fused (few rows): in_proj's z, xBC and dt blocks straight into their own tensors in one dispatch
  // (the same values as linear + the column slices); else one product and the slices.
  const split = fused && Bt * L <= SPLIT_MATVEC_MAX_ROWS && splitMatvecFits(w.inProj)
    ? splitMatvec(u, [
      { w: w.inProj, row0: 0, rows: dInner },
      { w: w.inProj, row0: dInner, rows: C },
      { w: w.inProj, row0: dInner + C, rows: H },
    ])
    : null;
  using zxbcdt = split ? split[2] : linear(u, w.inProj); // (…, cols), or dt alone (…, H) when split
  using xbcIn = split ? split[1] : sliceColumns(zxbcdt, dInner, C);
  const glue = { H, Hkv: o.kvHeads, P, N };
  if (fused && Bt * L <= SPLIT_MATVEC_MAX_ROWS && w.convBias) {
    // Few tokens (a draft step, a verification): the conv and the SSD recurrence one dispatch each,
    // the round's inputs written by the kernels (no copies), the states advanced in place.
    const rec = cache.recordSlots(L) ?? undefined;
    using xc = mamba2ConvSteps(cache.conv, xbcIn.view([Bt, L, C]), w.convWeight, w.convBias, rec);
    const dtSrc = { dtRaw: zxbcdt, dtColumn: split ? 0 : cols - H, dtBias: w.dtBias, aLog: w.aLog };
    using Y1 = mamba2SsdStep(xc.view([Bt * L, C]), dtSrc, w.D, cache.ssm, glue, rec);
    cache.length += L;
    using z1 = split ? split[0] : sliceColumns(zxbcdt, 0, dInner);
    using y1 = Y1.view([Bt, L, dInner]);
    using g1 = gatedRmsNorm(y1, z1.view([Bt, L, dInner]), w.norm, {
      eps: o.eps,
      groupSize: dInner / nGroups,
    });
    return linear(g1, w.outProj);
  }
  const convOpts = { bias: w.convBias, activation: "silu" as const };
  let xbc: Tensor;
  if (L === 1) {
    xbc = causalConv1dStep(cache.conv, xbcIn.view([Bt, C]), w.convWeight, convOpts);
  } else {
    const r = causalConv1d(xbcIn.view([Bt, L, C]), w.convWeight, { ...convOpts, initialState: cache.conv });
    // Copied into the state's own buffer (not swapped), so recorded work keeps addressing one buffer.
    copyElements(r.finalState, 0, cache.conv, 0, cache.conv.size);
    r.finalState.dispose();
    xbc = r.y;
  }
  const glueDims = { H, Hkv: o.kvHeads, P, N };
  const si = ssdInputs(
    xbc.view([Bt, L, C]),
    { dtRaw: zxbcdt, dtColumn: split ? 0 : cols - H, dtBias: w.dtBias, aLog: w.aLog },
    glueDims,
  );
  using X = si.X;
  using A = si.A;
  using Bh = si.B;
  using Ch = si.C;
  cache.record(L, xbcIn, X, A, Bh);
  let Y: Tensor;
  if (L === 1) {
    Y = ssdStateUpdate(
      cache.ssm,
      X.view([Bt, H, P]),
      A.view([Bt, H]),
      Bh.view([Bt, H, N]),
      Ch.view([Bt, H, N]),
    );
  } else {
    const r = ssdChunked({ X, A, B: Bh, C: Ch, initialState: cache.ssm }, { blockLen: o.blockLen ?? 64 });
    copyElements(r.finalState, 0, cache.ssm, 0, cache.ssm.size);
    r.finalState.dispose();
    Y = r.Y;
  }
  cache.length += L;
  addSkip(Y, xbc.view([Bt, L, C]), w.D, glueDims, true);
  xbc.dispose();
  using z = split ? split[0] : sliceColumns(zxbcdt, 0, dInner);
  using y = Y.view([Bt, L, dInner]);
  using g = gatedRmsNorm(y, z.view([Bt, L, dInner]), w.norm, { eps: o.eps, groupSize: dInner / nGroups });
  Y.dispose();
  return linear(g, w.outProj);
}
