/**
 * Plain-loop references (float64 accumulation) of the Llama forward ops: the specifications the
 * kernels are tested against. Layouts match the GPU ops; see each kernel file's header.
 *
 * @module
 */

/** RMSNorm of rows (R, D): x · rsqrt(mean(x²) + ε) · w. */
export function rmsNormRef(x: ArrayLike<number>, w: ArrayLike<number>, D: number, eps: number): Float64Array {
  const R = x.length / D;
  const y = new Float64Array(x.length);
  for (let r = 0; r < R; r++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += x[r * D + d] ** 2;
    const inv = 1 / Math.sqrt(s / D + eps);
    for (let d = 0; d < D; d++) y[r * D + d] = x[r * D + d] * inv * w[d];
  }
  return y;
}

/** RoPE (rotate_half) of x (B, L, H, P) with inverse frequencies `inv` (P/2) from position pos0. */
export function ropeRef(
  x: ArrayLike<number>,
  shape: [number, number, number, number],
  inv: ArrayLike<number>,
  pos0 = 0,
): Float64Array {
  const [B, L, H, P] = shape;
  const half = P / 2;
  const y = new Float64Array(x.length);
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) {
        const base = ((b * L + l) * H + h) * P;
        for (let i = 0; i < half; i++) {
          const angle = Math.fround(Math.fround(pos0 + l) * inv[i]);
          const c = Math.cos(angle);
          const s = Math.sin(angle);
          y[base + i] = x[base + i] * c - x[base + half + i] * s;
          y[base + half + i] = x[base + half + i] * c + x[base + i] * s;
        }
      }
    }
  }
  return y;
}

/**
 * Causal GQA attention: q (B, L, Hq, P), k and v (B, S, Hkv, P) with queries at the last L of S
 * positions. Returns out (B, L, Hq, P), probs (B, Hq, L, S) and lse (B, Hq, L), the natural-log
 * logsumexp of each row's scaled scores.
 */
export function attentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dims: { B: number; L: number; S: number; Hq: number; Hkv: number; P: number },
): { out: Float64Array; probs: Float64Array; lse: Float64Array } {
  const { B, L, S, Hq, Hkv, P } = dims;
  const group = Hq / Hkv;
  const out = new Float64Array(B * L * Hq * P);
  const probs = new Float64Array(B * Hq * L * S);
  const lse = new Float64Array(B * Hq * L);
  const scale = 1 / Math.sqrt(P);
  const row = new Float64Array(S);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const g = Math.floor(h / group);
      for (let t = 0; t < L; t++) {
        const visible = t + (S - L);
        let m = -Infinity;
        for (let s = 0; s <= visible; s++) {
          let dot = 0;
          for (let p = 0; p < P; p++) {
            dot += q[((b * L + t) * Hq + h) * P + p] * k[((b * S + s) * Hkv + g) * P + p];
          }
          row[s] = dot * scale;
          m = Math.max(m, row[s]);
        }
        let z = 0;
        for (let s = 0; s <= visible; s++) z += Math.exp(row[s] - m);
        lse[(b * Hq + h) * L + t] = m + Math.log(z);
        for (let s = 0; s <= visible; s++) {
          const pr = Math.exp(row[s] - m) / z;
          probs[((b * Hq + h) * L + t) * S + s] = pr;
          for (let p = 0; p < P; p++) {
            out[((b * L + t) * Hq + h) * P + p] += pr * v[((b * S + s) * Hkv + g) * P + p];
          }
        }
      }
    }
  }
  return { out, probs, lse };
}

/**
 * Gradients of {@linkcode attentionRef} for dOut (B, L, Hq, P), from its probabilities:
 * dV = Pᵀ dO, dP = dO Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ = scale · dS K, dK = scale · dSᵀ Q,
 * dK and dV summed over the query heads of each kv group. Returns dq like q, dk and dv like k and v.
 */
export function attentionBackwardRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dOut: ArrayLike<number>,
  dims: { B: number; L: number; S: number; Hq: number; Hkv: number; P: number },
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, L, S, Hq, Hkv, P } = dims;
  const group = Hq / Hkv;
  const scale = 1 / Math.sqrt(P);
  const { probs } = attentionRef(q, k, v, dims);
  const dq = new Float64Array(B * L * Hq * P);
  const dk = new Float64Array(B * S * Hkv * P);
  const dv = new Float64Array(B * S * Hkv * P);
  const dP = new Float64Array(S);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const g = Math.floor(h / group);
      for (let t = 0; t < L; t++) {
        const qi = ((b * L + t) * Hq + h) * P;
        const pr = ((b * Hq + h) * L + t) * S;
        let rowDot = 0;
        for (let s = 0; s < S; s++) {
          const kj = ((b * S + s) * Hkv + g) * P;
          let x = 0;
          for (let p = 0; p < P; p++) x += dOut[qi + p] * v[kj + p];
          dP[s] = x;
          rowDot += probs[pr + s] * x;
        }
        for (let s = 0; s < S; s++) {
          const w = probs[pr + s];
          if (w === 0) continue;
          const kj = ((b * S + s) * Hkv + g) * P;
          const ds = w * (dP[s] - rowDot);
          for (let p = 0; p < P; p++) {
            dv[kj + p] += w * dOut[qi + p];
            dq[qi + p] += scale * ds * k[kj + p];
            dk[kj + p] += scale * ds * q[qi + p];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

/** log-softmax of rows (R, V). */
export function logSoftmaxRef(x: ArrayLike<number>, V: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / V; r++) {
    let m = -Infinity;
    for (let j = 0; j < V; j++) m = Math.max(m, x[r * V + j]);
    let z = 0;
    for (let j = 0; j < V; j++) z += Math.exp(x[r * V + j] - m);
    const lse = m + Math.log(z);
    for (let j = 0; j < V; j++) y[r * V + j] = x[r * V + j] - lse;
  }
  return y;
}

/** Per-row cross-entropy of logits (R, V) against targets (R); `ignoreIndex` rows give 0. */
export function crossEntropyRef(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  V: number,
  ignoreIndex = -100,
): Float64Array {
  const lsm = logSoftmaxRef(logits, V);
  const out = new Float64Array(targets.length);
  for (let r = 0; r < targets.length; r++) out[r] = targets[r] === ignoreIndex ? 0 : -lsm[r * V + targets[r]];
  return out;
}

/** silu(a) · b element-wise. */
export function swigluRef(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const y = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = (a[i] / (1 + Math.exp(-a[i]))) * b[i];
  return y;
}

/** Rows of a table (V, D) for each id. */
export function embeddingRef(ids: ArrayLike<number>, table: ArrayLike<number>, D: number): Float64Array {
  const y = new Float64Array(ids.length * D);
  for (let t = 0; t < ids.length; t++) for (let d = 0; d < D; d++) y[t * D + d] = table[ids[t] * D + d];
  return y;
}
