/**
 * Plain-loop references (float64) of the Mamba-2 SSD ("state space duality") scan: the naive recurrence,
 * the chunked algorithm of `ssd_minimal_discrete` side by side with it, the chunked backward, the
 * one-token step and the materialised mixing matrix. They are the specification that
 * `kernels/ssd.wgsl` and `kernels/ssd_state.wgsl` are tested against.
 *
 * Ground truth: `ssd_minimal_discrete` and `segsum` (`mamba_ssm/modules/ssd_minimal.py`, state-spaces/mamba
 * e9594ce); method.md §2.2. Per (batch b, head h), with the state H_t ∈ R^{P×N}:
 *   H_t = exp(A_t) · H_{t−1} + X_t B_tᵀ        (H_{−1} = the initial state, or 0)
 *   Y_t = H_t C_t
 * Shapes use the paper's letters, outermost first: X, Y (B, L, H, P); A (B, L, H), the log-decay per step
 * (already times dt); B, C (B, L, H, N) (per head: the caller expands groups); states (B, H, P, N);
 * Q the chunk length. D·x is not part of the op (the Mamba-2 layer adds it).
 *
 * @module
 */

/** Sizes of an SSD scan: batch, length L, heads H, head dim P, state size N. */
export interface SsdDims {
  /** Batch size (the paper's B; spelt out to differ from the input B). */
  batch: number;
  /** Sequence length. */
  L: number;
  /** Heads. */
  H: number;
  /** Head dimension (the value width). */
  P: number;
  /** State size (the key width). */
  N: number;
}

/** Inputs of the references, flat row-major arrays in the layouts of the module doc. */
export interface SsdRefInputs {
  /** Sizes. */
  dims: SsdDims;
  /** X (B, L, H, P). */
  X: ArrayLike<number>;
  /** Log-decay A (B, L, H). */
  A: ArrayLike<number>;
  /** B (B, L, H, N). */
  B: ArrayLike<number>;
  /** C (B, L, H, N). */
  C: ArrayLike<number>;
  /** State before t = 0 (B, H, P, N); zeros when absent. */
  initialState?: ArrayLike<number>;
}

/** Outputs of the forward references: Y (B, L, H, P) and the final state H_{L−1} (B, H, P, N). */
export interface SsdRefOutputs {
  Y: Float64Array;
  finalState: Float64Array;
}

/** Gradients of Σ Y · dY (+ Σ finalState · dFinalState), in the layouts of the inputs. */
export interface SsdRefGrads {
  X: Float64Array;
  A: Float64Array;
  B: Float64Array;
  C: Float64Array;
  /** Present when an initial state was given. */
  initialState?: Float64Array;
}

/** Element offsets of (b, t, h) rows in the (B, L, H, ·) layouts, and of (b, h) states. */
function at(d: SsdDims) {
  return {
    x: (b: number, t: number, h: number) => ((b * d.L + t) * d.H + h) * d.P,
    bc: (b: number, t: number, h: number) => ((b * d.L + t) * d.H + h) * d.N,
    a: (b: number, t: number, h: number) => (b * d.L + t) * d.H + h,
    st: (b: number, h: number) => (b * d.H + h) * d.P * d.N,
  };
}

function dot(u: ArrayLike<number>, i: number, v: ArrayLike<number>, j: number, n: number): number {
  let s = 0;
  for (let k = 0; k < n; k++) s += u[i + k] * v[j + k];
  return s;
}

/**
 * The naive recurrence, one step at a time: H_t = exp(A_t) H_{t−1} + X_t B_tᵀ, Y_t = H_t C_t.
 * O(L·P·N) per (b, h); the slowest and plainest form, the one the others must equal.
 */
