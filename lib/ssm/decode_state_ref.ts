/**
 * Plain-loop references (float64) of `decode_state.ts`: the state of a Mamba-2 layer after keeping the
 * first m steps of a speculative round, from the round's checkpoint and its cached per-step inputs
 * (method.md §3.9). Layouts as in `decode_state.ts`.
 *
 * @module
 */

/** Sizes: batch B, round capacity T, heads H, head dim P, state N. */
export interface ReplayDims {
  /** Batch. */
  B: number;
  /** Round capacity (steps cached). */
  T: number;
  /** Heads. */
  H: number;
  /** Head dim. */
  P: number;
  /** State size. */
  N: number;
}

/** S = checkpoint; for t < steps: S ← exp(A_t) · S + X_t B_tᵀ. Returns (B, H, P, N). */
export function ssdReplayRef(
  checkpoint: ArrayLike<number>,
  X: ArrayLike<number>,
  A: ArrayLike<number>,
  Bs: ArrayLike<number>,
  steps: number,
  d: ReplayDims,
): Float64Array {
  const { B, T, H, P, N } = d;
  const S = Float64Array.from(checkpoint);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < steps; t++) {
      for (let h = 0; h < H; h++) {
        const decay = Math.exp(A[(b * T + t) * H + h]);
        for (let p = 0; p < P; p++) {
          const x = X[((b * T + t) * H + h) * P + p];
          for (let n = 0; n < N; n++) {
            const i = ((b * H + h) * P + p) * N + n;
            S[i] = decay * S[i] + x * Bs[((b * T + t) * H + h) * N + n];
          }
        }
      }
    }
  }
  return S;
}

/** The last W − 1 of [checkpoint[b, c, :] | xs[b, 0..steps, c]] per (b, c): (B, C, W − 1). */
export function convWindowRef(
  checkpoint: ArrayLike<number>,
  xs: ArrayLike<number>,
  steps: number,
  d: { B: number; T: number; C: number; W: number },
): Float64Array {
  const { B, T, C, W } = d;
  const out = new Float64Array(B * C * (W - 1));
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      const seq = [
        ...Array.from({ length: W - 1 }, (_, j) => checkpoint[(b * C + c) * (W - 1) + j]),
        ...Array.from({ length: steps }, (_, t) => xs[(b * T + t) * C + c]),
      ];
      for (let j = 0; j < W - 1; j++) out[(b * C + c) * (W - 1) + j] = seq[seq.length - (W - 1) + j];
    }
  }
  return out;
}

/**
 * Mamba-1: S = checkpoint (B, D, N); for t < steps, δ = softplus(dt_t[d] + bias[d]) (threshold 20):
 * S[d, n] ← exp(δ A[d, n]) S[d, n] + δ B_t[g(d), n] x_t[d]. x, dt (B, T, D); Bs (B, T, G, N).
 */
export function selectiveReplayRef(
  checkpoint: ArrayLike<number>,
  x: ArrayLike<number>,
  dt: ArrayLike<number>,
  Bs: ArrayLike<number>,
  A: ArrayLike<number>,
  dtBias: ArrayLike<number>,
  steps: number,
  d: { B: number; T: number; D: number; G: number; N: number },
): Float64Array {
  const { B, T, D, G, N } = d;
  const S = Float64Array.from(checkpoint);
  const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)));
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < steps; t++) {
      const bt = b * T + t;
      for (let c = 0; c < D; c++) {
        const delta = softplus(dt[bt * D + c] + dtBias[c]);
        const g = Math.floor(c / (D / G));
        for (let n = 0; n < N; n++) {
          const i = (b * D + c) * N + n;
          S[i] = Math.exp(delta * A[c * N + n]) * S[i] + delta * Bs[(bt * G + g) * N + n] * x[bt * D + c];
        }
      }
    }
  }
  return S;
}
