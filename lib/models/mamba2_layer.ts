/**
 * The Mamba-2 mixer of a MambaInLlama hybrid layer (`mamba2/hybrid_mamba_layer.py` forward,
 * method.md §3.2), for u (B, L, d_model):
 *
 *   zxbcdt = in_proj(u)                         rows [ z | x | B | C | dt ]
 *   xBC = silu(causal_conv1d(x | B | C))        depthwise, width 4, with bias
 *   per head h (kv head g = ⌊h·H_kv/H⌋): dt = softplus(dt_raw + dt_bias), X = x_g·dt, A = −exp(A_log)·dt
 *   y = SSD(X, A, B_g, C_h) + D·x_g             (chunked scan, kernels/ssd.wgsl)
 *   out = out_proj(RMSNormGated(y, z))          (norm_before_gate = False, groups of d_inner / ngroups)
 *
 * The layer ignores positions and the attention mask (no RoPE), as the reference does. Every step is
 * a taped op (lib/autograd: linear, splitColumns, causalConv1d, ssdInputs, ssd, addSkip,
 * gatedRmsNorm), so the mixer trains; its float64 twin is `mamba2_layer_ref.ts`.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { linear } from "../autograd/ops.ts";
import { causalConv1d, gatedRmsNorm, ssd } from "../autograd/ssm_ops.ts";
import { addSkip, splitColumns, ssdInputs } from "../autograd/mamba2_ops.ts";
import { needsGrad } from "../autograd/tape.ts";
import { type Mamba2GlueDims, sliceColumns } from "../ssm/mamba2_glue.ts";
import type { Weight } from "../tensor/matmul.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { Mamba2Dims } from "../distill/convert_mamba2.ts";

/** Columns [col0, col0 + n) of a row-major (…, cols) tensor (re-exported from lib/ssm/mamba2_glue.ts). */
export { sliceColumns };

/** Weights of one Mamba-2 mixer (`model.layers.{i}.mamba.*`). */
export interface Mamba2Weights {
  inProj: Weight;
  convWeight: Tensor;
  convBias: Tensor;
  dtBias: Tensor;
  aLog: Tensor;
  D: Tensor;
  norm: Tensor;
  outProj: Weight;
}

/** Settings of the mixer's forward. */
export interface Mamba2Options {
  dims: Mamba2Dims;
  /** Kv heads of the converted attention (x and B are repeated from them). */
  kvHeads: number;
  /** RMSNormGated ε. */
  eps: number;
  /** SSD chunk length (default 64). */
  blockLen?: number;
}

/**
 * The mixer's output (B, L, d_model) for u (B, L, d_model) (no KV/state cache: see mamba2_decode.ts).
 * Differentiable: under a recording tape every weight that requires grad, and u, get gradients.
 * Outside a tape it dispatches the same kernels as a forward-only pass (dt_raw read in place, the
 * D skip added in place).
 */
export function mamba2Forward(u: Tensor, w: Mamba2Weights, o: Mamba2Options): Tensor {
  const { dInner, dXb, nHeads: H, headDim: P, dState: N, nGroups } = o.dims;
  if (P !== N) throw new ShapeError("mamba2", `head dim ${P} ≠ state size ${N} is not supported`);
  const [Bt, L] = u.shape;
  const cxbc = 2 * dXb + dInner;
  const glue: Mamba2GlueDims = { H, Hkv: o.kvHeads, P, N };
  using zxbcdt = linear(u, w.inProj);
  let z: Tensor, xbcIn: Tensor, dtRaw: Tensor;
  let dtColumn: number | undefined;
  if (needsGrad(zxbcdt)) {
    [z, xbcIn, dtRaw] = splitColumns(zxbcdt, [dInner, cxbc, H]);
  } else {
    // forward only: two slices, and dt_raw read from its columns of zxbcdt
    z = sliceColumns(zxbcdt, 0, dInner);
    xbcIn = sliceColumns(zxbcdt, dInner, cxbc);
    dtRaw = zxbcdt.retain();
    dtColumn = dInner + cxbc;
  }
  using _z = z;
  using _dt = dtRaw;
  using xbc = causalConv1d(xbcIn.view([Bt, L, cxbc]), w.convWeight, { bias: w.convBias, activation: "silu" });
  xbcIn.dispose();
  const inp = ssdInputs(xbc, { dtRaw, dtColumn, dtBias: w.dtBias, aLog: w.aLog }, glue);
  using Y = ssd(inp, { blockLen: o.blockLen ?? 64 });
  for (const t of [inp.X, inp.A, inp.B, inp.C]) t.dispose();
  using y = addSkip(Y, xbc, w.D, glue);
  using g = gatedRmsNorm(y.view([Bt, L, dInner]), z.view([Bt, L, dInner]), w.norm, {
    eps: o.eps,
    groupSize: dInner / nGroups,
  });
  return linear(g, w.outProj);
}
