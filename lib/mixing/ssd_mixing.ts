/**
 * The Mamba-2 / SSD mixing matrix on the GPU (`kernels/mixing.wgsl`), forward and backward: per
 * (batch b, head h), rows t = output and columns s = source,
 *
 *   M[t][s] = (C_t·B_s) · exp(Σ_{s<r≤t} A_r) · dt_s + D_h·[t = s]   for s ≤ t, 0 above,
 *
 * so that y = M x equals SSD(X = x·dt, A, B, C) + D·x. Shapes: A, dt (B, T, H) (A the per-step
 * log-decay, already times dt, as the SSD kernel takes it); B, C (B, T, H, N) per head; D (H);
 * M (B, H, T, T). C Bᵀ is the strided matmul of `lib/tensor`; the decay mask, its gradient and the
 * decay's gradient are the kernel's. The float64 specification is `ssdMixingRef` /
 * `ssdMixingBackwardRef` (`mixing_ref.ts`). MOHAWK stage 1 fits this M to attention probabilities.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dummyBuffer } from "../gpu/buffers.ts";
import { gpu } from "../gpu/device.ts";
import { dispatch, Params } from "../gpu/commands.ts";
import { matmulStrided } from "../tensor/matmul.ts";
import { expectShape, fmtShape, Tensor } from "../tensor/tensor.ts";

/** Inputs of {@linkcode ssdMixingMatrixForward}. */
export interface SsdMixingInputs {
  /** Per-step log-decay A (B, T, H), already times dt. */
  A: Tensor;
  /** B (B, T, H, N). */
  B: Tensor;
  /** C (B, T, H, N). */
  C: Tensor;
  /** Column scale dt (B, T, H) (the Δ_s of Mamba-2's B̄ = Δ B); 1 when absent. */
  dt?: Tensor;
  /** Skip D (H), added on the diagonal (MOHAWK compares matrices with D included). */
  D?: Tensor;
}

/** Gradients of Σ M · dM; dt and D are present when they were inputs. */
export interface SsdMixingGrads {
  /** dA (B, T, H). */
  A: Tensor;
  /** dB (B, T, H, N). */
  B: Tensor;
  /** dC (B, T, H, N). */
  C: Tensor;
  /** d dt (B, T, H). */
  dt?: Tensor;
  /** dD (H). */
  D?: Tensor;
}

interface Sizes {
  Bt: number;
  T: number;
  H: number;
  N: number;
}

function sizes(op: string, inp: SsdMixingInputs): Sizes {
  if (inp.B.shape.length !== 4) {
    throw new ShapeError(op, `expected B (B, T, H, N), got ${fmtShape(inp.B.shape)}`);
  }
  const [Bt, T, H, N] = inp.B.shape;
  expectShape(op, "A (B, T, H)", inp.A, [Bt, T, H]);
  expectShape(op, "C (B, T, H, N)", inp.C, [Bt, T, H, N]);
  if (inp.dt) expectShape(op, "dt (B, T, H)", inp.dt, [Bt, T, H]);
  if (inp.D) expectShape(op, "D (H)", inp.D, [H]);
  if (T < 1 || N < 1 || H < 1 || Bt < 1) throw new ShapeError(op, `empty B ${fmtShape(inp.B.shape)}`);
  const bytes = Bt * H * T * T * 4;
  if (bytes > gpu().maxBindingBytes) {
    throw new ShapeError(
      op,
      `M (B, H, T, T) = ${fmtShape([Bt, H, T, T])} needs ${bytes} bytes, more than one GPU binding ` +
        `(${gpu().maxBindingBytes}): split the batch or the heads`,
    );
  }
  if (Bt * H > 65535 || Math.ceil(T / 64) > 65535) {
    throw new ShapeError(op, `grid too large for ${fmtShape([Bt, H, T])}`);
  }
  return { Bt, T, H, N };
}

function params(s: Sizes, inp: SsdMixingInputs): Params {
  return new Params().u32(s.T, s.H, s.N, s.Bt, inp.dt ? 1 : 0, inp.D ? 1 : 0);
}

