/**
 * Differentiable layout steps of the Mamba-1 layer (`lib/ssm/mamba1_glue.ts`): the channel gather
 * (transpose and block repeat) and A = −exp(A_log). Under a recording tape their backward is the
 * gather's adjoint (the r copies summed) and dA_log = dA ⊙ A.
 *
 * @module
 */
import {
  gatherChannels as gatherRaw,
  gatherChannelsBackward,
  type GatherSpec,
  negExp as negExpRaw,
} from "../ssm/mamba1_glue.ts";
import { mul } from "../tensor/elementwise.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { record } from "./tape.ts";

/** dst(b, t, d) = src(b, t, m(d)) in the spec's layouts (see {@linkcode GatherSpec}). */
export function gatherChannels(src: Tensor, spec: GatherSpec = {}): Tensor {
  return record([src], gatherRaw(src, spec), [], (g) => [gatherChannelsBackward(g, spec)]);
}

/** A = −exp(A_log); its backward is dA_log = dA ⊙ A. */
export function negExp(aLog: Tensor): Tensor {
  const A = negExpRaw(aLog);
  return record([aLog], A, [A], (g, [a]) => [mul(g, a)]);
}
