/**
 * Plain-loop reference (float64) of {@linkcode lmHeadLoss}: the whole (R, V) logits at once, the loss
 * w_ce · mean CE + w_kl · Σ_r KL_r / d and its gradients with respect to the hidden states and the head.
 *
 * @module
 */

/** Inputs of {@linkcode lmHeadLossRef} (row-major arrays). */
export interface LmHeadLossRefInput {
  /** Student hidden states (R, D) and head (V, D). */
  hidden: ArrayLike<number>;
  head: ArrayLike<number>;
  /** Targets (R); `ignoreIndex` (default −100) rows have no CE. */
  targets: ArrayLike<number>;
  R: number;
  D: number;
  V: number;
  ceWeight?: number;
  klWeight?: number;
  /** Teacher hidden (R, DT) and head (V, DT). */
  teacherHidden?: ArrayLike<number>;
  teacherHead?: ArrayLike<number>;
  DT?: number;
  /** KL divisor d (default R: token mean). */
  klDivisor?: number;
  temperature?: number;
  ignoreIndex?: number;
}

/** Loss, parts and gradients (dh (R, D), dW (V, D)) per unit of the loss's gradient. */
export interface LmHeadLossRefOutput {
  loss: number;
  ce: number;
  kl: number;
  dh: Float64Array;
  dW: Float64Array;
}

/** x (R, K) · Wᵀ for W (V, K). */
function logitsRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  R: number,
  K: number,
  V: number,
): Float64Array {
  const out = new Float64Array(R * V);
  for (let r = 0; r < R; r++) {
    for (let v = 0; v < V; v++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += x[r * K + k] * w[v * K + k];
      out[r * V + v] = acc;
    }
  }
  return out;
}

/** softmax of row r of x (R, V) at scale `inv` (1/τ), in float64. */
function softmaxRow(x: Float64Array, r: number, V: number, inv: number): Float64Array {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, x[r * V + v] * inv);
  let z = 0;
  for (let v = 0; v < V; v++) z += Math.exp(x[r * V + v] * inv - m);
  const out = new Float64Array(V);
  for (let v = 0; v < V; v++) out[v] = Math.exp(x[r * V + v] * inv - m) / z;
  return out;
}

/** The reference loss and gradients (see the module comment). */
export function lmHeadLossRef(i: LmHeadLossRefInput): LmHeadLossRefOutput {
  const { R, D, V } = i;
  const wCe = i.ceWeight ?? 1;
  const wKl = i.klWeight ?? 0;
  const ignore = i.ignoreIndex ?? -100;
  const inv = 1 / (i.temperature ?? 1);
  const d = i.klDivisor ?? R;
  const s = logitsRef(i.hidden, i.head, R, D, V);
  const t = wKl !== 0 ? logitsRef(i.teacherHidden!, i.teacherHead!, R, i.DT ?? D, V) : null;
  const valid = (r: number) => i.targets[r] !== ignore && i.targets[r] >= 0 && i.targets[r] < V;
  let n = 0;
  for (let r = 0; r < R; r++) if (valid(r)) n++;
  const ds = new Float64Array(R * V); // ∂loss/∂logits
  let ce = 0;
  let kl = 0;
  for (let r = 0; r < R; r++) {
    const q1 = softmaxRow(s, r, V, 1);
    if (valid(r)) {
      const y = i.targets[r];
      ce += -Math.log(q1[y]);
      for (let v = 0; v < V; v++) ds[r * V + v] += wCe / Math.max(n, 1) * (q1[v] - (v === y ? 1 : 0));
    }
    if (t) {
      const q = softmaxRow(s, r, V, inv);
      const p = softmaxRow(t, r, V, inv);
      for (let v = 0; v < V; v++) {
        kl += p[v] * (Math.log(p[v]) - Math.log(q[v]));
        ds[r * V + v] += wKl / d * inv * (q[v] - p[v]);
      }
    }
  }
  ce /= Math.max(n, 1);
  kl = t ? kl / d : 0;
  const dh = new Float64Array(R * D);
  const dW = new Float64Array(V * D);
  for (let r = 0; r < R; r++) {
    for (let v = 0; v < V; v++) {
      const g = ds[r * V + v];
      if (g === 0) continue;
      for (let k = 0; k < D; k++) {
        dh[r * D + k] += g * i.head[v * D + k];
        dW[v * D + k] += g * i.hidden[r * D + k];
      }
    }
  }
  return { loss: wCe * ce + wKl * kl, ce, kl, dh, dW };
}
