/**
 * Mixing matrices as plain loops in float64: the specification of every mixer's M (T × T per head or
 * channel, rows = output t, columns = source s) such that y = M · x (method.md §1). They are what the
 * GPU kernel (`kernels/mixing.wgsl`) and the model-level helpers are tested against.
 *
 * Conventions, per head h (or channel d), 0 ≤ s ≤ t < T, and M[t][s] = 0 for s > t:
 *   softmax attention   M[t][s] = softmax_s(q_t·k_s · scale)          (q, k after RoPE; rows sum to 1)
 *   linear attention    M[t][s] = q_t·k_s                            (no normaliser, no RoPE, no scale)
 *   Mamba-2 / SSD       M[t][s] = (C_t·B_s) · exp(Σ_{s<r≤t} A_r) · dt_s  + D_h·[t = s]
 *                       with A the per-step log-decay already times dt (A_r = −exp(A_log)·dt_r, the
 *                       SSD kernel's input); y = M x equals SSD(X = x·dt, A, B, C) + D·x
 *   Mamba-1, channel d  M[t][s] = Σ_n C_t[n] B_s[n] · exp(Σ_{s<r≤t} Δ_r A[d,n]) · Δ_s  + D[d]·[t = s]
 *   discrete Mamba-2    M[t][s] = (C_t·B_s) · exp(Σ_{s<r≤t} −softplus(Â_r))  + D_h·[t = s]
 *                       (Phi-Mamba `materialize_mixer`: no Δ_s factor)
 * GQA: query head h reads key/value head ⌊h·H_kv/H⌋. Decays are running sums down each column (the
 * stable segsum of `ssd_minimal.py`), never differences of cumulative sums.
 *
 * Shapes (outermost first): q (B, T, H, P), k (B, T, H_kv, P); A, dt (B, T, H); B, C (B, T, H, N) per
 * head; D (H); results (B, H, T, T). Mamba-1 uses the selective-scan layouts: Δ (B, D, T), A (D, N),
 * B, C (B, G, N, T); result (B, D, T, T).
 *
 * @module
 */
import { softplus } from "./_numerics.ts";

/** Sizes of attention-style inputs: batch, length T, query heads H, kv heads, head dim P. */
export interface AttentionMixDims {
  /** Batch size. */
  batch: number;
  /** Sequence length T. */
  T: number;
  /** Query heads H. */
  H: number;
  /** Key/value heads (H must be a multiple); default H. */
  Hkv?: number;
  /** Head dimension P. */
  P: number;
}

/** Sizes of SSD-style inputs: batch, length T, heads H, state size N. */
export interface SsdMixDims {
  /** Batch size. */
  batch: number;
  /** Sequence length T. */
  T: number;
  /** Heads H. */
  H: number;
  /** State size N. */
  N: number;
}

/** Inputs of the Mamba-2 / SSD mixing matrix (layouts in the module doc). */
export interface SsdMixInputs {
  /** Sizes. */
  dims: SsdMixDims;
  /** Per-step log-decay A (B, T, H), already times dt. */
  A: ArrayLike<number>;
  /** B (B, T, H, N). */
  B: ArrayLike<number>;
  /** C (B, T, H, N). */
  C: ArrayLike<number>;
  /** Column scale dt (B, T, H); 1 when absent. */
  dt?: ArrayLike<number>;
  /** Skip D (H) on the diagonal; 0 when absent. */
  D?: ArrayLike<number>;
}

/** Gradients of Σ M · dM with respect to the inputs of {@linkcode ssdMixingRef}. */
export interface SsdMixGrads {
  /** dA (B, T, H). */
  A: Float64Array;
  /** dB (B, T, H, N). */
  B: Float64Array;
  /** dC (B, T, H, N). */
  C: Float64Array;
  /** Present when dt was given. */
  dt?: Float64Array;
  /** Present when D was given. */
  D?: Float64Array;
}

function dotAt(u: ArrayLike<number>, i: number, v: ArrayLike<number>, j: number, n: number): number {
  let s = 0;
  for (let k = 0; k < n; k++) s += u[i + k] * v[j + k];
  return s;
}

function kvHead(h: number, H: number, Hkv: number): number {
  return Math.floor(h * Hkv / H);
}

/**
 * Causal softmax attention probabilities (B, H, T, T) from q (B, T, H, P) and k (B, T, H_kv, P),
 * both already rotated; `scale` defaults to 1/√P.
 */
