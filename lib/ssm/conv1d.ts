/**
 * The depthwise causal conv1d of Mamba layers on the GPU (`kernels/conv1d.wgsl`): forward with an
 * optional initial conv state and the final one, the backward (weight and bias gradients reduced over
 * (B, L) in two passes, no atomics), and the one-token decoding step. The plain-loop twins are in
 * `conv1d_ref.ts` (method.md §2.2).
 *
 *   y[b, t, c] = act(bias_c + Σ_{i<W} w[c, i] · x[b, t − W + 1 + i, c])
 *
 * Shapes (outermost first): x, y, dy (B, L, C) channels-last, as the in_proj produces them; weight
 * (C, W) or the checkpoint's (C, 1, W), read flat; bias (C); conv states (B, C, W − 1), oldest input
 * first; step input and output (B, C). Kernel widths 1 ≤ W ≤ 8.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dummyBuffer } from "../gpu/buffers.ts";
import { type Binding, dispatch, groupsFor, Params } from "../gpu/commands.ts";
import { expectShape, fmtShape, Tensor } from "../tensor/tensor.ts";

/** Activation after the convolution: SiLU (Mamba, MambaInLlama) or identity (Phi-Mamba). */
export type Activation = "silu" | "identity";

/** Options of the conv ops: bias (C), activation (default "silu") and an initial state (B, C, W − 1). */
export interface CausalConv1dOptions {
  /** Bias (C), added before the activation. */
  bias?: Tensor;
  /** "silu" (default) or "identity". */
  activation?: Activation;
  /** The W − 1 inputs before the sequence (B, C, W − 1), oldest first; zeros when absent. */
  initialState?: Tensor;
}

/** Gradients of {@linkcode causalConv1d}, in the shapes of its inputs (bias and state when given). */
export interface CausalConv1dGrads {
  x: Tensor;
  weight: Tensor;
  bias?: Tensor;
  initialState?: Tensor;
}

const FILE = "conv1d.wgsl";
/** Rows of (B·L) per partial sum of the weight gradient. */
const ROWS_PER_BLOCK = 256;

/** C and W of a weight (C, W) or (C, 1, W) for `C` channels; throws ShapeError otherwise. */
function kernelWidth(op: string, weight: Tensor, C: number): number {
  const s = weight.shape;
  const W = s[s.length - 1];
  const ok = (s.length === 2 || (s.length === 3 && s[1] === 1)) && s[0] === C && W >= 1 && W <= 8;
  if (!ok) {
    throw new ShapeError(op, `expected weight (C, W) or (C, 1, W) with C = ${C}, W ≤ 8, got ${fmtShape(s)}`);
  }
  return W;
}

/** Checks x (B, L, C), the weight, bias and initial state; returns the sizes. */
function convDims(op: string, x: Tensor, weight: Tensor, o: CausalConv1dOptions) {
  if (x.shape.length !== 3) throw new ShapeError(op, `expected x (B, L, C), got ${fmtShape(x.shape)}`);
  const [B, L, C] = x.shape;
  const W = kernelWidth(op, weight, C);
  if (o.bias) expectShape(op, "bias (C)", o.bias, [C]);
  if (o.initialState) expectShape(op, "initialState (B, C, W − 1)", o.initialState, [B, C, W - 1]);
  return { B, L, C, W };
}

/**
 * One invocation per element for `n` elements (workgroups of 256, grid y past 65535 groups); the kernel
 * reads `p.n`, `p.row` and then `words`. `null` skips a binding the entry point does not use.
 */
function launch(entry: string, buffers: (Binding | null)[], n: number, words: number[]): void {
  const [gx, gy] = groupsFor(n, 256);
  dispatch({ file: FILE, entry }, buffers, new Params().u32(n, gx * 256, ...words), [gx, gy]);
}

/** The Params words shared by every entry point (n and row are set by the launch). */
function shapeWords(d: { B: number; L: number; C: number; W: number }, o: CausalConv1dOptions): number[] {
  const silu = (o.activation ?? "silu") === "silu" ? 1 : 0;
  return [d.B, d.L, d.C, d.W, o.bias ? 1 : 0, o.initialState ? 1 : 0, silu];
}

/**
 * Causal depthwise conv1d over time of x (B, L, C) with weight (C, W) or (C, 1, W).
 * Returns y (B, L, C) and the final conv state (B, C, W − 1): the last W − 1 inputs, which a following
 * {@linkcode causalConv1dStep} or a next chunk's `initialState` continues from.
 */
