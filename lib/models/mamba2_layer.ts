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
 * The layer ignores positions and the attention mask (no RoPE), as the reference does.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, groupsFor, Params } from "../gpu/commands.ts";
import { causalConv1d } from "../ssm/conv1d.ts";
import { gatedRmsNorm } from "../ssm/gated_norm.ts";
import { ssdChunked } from "../ssm/ssd.ts";
import { linear } from "../autograd/ops.ts";
import type { Weight } from "../tensor/matmul.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { Mamba2Dims } from "../distill/convert_mamba2.ts";

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

function glue(entry: string, buffers: (GPUBuffer | null)[], n: number, extra: number[]): void {
  const [gx, gy] = groupsFor(n, 256);
  dispatch({ file: "mamba2_glue.wgsl", entry }, buffers, new Params().u32(n, gx * 256, ...extra), [gx, gy]);
}

/** Columns [col0, col0 + n) of a row-major (R, cols) tensor, as a new (R, n) tensor. */
export function sliceColumns(src: Tensor, col0: number, n: number): Tensor {
  const cols = src.shape[src.shape.length - 1];
  const R = src.size / cols;
  const dst = Tensor.empty([...src.shape.slice(0, -1), n]);
  glue("slice_cols", [src.buffer, dst.buffer], R * n, [R, 0, 0, 0, 0, cols, col0, n]);
  return dst;
}

/** The mixer's output (B, L, d_model) for u (B, L, d_model). Forward only (no KV/state cache yet). */
export function mamba2Forward(u: Tensor, w: Mamba2Weights, o: Mamba2Options): Tensor {
  const { dInner, dXb, nHeads: H, headDim: P, dState: N, nGroups } = o.dims;
  if (P !== N) throw new ShapeError("mamba2", `head dim ${P} ≠ state size ${N} is not supported`);
  const [Bt, L] = u.shape;
  const R = Bt * L;
  const cols = 2 * dInner + 2 * dXb + H;
  using zxbcdt = linear(u, w.inProj);
  using xbcIn = sliceColumns(zxbcdt, dInner, 2 * dXb + dInner);
  const { y: xbc, finalState } = causalConv1d(xbcIn.view([Bt, L, 2 * dXb + dInner]), w.convWeight, {
    bias: w.convBias,
    activation: "silu",
  });
  finalState.dispose();
  using X = Tensor.empty([Bt, L, H, P]);
  using A = Tensor.empty([Bt, L, H]);
  using Bh = Tensor.empty([Bt, L, H, N]);
  using Ch = Tensor.empty([Bt, L, H, N]);
  const shape = [R, H, o.kvHeads, P, N, cols, cols - H, 0];
  glue(
    "ssd_inputs",
    [xbc.buffer, X.buffer, zxbcdt.buffer, w.dtBias.buffer, w.aLog.buffer, A.buffer, Bh.buffer, Ch.buffer],
    R * H * Math.max(P, N),
    shape,
  );
  const { Y, finalState: state } = ssdChunked({ X, A, B: Bh, C: Ch }, { blockLen: o.blockLen ?? 64 });
  state.dispose();
  glue("add_skip", [xbc.buffer, Y.buffer, null, w.D.buffer], R * H * P, shape);
  xbc.dispose();
  using z = sliceColumns(zxbcdt, 0, dInner);
  using y = Y.view([Bt, L, dInner]);
  using g = gatedRmsNorm(y, z.view([Bt, L, dInner]), w.norm, { eps: o.eps, groupSize: dInner / nGroups });
  Y.dispose();
  return linear(g, w.outProj);
}