export function softmaxAttentionMixingRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  dims: AttentionMixDims,
  scale: number = 1 / Math.sqrt(dims.P),
): Float64Array {
  const { batch, T, H, P } = dims;
  const Hkv = dims.Hkv ?? H;
  const M = new Float64Array(batch * H * T * T);
  const row = new Float64Array(T);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const g = kvHead(h, H, Hkv);
      for (let t = 0; t < T; t++) {
        let m = -Infinity;
        for (let s = 0; s <= t; s++) {
          row[s] = scale * dotAt(q, ((b * T + t) * H + h) * P, k, ((b * T + s) * Hkv + g) * P, P);
          m = Math.max(m, row[s]);
        }
        let z = 0;
        for (let s = 0; s <= t; s++) z += Math.exp(row[s] - m);
        const base = ((b * H + h) * T + t) * T;
        for (let s = 0; s <= t; s++) M[base + s] = Math.exp(row[s] - m) / z;
      }
    }
  }
  return M;
}

/**
 * Causal linear attention as MambaInLlama reads it (method.md §1): M[t][s] = q_t·k_s for s ≤ t, with
 * φ = identity, no normaliser, no 1/√P and no RoPE. q (B, T, H, P), k (B, T, H_kv, P) un-rotated.
 */
export function linearAttentionMixingRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  dims: AttentionMixDims,
): Float64Array {
  const { batch, T, H, P } = dims;
  const Hkv = dims.Hkv ?? H;
  const M = new Float64Array(batch * H * T * T);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const g = kvHead(h, H, Hkv);
      for (let t = 0; t < T; t++) {
        for (let s = 0; s <= t; s++) {
          M[((b * H + h) * T + t) * T + s] = dotAt(
            q,
            ((b * T + t) * H + h) * P,
            k,
            ((b * T + s) * Hkv + g) * P,
            P,
          );
        }
      }
    }
  }
  return M;
}

/**
 * The Mamba-2 / SSD mixing matrix (B, H, T, T):
 *   M[t][s] = (C_t·B_s) · exp(Σ_{s<r≤t} A_r) · dt_s + D_h·[t = s]   (s ≤ t)
 * The decay runs down each column s as a sum started at 0 on the diagonal (stable segsum).
 */
export function ssdMixingRef(inp: SsdMixInputs): Float64Array {
  const { batch, T, H, N } = inp.dims;
  const M = new Float64Array(batch * H * T * T);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const base = (b * H + h) * T * T;
      for (let s = 0; s < T; s++) {
        const w = inp.dt ? inp.dt[(b * T + s) * H + h] : 1;
        let seg = 0;
        for (let t = s; t < T; t++) {
          if (t > s) seg += inp.A[(b * T + t) * H + h];
          const cb = dotAt(inp.C, ((b * T + t) * H + h) * N, inp.B, ((b * T + s) * H + h) * N, N);
          M[base + t * T + s] = cb * Math.exp(seg) * w;
        }
        if (inp.D) M[base + s * T + s] += inp.D[h];
      }
    }
  }
  return M;
}

/**
 * Gradients of Σ M · dM through {@linkcode ssdMixingRef}, written out term by term. With
 * G[t][s] = C_t·B_s, L[t][s] = exp(Σ_{s<r≤t} A_r), w_s = dt_s and K = dM ∘ L ∘ w (lower triangle):
 *   dC_t = Σ_{s≤t} K[t][s] B_s,   dB_s = Σ_{t≥s} K[t][s] C_t,   ddt_s = Σ_{t≥s} dM[t][s] G[t][s] L[t][s]
 *   dA_r = Σ_{t≥r} Σ_{s<r} K[t][s] G[t][s]   (A_r enters every entry whose decay spans r)
 *   dD_h = Σ_{b,t} dM[t][t]
 */
export function ssdMixingBackwardRef(inp: SsdMixInputs, dM: ArrayLike<number>): SsdMixGrads {
  const { batch, T, H, N } = inp.dims;
  const g: SsdMixGrads = {
    A: new Float64Array(inp.A.length),
    B: new Float64Array(inp.B.length),
    C: new Float64Array(inp.C.length),
    dt: inp.dt ? new Float64Array(inp.dt.length) : undefined,
    D: inp.D ? new Float64Array(H) : undefined,
  };
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const base = (b * H + h) * T * T;
      const seg = (t: number, s: number) => {
        let a = 0;
        for (let r = s + 1; r <= t; r++) a += inp.A[(b * T + r) * H + h];
        return a;
      };
      for (let t = 0; t < T; t++) {
        const ct = ((b * T + t) * H + h) * N;
        if (g.D) g.D[h] += dM[base + t * T + t];
        for (let s = 0; s <= t; s++) {
          const bs = ((b * T + s) * H + h) * N;
          const w = inp.dt ? inp.dt[(b * T + s) * H + h] : 1;
          const L = Math.exp(seg(t, s));
          const G = dotAt(inp.C, ct, inp.B, bs, N);
          const d = dM[base + t * T + s];
          const K = d * L * w;
          for (let n = 0; n < N; n++) {
            g.C[ct + n] += K * inp.B[bs + n];
            g.B[bs + n] += K * inp.C[ct + n];
          }
          if (g.dt) g.dt[(b * T + s) * H + h] += d * G * L;
          for (let r = s + 1; r <= t; r++) g.A[(b * T + r) * H + h] += K * G;
        }
      }
    }
  }
  return g;
}

