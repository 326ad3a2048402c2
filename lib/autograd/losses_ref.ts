/**
 * Plain-loop references (float64) of the distillation losses, per row, and their reductions.
 *
 * @module
 */

function logSoftmaxRow(x: ArrayLike<number>, base: number, C: number, invTau: number): Float64Array {
  let m = -Infinity;
  for (let j = 0; j < C; j++) m = Math.max(m, x[base + j] * invTau);
  let z = 0;
  for (let j = 0; j < C; j++) z += Math.exp(x[base + j] * invTau - m);
  const out = new Float64Array(C);
  for (let j = 0; j < C; j++) out[j] = x[base + j] * invTau - m - Math.log(z);
  return out;
}

/** Per-row KL(p_T ‖ p_S) (reverse: KL(p_S ‖ p_T)) of logits (R, C) at temperature τ. */
export function klRowsRef(
  student: ArrayLike<number>,
  teacher: ArrayLike<number>,
  C: number,
  opts: { temperature?: number; reverse?: boolean } = {},
): Float64Array {
  const inv = 1 / (opts.temperature ?? 1);
  const R = student.length / C;
  const out = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    const lq = logSoftmaxRow(student, r * C, C, inv);
    const lp = logSoftmaxRow(teacher, r * C, C, inv);
    for (let j = 0; j < C; j++) {
      out[r] += opts.reverse ? Math.exp(lq[j]) * (lq[j] - lp[j]) : Math.exp(lp[j]) * (lp[j] - lq[j]);
    }
  }
  return out;
}

/** Per-row ‖a_r − b_r‖₂ of (R, C). */
export function l2RowsRef(a: ArrayLike<number>, b: ArrayLike<number>, C: number): Float64Array {
  const out = new Float64Array(a.length / C);
  for (let r = 0; r < out.length; r++) {
    let s = 0;
    for (let j = 0; j < C; j++) s += (a[r * C + j] - b[r * C + j]) ** 2;
    out[r] = Math.sqrt(s);
  }
  return out;
}

/** Σ of the rows whose label is not `ignore` (all without labels), ÷ their count or ÷ `divisor`. */
export function reduceRowsRef(
  rows: ArrayLike<number>,
  opts: { labels?: ArrayLike<number>; ignore?: number; divisor?: number } = {},
): number {
  let s = 0;
  let n = 0;
  for (let r = 0; r < rows.length; r++) {
    if (opts.labels && opts.labels[r] === (opts.ignore ?? -100)) continue;
    s += rows[r];
    n++;
  }
  return s / (opts.divisor ?? Math.max(n, 1));
}

/** log π(y) per sequence of logits (B, T, V) against labels (B·T), skipping `ignore`. */
export function sequenceLogProbsRef(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  B: number,
  V: number,
  ignore = -100,
): Float64Array {
  const T = labels.length / B;
  const out = new Float64Array(B);
  for (let r = 0; r < B * T; r++) {
    if (labels[r] === ignore) continue;
    out[Math.floor(r / T)] += logSoftmaxRow(logits, r * V, V, 1)[labels[r]];
  }
  return out;
}

/** mean_b −log σ(β[(pol_w − ref_w) − (pol_l − ref_l)]) from sequence log-probs. */
export function dpoLossRef(
  polW: ArrayLike<number>,
  polL: ArrayLike<number>,
  refW: ArrayLike<number>,
  refL: ArrayLike<number>,
  beta: number,
): number {
  let s = 0;
  for (let b = 0; b < polW.length; b++) {
    const z = beta * ((polW[b] - refW[b]) - (polL[b] - refL[b]));
    s += Math.log1p(Math.exp(-z));
  }
  return s / polW.length;
}