export function ssdRecurrentRef(inp: SsdRefInputs): SsdRefOutputs {
  const { batch, L, H, P, N } = inp.dims;
  const o = at(inp.dims);
  const Y = new Float64Array(batch * L * H * P);
  const finalState = new Float64Array(batch * H * P * N);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const S = inp.initialState
        ? Float64Array.from({ length: P * N }, (_, i) => inp.initialState![o.st(b, h) + i])
        : new Float64Array(P * N);
      for (let t = 0; t < L; t++) {
        const decay = Math.exp(inp.A[o.a(b, t, h)]);
        for (let p = 0; p < P; p++) {
          const x = inp.X[o.x(b, t, h) + p];
          let y = 0;
          for (let n = 0; n < N; n++) {
            const s = decay * S[p * N + n] + x * inp.B[o.bc(b, t, h) + n];
            S[p * N + n] = s;
            y += s * inp.C[o.bc(b, t, h) + n];
          }
          Y[o.x(b, t, h) + p] = y;
        }
      }
      finalState.set(S, o.st(b, h));
    }
  }
  return { Y, finalState };
}

/**
 * segsum(a) (ssd_minimal.py `segsum`, the stable form): S[i][j] = Σ_{k=j+1..i} a_k for i ≥ j, −∞ above
 * the diagonal, built as a masked cumulative sum down each column (no cumsum[i] − cumsum[j], which
 * loses precision over long ranges; the naive `segsum_unstable` is that difference).
 */
export function segsumRef(a: ArrayLike<number>): Float64Array[] {
  const T = a.length;
  const S = Array.from({ length: T }, () => new Float64Array(T).fill(-Infinity));
  for (let j = 0; j < T; j++) {
    S[j][j] = 0;
    for (let i = j + 1; i < T; i++) S[i][j] = S[i - 1][j] + a[i];
  }
  return S;
}

/** Start and length of chunk c of a length-L sequence cut into chunks of Q (the last one ragged). */
function chunk(L: number, Q: number, c: number): { t0: number; q: number } {
  const t0 = c * Q;
  return { t0, q: Math.min(Q, L - t0) };
}

/**
 * The chunked algorithm of `ssd_minimal_discrete` with chunk length Q (`blockLen`), per (b, h) and
 * chunk c of Q steps (the last chunk may be shorter: no padding), with Acum the inclusive cumulative
 * sum of A inside the chunk:
 *   1. intra-chunk (diagonal blocks): Y_diag[l] = Σ_{s≤l} (C_l·B_s) · exp(segsum(A)[l][s]) · X_s
 *   2. chunk states:  S_c = Σ_s exp(Acum[Q−1] − Acum[s]) · X_s B_sᵀ          (decay_states)
 *   3. inter-chunk recurrence: with the totals T_c = Acum_c[Q−1] and S_{−1} = the initial state,
 *      new_states[z] = Σ_{c≤z} exp(segsum(pad([T_c], left 0)))[z][c] · S_{c−1}; new_states[c] is the
 *      state entering chunk c, the last one the final state
 *   4. off-diagonal outputs: Y_off[l] = exp(Acum[l]) · (H_c C_l)
 *   Y = Y_diag + Y_off.
 */