/** Inputs of the Mamba-1 (selective scan) mixing matrices, in the selective-scan layouts. */
export interface Mamba1MixInputs {
  /** Batch, channels D, length T, state N, groups G of B and C. */
  dims: { batch: number; D: number; T: number; N: number; G: number };
  /** Raw time step (B, D, T); `deltaBias` and `deltaSoftplus` turn it into Δ as the scan does. */
  delta: ArrayLike<number>;
  /** A (D, N), negative. */
  A: ArrayLike<number>;
  /** B (B, G, N, T). */
  B: ArrayLike<number>;
  /** C (B, G, N, T). */
  C: ArrayLike<number>;
  /** Skip D (D) on the diagonal. */
  D?: ArrayLike<number>;
  /** δ bias (D), added before the softplus. */
  deltaBias?: ArrayLike<number>;
  /** Δ = softplus(δ + bias) (threshold 20), as `delta_softplus` of the scan. */
  deltaSoftplus?: boolean;
}

/**
 * Mamba-1's per-channel mixing matrices (B, D, T, T) ("hidden attention"): for channel d in group
 * g = ⌊d/(D/G)⌋,
 *   M_d[t][s] = Σ_n C_t[n] B_s[n] · exp(Σ_{s<r≤t} Δ_r A[d,n]) · Δ_s + D[d]·[t = s],
 * so that the scan's output without the gate is y_d = M_d u_d.
 */
export function mamba1MixingRef(inp: Mamba1MixInputs): Float64Array {
  const { batch, D, T, N, G } = inp.dims;
  const M = new Float64Array(batch * D * T * T);
  const delta = new Float64Array(T);
  const seg = new Float64Array(N);
  for (let b = 0; b < batch; b++) {
    for (let d = 0; d < D; d++) {
      const g = Math.floor(d / (D / G));
      const bc = (n: number) => ((b * G + g) * N + n) * T;
      for (let t = 0; t < T; t++) {
        const raw = inp.delta[(b * D + d) * T + t] + (inp.deltaBias ? inp.deltaBias[d] : 0);
        delta[t] = inp.deltaSoftplus ? softplus(raw) : raw;
      }
      const base = (b * D + d) * T * T;
      for (let s = 0; s < T; s++) {
        seg.fill(0);
        for (let t = s; t < T; t++) {
          let m = 0;
          for (let n = 0; n < N; n++) {
            if (t > s) seg[n] += delta[t] * inp.A[d * N + n];
            m += inp.C[bc(n) + t] * inp.B[bc(n) + s] * Math.exp(seg[n]);
          }
          M[base + t * T + s] = m * delta[s];
        }
        if (inp.D) M[base + s * T + s] += inp.D[d];
      }
    }
  }
  return M;
}

/**
 * MOHAWK's discrete Mamba-2 mixer (`materialize_mixer`, method.md §4.1), (B, H, T, T):
 *   M[t][s] = (C_t·B_s) · exp(Σ_{s<r≤t} −softplus(Â_r)) + D_h·[t = s],
 * with Â (B, T, H) the raw per-token decay logits: a_t = σ(−Â_t) and no Δ_s factor.
 */
export function discreteMamba2MixingRef(
  Ahat: ArrayLike<number>,
  B: ArrayLike<number>,
  C: ArrayLike<number>,
  dims: SsdMixDims,
  D?: ArrayLike<number>,
): Float64Array {
  const A = Float64Array.from(Ahat, (a) => -softplus(a));
  return ssdMixingRef({ dims, A, B, C, D });
}

/**
 * y = M x per (b, h): M (B, H, T, T) applied to x (B, T, H, P) (heads of M pick rows of x by
 * `headOf`, default the identity), returns (B, T, H, P). The check that a materialised matrix is the
 * mixer: y must equal the scan's or attention's own output.
 */
export function applyMixingRef(
  M: ArrayLike<number>,
  x: ArrayLike<number>,
  dims: { batch: number; T: number; H: number; P: number; Hx?: number },
): Float64Array {
  const { batch, T, H, P } = dims;
  const Hx = dims.Hx ?? H;
  const y = new Float64Array(batch * T * H * P);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const g = kvHead(h, H, Hx);
      for (let t = 0; t < T; t++) {
        for (let s = 0; s <= t; s++) {
          const m = M[((b * H + h) * T + t) * T + s];
          for (let p = 0; p < P; p++) {
            y[((b * T + t) * H + h) * P + p] += m * x[((b * T + s) * Hx + g) * P + p];
          }
        }
      }
    }
  }
  return y;
}