/** Out (B, H, T, T) = C Bᵀ per (b, h), read in place from the (B, T, H, N) layouts. */
function gram(s: Sizes, C: Tensor, B: Tensor, out: Tensor): void {
  const { Bt, T, H, N } = s;
  matmulStrided({
    M: T,
    N: T,
    K: N,
    batch: [Bt, H],
    a: { t: C, s0: T * H * N, s1: N, rowStride: H * N, colStride: 1 },
    b: { t: B, s0: T * H * N, s1: N, rowStride: 1, colStride: H * N },
    c: { t: out, s0: H * T * T, s1: T * T, rowStride: T, colStride: 1 },
  });
}

/**
 * The mixing matrix M (B, H, T, T) (see the module doc).
 *
 * @example
 * ```ts ignore
 * using M = ssdMixingMatrixForward({ A, B, C, dt, D }); // (B, H, T, T)
 * ```
 */
export function ssdMixingMatrixForward(inp: SsdMixingInputs): Tensor {
  const s = sizes("ssdMixingMatrix", inp);
  const M = Tensor.empty([s.Bt, s.H, s.T, s.T]);
  gram(s, inp.C, inp.B, M);
  const d = dummyBuffer();
  dispatch(
    { file: "mixing.wgsl", entry: "mask_fwd" },
    [M.buffer, inp.A.buffer, inp.dt?.buffer ?? d, inp.D?.buffer ?? d],
    params(s, inp),
    [Math.ceil(s.T / 64), s.H, s.Bt],
  );
  return M;
}

/**
 * Gradients of Σ M · dM with respect to A, B, C (and dt, D when given), dM (B, H, T, T):
 * K = dM ∘ L ∘ w, dC = K B, dB = Kᵀ C, ddt_s = Σ_t dM G L, dA_r = Σ_{k<r} (B_k·dB_k − C_k·dC_k),
 * dD_h = Σ_{b,t} dM[t][t] (derivation in `mixing_ref.ts`).
 */
export function ssdMixingMatrixBackward(inp: SsdMixingInputs, dM: Tensor): SsdMixingGrads {
  const s = sizes("ssdMixingMatrixBackward", inp);
  const { Bt, T, H, N } = s;
  expectShape("ssdMixingMatrixBackward", "dM (B, H, T, T)", dM, [Bt, H, T, T]);
  const d = dummyBuffer();
  const pr = params(s, inp);
  using K = Tensor.empty([Bt, H, T, T]);
  gram(s, inp.C, inp.B, K);
  const dt = inp.dt ? Tensor.empty([Bt, T, H]) : undefined;
  // Without dt the read-only dummy binds dt, so ddt (written, unused) needs a buffer of its own.
  using noDdt = inp.dt ? undefined : Tensor.empty([4]);
  dispatch(
    { file: "mixing.wgsl", entry: "mask_bwd" },
    [K.buffer, inp.A.buffer, inp.dt?.buffer ?? d, null, dM.buffer, (dt ?? noDdt)!.buffer],
    pr,
    [Math.ceil(T / 64), H, Bt],
  );
  const dB = Tensor.empty([Bt, T, H, N]);
  const dC = Tensor.empty([Bt, T, H, N]);
  const bhtn = { s0: T * H * N, s1: N, rowStride: H * N, colStride: 1 };
  // dC[b, :, h] (T, N) = K (T, T) · B[b, :, h] (T, N)
  matmulStrided({
    M: T,
    N,
    K: T,
    batch: [Bt, H],
    a: { t: K, s0: H * T * T, s1: T * T, rowStride: T, colStride: 1 },
    b: { t: inp.B, ...bhtn },
    c: { t: dC, ...bhtn },
  });
  // dB[b, :, h] (T, N) = Kᵀ (T, T) · C[b, :, h] (T, N)
  matmulStrided({
    M: T,
    N,
    K: T,
    batch: [Bt, H],
    a: { t: K, s0: H * T * T, s1: T * T, rowStride: 1, colStride: T },
    b: { t: inp.C, ...bhtn },
    c: { t: dB, ...bhtn },
  });
  const dA = Tensor.empty([Bt, T, H]);
  const dD = inp.D ? Tensor.empty([H]) : undefined;
  dispatch(
    { file: "mixing.wgsl", entry: "decay_bwd" },
    [
      null,
      null,
      null,
      null,
      dM.buffer,
      null,
      inp.B.buffer,
      inp.C.buffer,
      dB.buffer,
      dC.buffer,
      dA.buffer,
      dD?.buffer ?? d,
    ],
    pr,
    [Math.ceil(H / 64)],
  );
  return { A: dA, B: dB, C: dC, dt, D: dD };
}