export function ssdChunkedRef(inp: SsdRefInputs, blockLen = 64): SsdRefOutputs {
  const { batch, L, H, P, N } = inp.dims;
  const o = at(inp.dims);
  const Q = blockLen;
  const nc = Math.ceil(L / Q);
  const Y = new Float64Array(batch * L * H * P);
  const finalState = new Float64Array(batch * H * P * N);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      // states[0] = initial state, states[c + 1] = S_c (chunk c's own contribution).
      const states = Array.from({ length: nc + 1 }, () => new Float64Array(P * N));
      if (inp.initialState) {
        for (let i = 0; i < P * N; i++) states[0][i] = inp.initialState[o.st(b, h) + i];
      }
      const totals = new Float64Array(nc + 1); // pad([T_c], left 0)
      const acums: Float64Array[] = [];
      for (let c = 0; c < nc; c++) {
        const { t0, q } = chunk(L, Q, c);
        const a = Float64Array.from({ length: q }, (_, l) => inp.A[o.a(b, t0 + l, h)]);
        const acum = new Float64Array(q);
        for (let l = 0; l < q; l++) acum[l] = (l > 0 ? acum[l - 1] : 0) + a[l];
        acums.push(acum);
        totals[c + 1] = acum[q - 1];
        // 1. diagonal blocks
        const seg = segsumRef(a);
        for (let l = 0; l < q; l++) {
          for (let s = 0; s <= l; s++) {
            const w = dot(inp.C, o.bc(b, t0 + l, h), inp.B, o.bc(b, t0 + s, h), N) * Math.exp(seg[l][s]);
            for (let p = 0; p < P; p++) Y[o.x(b, t0 + l, h) + p] += w * inp.X[o.x(b, t0 + s, h) + p];
          }
        }
        // 2. chunk states
        for (let s = 0; s < q; s++) {
          const w = Math.exp(acum[q - 1] - acum[s]);
          for (let p = 0; p < P; p++) {
            const wx = w * inp.X[o.x(b, t0 + s, h) + p];
            for (let n = 0; n < N; n++) states[c + 1][p * N + n] += wx * inp.B[o.bc(b, t0 + s, h) + n];
          }
        }
      }
      // 3. inter-chunk recurrence through the (nc+1)×(nc+1) chunk decay matrix
      const decay = segsumRef(totals);
      const newStates = Array.from({ length: nc + 1 }, (_, z) => {
        const s = new Float64Array(P * N);
        for (let c = 0; c <= z; c++) {
          const w = Math.exp(decay[z][c]);
          for (let i = 0; i < P * N; i++) s[i] += w * states[c][i];
        }
        return s;
      });
      finalState.set(newStates[nc], o.st(b, h));
      // 4. off-diagonal outputs from the state entering each chunk
      for (let c = 0; c < nc; c++) {
        const { t0, q } = chunk(L, Q, c);
        for (let l = 0; l < q; l++) {
          const w = Math.exp(acums[c][l]);
          for (let p = 0; p < P; p++) {
            Y[o.x(b, t0 + l, h) + p] += w * dot(newStates[c], p * N, inp.C, o.bc(b, t0 + l, h), N);
          }
        }
      }
    }
  }
  return { Y, finalState };
}

/**
 * Gradients of Σ Y · dY (+ Σ finalState · dFinalState) through the chunked form, block by block in
 * reverse. Per (b, h) and chunk c (local steps l, s < Q_c), with cum_l = Σ_{k≤l} a_k, suf_s =
 * Σ_{k=s+1..Q_c−1} a_k, T = cum_{Q_c−1}, Lm[l][s] = exp(segsum[l][s]), G = C Bᵀ, M = G ∘ Lm, and H_c
 * the state entering the chunk (forward: H_{c+1} = exp(T_c) H_c + S_c):
 *   4 (Y_off = exp(cum_l) H_c C_l):  dC_l += exp(cum_l) Σ_p dY_l[p] H_c[p, :]
 *       dH_c^off = Σ_l exp(cum_l) dY_l C_lᵀ;   yoff_l = Σ_p dY_l[p] Y_off_l[p]   (∂/∂cum_l)
 *   3 (inter-chunk, reverse): 𝒢_{nc} = dFinalState;  𝒢_c = dH_c^off + exp(T_c) 𝒢_{c+1};  d init = 𝒢_0
 *       dS_c = 𝒢_{c+1};   dT_c = exp(T_c) ⟨𝒢_{c+1}, H_c⟩
 *   2 (S_c = Σ_s exp(suf_s) X_s B_sᵀ):  dX_s += exp(suf_s) dS_c B_s;  dB_s += exp(suf_s) dS_cᵀ X_s
 *       w_s = exp(suf_s) X_sᵀ dS_c B_s   (∂/∂suf_s)
 *   1 (Y_diag = M X):  dX_s += Σ_l M[l][s] dY_l;  with dYX[l][s] = dY_l·X_s and dG = dYX ∘ Lm:
 *       dC_l += Σ_s dG[l][s] B_s;  dB_s += Σ_l dG[l][s] C_l;  R = M ∘ dYX   (∂/∂segsum)
 *   dA (the reductions): segsum[l][s] holds a_k for s < k ≤ l, cum_l for k ≤ l, suf_s for k > s, T all:
 *       dA_k = Σ_{l≥k} (rowR_l − colR_l + yoff_l) + Σ_{s<k} w_s + dT_c
 *       with rowR_l = Σ_s R[l][s] and colR_s = Σ_l R[l][s] (the diagonal R[l][l] cancels).
 */
