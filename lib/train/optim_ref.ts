/**
 * Plain-loop reference of one AdamW step with global-norm clipping (float64), transcribing
 * torch.nn.utils.clip_grad_norm_ + torch.optim.AdamW: the specification `optim.wgsl` is tested against.
 *
 * @module
 */

/** State of one parameter under the reference optimizer. */
export interface AdamWRefState {
  param: Float64Array;
  m: Float64Array;
  v: Float64Array;
  decay: boolean;
}

/** Applies one step (t ≥ 1) to every state in place, with gradients `grads`; returns the norm. */
export function adamwStepRef(
  states: AdamWRefState[],
  grads: ArrayLike<number>[],
  o: {
    lr: number;
    t: number;
    betas: [number, number];
    eps: number;
    weightDecay: number;
    maxGradNorm: number;
  },
): number {
  let ss = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) ss += g[i] * g[i];
  const norm = Math.sqrt(ss);
  const scale = o.maxGradNorm > 0 ? Math.min(1, o.maxGradNorm / (norm + 1e-6)) : 1;
  const [b1, b2] = o.betas;
  const bc1 = 1 - b1 ** o.t;
  const bc2 = Math.sqrt(1 - b2 ** o.t);
  states.forEach((s, k) => {
    const g = grads[k];
    for (let i = 0; i < s.param.length; i++) {
      const gi = g[i] * scale;
      s.param[i] -= o.lr * (s.decay ? o.weightDecay : 0) * s.param[i];
      s.m[i] = b1 * s.m[i] + (1 - b1) * gi;
      s.v[i] = b2 * s.v[i] + (1 - b2) * gi * gi;
      s.param[i] -= (o.lr / bc1) * s.m[i] / (Math.sqrt(s.v[i]) / bc2 + o.eps);
    }
  });
  return norm;
}
