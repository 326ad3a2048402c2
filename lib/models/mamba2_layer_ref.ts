/**
 * The Mamba-2 mixer of a MambaInLlama hybrid layer as float64 loops, composed from the kernel
 * references (lib/ssm/*_ref.ts): the specification `mamba2Forward` is tested against, forward and
 * (by finite differences) backward. Same steps and layouts as `mamba2_layer.ts`:
 *
 *   zxbcdt = u · in_projᵀ                       rows [ z | x | B | C | dt_raw ]
 *   xBC = silu(causal_conv1d(x | B | C) + bias)
 *   X, A, B_h, C_h = ssd inputs(xBC, dt_raw, dt_bias, A_log)
 *   y = SSD(X, A, B_h, C_h) + D · x_g           (chunked form, ssdChunkedRef)
 *   out = RMSNormGated(y, z) · out_projᵀ
 *
 * @module
 */
import { causalConv1dRef } from "../ssm/conv1d_ref.ts";
import { gatedRmsNormRef } from "../ssm/gated_norm_ref.ts";
import { addSkipRef, type GlueRefDims, sliceColumnsRef, ssdInputsRef } from "../ssm/mamba2_glue_ref.ts";
import { ssdChunkedRef } from "../ssm/ssd_ref.ts";
import { matmulRef } from "../tensor/matmul_ref.ts";
import type { Mamba2Dims } from "../distill/convert_mamba2.ts";

/** The mixer's weights as flat arrays, in the checkpoint's layouts (conv weight (C, W) read flat). */
export interface Mamba2RefWeights {
  inProj: ArrayLike<number>;
  convWeight: ArrayLike<number>;
  convBias: ArrayLike<number>;
  dtBias: ArrayLike<number>;
  aLog: ArrayLike<number>;
  D: ArrayLike<number>;
  norm: ArrayLike<number>;
  outProj: ArrayLike<number>;
}

/** Sizes and settings: batch B, length L, the layer's dimensions, kv heads, ε and the SSD chunk. */
export interface Mamba2RefOptions {
  batch: number;
  L: number;
  dims: Mamba2Dims;
  kvHeads: number;
  eps: number;
  blockLen?: number;
}

/** The mixer's output (B, L, d_model) for u (B, L, d_model), in float64. */
export function mamba2ForwardRef(
  u: ArrayLike<number>,
  w: Mamba2RefWeights,
  o: Mamba2RefOptions,
): Float64Array {
  const { dModel, dInner, dXb, nHeads: H, headDim: P, dState: N, nGroups, convWidth } = o.dims;
  const R = o.batch * o.L;
  const cxbc = 2 * dXb + dInner;
  const cols = dInner + cxbc + H;
  const zxbcdt = matmulRef(u, w.inProj, { M: R, N: cols, K: dModel, transB: true });
  const z = sliceColumnsRef(zxbcdt, cols, 0, dInner);
  const xbcIn = sliceColumnsRef(zxbcdt, cols, dInner, cxbc);
  const dtRaw = sliceColumnsRef(zxbcdt, cols, dInner + cxbc, H);
  const { y: xbc } = causalConv1dRef(xbcIn, w.convWeight, { B: o.batch, L: o.L, C: cxbc, W: convWidth }, {
    bias: w.convBias,
    activation: "silu",
  });
  const glue: GlueRefDims = { H, Hkv: o.kvHeads, P, N };
  const s = ssdInputsRef(xbc, dtRaw, w.dtBias, w.aLog, glue);
  const { Y } = ssdChunkedRef({ dims: { batch: o.batch, L: o.L, H, P, N }, ...s }, o.blockLen ?? 64);
  const y = addSkipRef(Y, xbc, w.D, glue);
  const g = gatedRmsNormRef(y, z, w.norm, dInner, { eps: o.eps, groupSize: dInner / nGroups });
  return matmulRef(g, w.outProj, { M: R, N: dModel, K: dInner, transB: true });
}