export function ssdBackwardRef(
  inp: SsdRefInputs,
  dY: ArrayLike<number>,
  opts: { blockLen?: number; dFinalState?: ArrayLike<number> } = {},
): SsdRefGrads {
  const { batch, L, H, P, N } = inp.dims;
  const o = at(inp.dims);
  const Q = opts.blockLen ?? 64;
  const nc = Math.ceil(L / Q);
  const g: SsdRefGrads = {
    X: new Float64Array(inp.X.length),
    A: new Float64Array(inp.A.length),
    B: new Float64Array(inp.B.length),
    C: new Float64Array(inp.C.length),
    initialState: inp.initialState ? new Float64Array(batch * H * P * N) : undefined,
  };
  const PN = P * N;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      // Forward again: per chunk cum, suf, and the states entering each chunk.
      const cums: Float64Array[] = [];
      const sufs: Float64Array[] = [];
      const Hin = Array.from({ length: nc + 1 }, () => new Float64Array(PN));
      if (inp.initialState) { for (let i = 0; i < PN; i++) Hin[0][i] = inp.initialState[o.st(b, h) + i]; }
      for (let c = 0; c < nc; c++) {
        const { t0, q } = chunk(L, Q, c);
        const cum = new Float64Array(q);
        const suf = new Float64Array(q);
        for (let l = 0; l < q; l++) cum[l] = (l > 0 ? cum[l - 1] : 0) + inp.A[o.a(b, t0 + l, h)];
        for (let s = q - 2; s >= 0; s--) suf[s] = suf[s + 1] + inp.A[o.a(b, t0 + s + 1, h)];
        cums.push(cum);
        sufs.push(suf);
        const eT = Math.exp(cum[q - 1]);
        for (let i = 0; i < PN; i++) Hin[c + 1][i] = eT * Hin[c][i];
        for (let s = 0; s < q; s++) {
          const w = Math.exp(suf[s]);
          for (let p = 0; p < P; p++) {
            const wx = w * inp.X[o.x(b, t0 + s, h) + p];
            for (let n = 0; n < N; n++) Hin[c + 1][p * N + n] += wx * inp.B[o.bc(b, t0 + s, h) + n];
          }
        }
      }
      // 3, reverse: 𝒢 from the end; dS_c = 𝒢_{c+1} for every chunk.
      const dS = Array.from({ length: nc + 1 }, () => new Float64Array(PN));
      if (opts.dFinalState) { for (let i = 0; i < PN; i++) dS[nc][i] = opts.dFinalState[o.st(b, h) + i]; }
      for (let c = nc - 1; c >= 0; c--) {
        const { t0, q } = chunk(L, Q, c);
        const eT = Math.exp(cums[c][q - 1]);
        for (let i = 0; i < PN; i++) dS[c][i] = eT * dS[c + 1][i];
        for (let l = 0; l < q; l++) {
          const w = Math.exp(cums[c][l]);
          for (let p = 0; p < P; p++) {
            const wy = w * dY[o.x(b, t0 + l, h) + p];
            for (let n = 0; n < N; n++) dS[c][p * N + n] += wy * inp.C[o.bc(b, t0 + l, h) + n];
          }
        }
      }
      if (g.initialState) g.initialState.set(dS[0], o.st(b, h));
      for (let c = 0; c < nc; c++) {
        const { t0, q } = chunk(L, Q, c);
        const cum = cums[c];
        const suf = sufs[c];
        const Hc = Hin[c];
        const dSc = dS[c + 1];
        const dcum = new Float64Array(q); // rowR − colR + yoff
        const w = new Float64Array(q);
        let dT = 0;
        for (let i = 0; i < PN; i++) dT += dSc[i] * Hc[i];
        dT *= Math.exp(cum[q - 1]);
        const seg = segsumRef(Float64Array.from({ length: q }, (_, l) => inp.A[o.a(b, t0 + l, h)]));
        for (let l = 0; l < q; l++) {
          const xl = o.x(b, t0 + l, h);
          const bl = o.bc(b, t0 + l, h);
          // 4: Y_off and its gradients
          const el = Math.exp(cum[l]);
          for (let p = 0; p < P; p++) {
            const yoff = el * dot(Hc, p * N, inp.C, bl, N);
            dcum[l] += dY[xl + p] * yoff;
            for (let n = 0; n < N; n++) g.C[bl + n] += el * dY[xl + p] * Hc[p * N + n];
          }
          // 2: chunk state's gradients (s = l here)
          const es = Math.exp(suf[l]);
          for (let p = 0; p < P; p++) {
            const dXs = es * dot(dSc, p * N, inp.B, bl, N);
            g.X[xl + p] += dXs;
            w[l] += inp.X[xl + p] * dXs;
            for (let n = 0; n < N; n++) g.B[bl + n] += es * inp.X[xl + p] * dSc[p * N + n];
          }
          // 1: diagonal block
          for (let s = 0; s <= l; s++) {
            const xs = o.x(b, t0 + s, h);
            const bs = o.bc(b, t0 + s, h);
            const lm = Math.exp(seg[l][s]);
            const G = dot(inp.C, bl, inp.B, bs, N);
            const dYX = dot(dY, xl, inp.X, xs, P);
            const R = G * lm * dYX;
            dcum[l] += R;
            dcum[s] -= R;
            for (let p = 0; p < P; p++) g.X[xs + p] += G * lm * dY[xl + p];
            for (let n = 0; n < N; n++) {
              g.C[bl + n] += dYX * lm * inp.B[bs + n];
              g.B[bs + n] += dYX * lm * inp.C[bl + n];
            }
          }
        }
        // dA_k = Σ_{l≥k} dcum_l + Σ_{s<k} w_s + dT
        let tail = 0;
        for (let l = q - 1; l >= 0; l--) {
          tail += dcum[l];
          g.A[o.a(b, t0 + l, h)] = tail + dT;
        }
        let head = 0;
        for (let k = 0; k < q; k++) {
          g.A[o.a(b, t0 + k, h)] += head;
          head += w[k];
        }
      }
    }
  }
  return g;
}