export function causalConv1d(
  x: Tensor,
  weight: Tensor,
  opts: CausalConv1dOptions = {},
): { y: Tensor; finalState: Tensor } {
  const d = convDims("causalConv1d", x, weight, opts);
  const y = Tensor.empty([d.B, d.L, d.C]);
  const finalState = Tensor.empty([d.B, d.C, d.W - 1]);
  const n = y.size + finalState.size;
  launch(
    "forward",
    [
      x.buffer,
      weight.buffer,
      opts.bias?.buffer ?? dummyBuffer(),
      opts.initialState?.buffer ?? dummyBuffer(),
      y.buffer,
      finalState.buffer,
    ],
    n,
    shapeWords(d, opts),
  );
  return { y, finalState };
}

/**
 * Gradients of {@linkcode causalConv1d} for the upstream gradient dy (B, L, C) of y: x, weight (the
 * weight's shape), and bias / initialState when those were given. The final state's gradient is not
 * taken (it leaves the layer only when decoding).
 */
export function causalConv1dBackward(
  x: Tensor,
  weight: Tensor,
  dy: Tensor,
  opts: CausalConv1dOptions = {},
): CausalConv1dGrads {
  const op = "causalConv1dBackward";
  const d = convDims(op, x, weight, opts);
  expectShape(op, "dy (B, L, C)", dy, [d.B, d.L, d.C]);
  const { B, L, C, W } = d;
  const words = shapeWords(d, opts);
  const bias = opts.bias?.buffer ?? dummyBuffer();
  const s0 = opts.initialState?.buffer ?? dummyBuffer();
  const reads: (Binding | null)[] = [x.buffer, weight.buffer, bias, s0, null, null, dy.buffer];

  // dx and the initial state's gradient, one invocation per element.
  const dx = Tensor.empty([B, L, C]);
  const ds0 = opts.initialState ? Tensor.empty([B, C, W - 1]) : Tensor.empty([1]);
  const n = dx.size + (opts.initialState ? ds0.size : 0);
  launch("backward_dx", [...reads, dx.buffer, ds0.buffer], n, words);

  // dw and dbias: partial sums over blocks of rows, then the sum of the blocks.
  const R = B * L;
  const rpb = Math.max(ROWS_PER_BLOCK, 4 * Math.ceil(R / 65535 / 4));
  const nblk = Math.max(1, Math.ceil(R / rpb));
  using part = Tensor.empty([nblk, C * W + C]);
  dispatch(
    { file: FILE, entry: "backward_dw" },
    [...reads, null, null, part.buffer],
    new Params().u32(0, 0, ...words, nblk, rpb),
    [Math.ceil(C / 64), nblk],
  );
  const dw = Tensor.empty(weight.shape);
  const db = Tensor.empty([C]);
  launch(
    "backward_dw_final",
    [null, null, null, null, null, null, null, null, null, part.buffer, dw.buffer, db.buffer],
    C * W + C,
    [...words, nblk, rpb],
  );

  const grads: CausalConv1dGrads = { x: dx, weight: dw };
  if (opts.bias) grads.bias = db;
  else db.dispose();
  if (opts.initialState) grads.initialState = ds0;
  else ds0.dispose();
  return grads;
}

/**
 * One decoding step: y (B, C) for the new input x (B, C). `state` (B, C, W − 1) holds the previous
 * W − 1 inputs and is rolled in place (shifted left by one, x appended), as `causal_conv1d_update`.
 */
export function causalConv1dStep(
  state: Tensor,
  x: Tensor,
  weight: Tensor,
  opts: { bias?: Tensor; activation?: Activation } = {},
): Tensor {
  const op = "causalConv1dStep";
  if (x.shape.length !== 2) throw new ShapeError(op, `expected x (B, C), got ${fmtShape(x.shape)}`);
  const [B, C] = x.shape;
  const W = kernelWidth(op, weight, C);
  expectShape(op, "state (B, C, W − 1)", state, [B, C, W - 1]);
  if (opts.bias) expectShape(op, "bias (C)", opts.bias, [C]);
  const y = Tensor.empty([B, C]);
  const skip = Array<null>(9).fill(null); // bindings 4 … 12
  launch(
    "step",
    [null, weight.buffer, opts.bias?.buffer ?? dummyBuffer(), ...skip, state.buffer, x.buffer, y.buffer],
    B * C,
    shapeWords({ B, L: 1, C, W }, opts),
  );
  return y;
}
