/**
 * The Mamba-1 mixer of a MambaInLlama hybrid layer (`mamba/hybrid_mamba_layer.py` forward, method.md
 * §3.3), for u (B, L, d_model), with N = d_state, r = d_inner / d_xb and G = d_inner / N groups:
 *
 *   x = in_proj_x(u) (B, L, d_xb), repeated in blocks of N, r times each → (B, L, d_inner)
 *   x = silu(causal_conv1d(x))                       depthwise, width 4, with bias (repeat before conv)
 *   z = in_proj_z(u);  C = C_proj(u) → (B, G, N, L);  B = B_proj(u), blocks repeated → (B, G, N, L)
 *   δ = dt_proj(dt_proj_down(u))                     (dt_proj with its bias, from the layer input)
 *   y = selective_scan(x, δ, A = −exp(A_log), B, C, D, z, δ_bias = dt_proj.bias, softplus)
 *   out = out_proj(y)
 *
 * As in the reference, dt_proj's bias enters twice: once in the Linear and once as the scan's δ bias.
 * Every step is a taped op (linear, conv1d, gather, scan), so the layer trains. The float64 twin is
 * {@linkcode mamba1ForwardRef} in `mamba1_layer_ref.ts`.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { linear } from "../autograd/ops.ts";
import { causalConv1d, selectiveScan } from "../autograd/ssm_ops.ts";
import { gatherChannels, negExp } from "../autograd/mamba1_ops.ts";
import type { Weight } from "../tensor/matmul.ts";
import { fmtShape, type Tensor } from "../tensor/tensor.ts";
import type { Mamba1Dims } from "../distill/convert_mamba1.ts";

/** Weights of one Mamba-1 mixer (`model.layers.{i}.mamba.*`). */
export interface Mamba1Weights {
  /** in_proj_x (d_xb, d_model). */
  inProjX: Weight;
  /** in_proj_z (d_inner, d_model). */
  inProjZ: Weight;
  /** conv1d.weight (d_inner, 1, 4) and bias (d_inner). */
  convWeight: Tensor;
  convBias: Tensor;
  /** B_proj (d_xb, d_model), C_proj (d_inner, d_model). */
  bProj: Weight;
  cProj: Weight;
  /** dt_proj_down (dt_rank, d_model), dt_proj (d_inner, dt_rank) and its bias (d_inner). */
  dtDown: Weight;
  dtProj: Weight;
  dtBias: Tensor;
  /** A_log (d_inner, N), D (d_inner). */
  aLog: Tensor;
  D: Tensor;
  /** out_proj (d_model, d_inner). */
  outProj: Weight;
}

/** The mixer's output (B, L, d_model) for u (B, L, d_model). Forward only (no decoding state yet). */
export function mamba1Forward(u: Tensor, w: Mamba1Weights, d: Mamba1Dims): Tensor {
  if (u.shape.length !== 3 || u.shape[2] !== d.dModel) {
    throw new ShapeError("mamba1", `expected u (B, L, ${d.dModel}), got ${fmtShape(u.shape)}`);
  }
  const [Bt, L] = u.shape;
  const N = d.dState;
  const r = d.dInner / d.dXb;
  const G = d.dInner / N;
  const channelsFirst = (t: Tensor) => {
    const c = gatherChannels(t, { from: "last", to: "first" });
    t.dispose();
    return c;
  };
  using x0 = linear(u, w.inProjX);
  using xr = gatherChannels(x0, { block: N, repeat: r, from: "last", to: "last" });
  using xc = causalConv1d(xr, w.convWeight, { bias: w.convBias, activation: "silu" });
  using xs = gatherChannels(xc, { from: "last", to: "first" });
  using zs = channelsFirst(linear(u, w.inProjZ));
  using b0 = linear(u, w.bProj);
  using bs = gatherChannels(b0, { block: N, repeat: r, from: "last", to: "first" });
  using cs = channelsFirst(linear(u, w.cProj));
  using dtLow = linear(u, w.dtDown);
  using dts = channelsFirst(linear(dtLow, w.dtProj, w.dtBias));
  using A = negExp(w.aLog);
  using y = selectiveScan(
    {
      u: xs,
      delta: dts,
      A,
      B: bs.view([Bt, G, N, L]),
      C: cs.view([Bt, G, N, L]),
      D: w.D,
      z: zs,
      deltaBias: w.dtBias,
    },
    { deltaSoftplus: true },
  );
  using yl = gatherChannels(y, { from: "first", to: "last" });
  return linear(yl, w.outProj);
}