/**
 * One token of the recurrence, updating `state` (B, H, P, N) in place:
 *   state ← exp(a) · state + x Bᵀ;  y = state C.
 * x (B, H, P), a (B, H) the log-decay, B, C (B, H, N). Returns y (B, H, P).
 */
export function ssdStateUpdateRef(
  state: Float64Array | Float32Array,
  x: ArrayLike<number>,
  a: ArrayLike<number>,
  B: ArrayLike<number>,
  C: ArrayLike<number>,
  dims: Omit<SsdDims, "L">,
): Float64Array {
  const { batch, H, P, N } = dims;
  const y = new Float64Array(batch * H * P);
  for (let bh = 0; bh < batch * H; bh++) {
    const decay = Math.exp(a[bh]);
    for (let p = 0; p < P; p++) {
      const i0 = (bh * P + p) * N;
      let acc = 0;
      for (let n = 0; n < N; n++) {
        const s = decay * state[i0 + n] + x[bh * P + p] * B[bh * N + n];
        state[i0 + n] = s;
        acc += s * C[bh * N + n];
      }
      y[bh * P + p] = acc;
    }
  }
  return y;
}

/**
 * The SSD mixing matrix per (b, h), (B, H, L, L) row-major with rows = output t, columns = source s:
 *   M[t][s] = (C_t · B_s) · exp(Σ_{k=s+1..t} A_k) for s ≤ t, 0 above the diagonal,
 * so that Y[b, :, h, p] = M[b, h] · X[b, :, h, p] (with no initial state). The decay is a running sum
 * down each column (the stable segsum). O(L²) per (b, h): for visualising, not for computing.
 */
export function ssdMixingMatrixRef(
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  C: ArrayLike<number>,
  dims: Omit<SsdDims, "P">,
): Float64Array {
  const { batch, L, H, N } = dims;
  const M = new Float64Array(batch * H * L * L);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const base = (b * H + h) * L * L;
      for (let s = 0; s < L; s++) {
        let seg = 0;
        for (let t = s; t < L; t++) {
          if (t > s) seg += A[(b * L + t) * H + h];
          const cb = dot(C, ((b * L + t) * H + h) * N, B, ((b * L + s) * H + h) * N, N);
          M[base + t * L + s] = cb * Math.exp(seg);
        }
      }
    }
  }
  return M;
}
