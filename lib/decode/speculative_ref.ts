/**
 * The speculative sampling rule on the host (float64), the twin of `kernels/speculative.wgsl`
 * (Leviathan et al. 2023, Algorithm 1; method.md §3.9). Used by the tests; the decode loop runs the
 * kernel.
 *
 * @module
 */

/** What one round emits: the first `accepted` drafts, then `token`. */
export interface AcceptOutcome {
  /** Drafts accepted, 0..K. */
  accepted: number;
  /** The resampled token (accepted < K) or the bonus token (accepted = K). */
  token: number;
}

/** The first v with Σ_{u ≤ v} w_u > U · Σ w (the last positive weight when rounding leaves none). */
export function drawIndexOrder(w: ArrayLike<number>, U: number): number {
  let total = 0;
  for (let v = 0; v < w.length; v++) total += w[v];
  const target = U * total;
  let acc = 0;
  let last = 0;
  for (let v = 0; v < w.length; v++) {
    if (w[v] > 0) {
      last = v;
      acc += w[v];
      if (acc > target) return v;
    }
  }
  return last;
}

/**
 * The rule for target distributions p (K + 1 vectors), draft distributions q (K vectors), drafts
 * d_1..d_K and uniforms u_0..u_K: accept d_{i+1} while u_i · q_i(d_{i+1}) < p_i(d_{i+1}); at the first
 * rejection r draw from norm(max(p_r − q_r, 0)) with u_K, else draw the bonus token from p_K with u_K.
 */
export function speculativeAcceptRef(
  p: ArrayLike<number>[],
  q: ArrayLike<number>[],
  drafts: ArrayLike<number>,
  uniforms: ArrayLike<number>,
): AcceptOutcome {
  const K = q.length;
  let r = K;
  for (let i = 0; i < K; i++) {
    const d = drafts[i];
    if (!(uniforms[i] * q[i][d] < p[i][d])) {
      r = i;
      break;
    }
  }
  const w = r < K ? Array.from(p[r], (pv, v) => Math.max(pv - q[r][v], 0)) : p[K];
  return { accepted: r, token: drawIndexOrder(w, uniforms[K]) };
}
