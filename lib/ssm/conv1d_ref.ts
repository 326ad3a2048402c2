/**
 * The depthwise causal conv1d of Mamba layers as plain loops in float64: the specification that
 * `kernels/conv1d.wgsl` is tested against (method.md §2.2 "Depthwise causal conv1d").
 *
 *   a[b, t, c] = bias_c + Σ_{i=0..W−1} w[c, i] · x[b, t − W + 1 + i, c]
 *   y[b, t, c] = act(a[b, t, c])                act = silu or identity
 *
 * x[b, s, c] for s < 0 is zero, or the initial conv state s0[b, c, W − 1 + s] (the W − 1 inputs before
 * the sequence, oldest first). The final state holds the last W − 1 inputs the same way, so a prefill
 * followed by {@linkcode causalConv1dStepRef} steps equals the full sequence.
 *
 * Shapes: x, y (B, L, C) channels-last; w (C, W) (the checkpoint's (C, 1, W) read flat); bias (C);
 * states (B, C, W − 1).
 *
 * @module
 */

/** Activation after the convolution: SiLU (Mamba, MambaInLlama) or identity (Phi-Mamba). */
export type Activation = "silu" | "identity";

/** Sizes of a conv call: batch B, length L, channels C, kernel width W. */
export interface ConvDims {
  B: number;
  L: number;
  C: number;
  W: number;
}

/** Optional parts of a conv call. */
export interface ConvRefOptions {
  bias?: ArrayLike<number>;
  activation?: Activation;
  initialState?: ArrayLike<number>;
}

function sigmoid(v: number): number {
  return 1 / (1 + Math.exp(-v));
}

/** x[b, s, c] with s possibly negative (then the initial state, or 0). */
function input(
  x: ArrayLike<number>,
  dims: ConvDims,
  s0: ArrayLike<number> | undefined,
  b: number,
  s: number,
  c: number,
) {
  const { L, C, W } = dims;
  if (s >= 0) return x[(b * L + s) * C + c];
  return s0 ? s0[(b * C + c) * (W - 1) + W - 1 + s] : 0;
}

/** The pre-activation a[b, t, c]. */
function preact(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  dims: ConvDims,
  o: ConvRefOptions,
  b: number,
  t: number,
  c: number,
) {
  const W = dims.W;
  let a = o.bias ? o.bias[c] : 0;
  for (let i = 0; i < W; i++) a += w[c * W + i] * input(x, dims, o.initialState, b, t - W + 1 + i, c);
  return a;
}

/** Forward: y (B, L, C) and the final state (B, C, W − 1). */
export function causalConv1dRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  dims: ConvDims,
  o: ConvRefOptions = {},
): { y: Float64Array; finalState: Float64Array } {
  const { B, L, C, W } = dims;
  const y = new Float64Array(B * L * C);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      for (let c = 0; c < C; c++) {
        const a = preact(x, w, dims, o, b, t, c);
        y[(b * L + t) * C + c] = o.activation === "silu" ? a * sigmoid(a) : a;
      }
    }
  }
  const finalState = new Float64Array(B * C * (W - 1));
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      for (let j = 0; j < W - 1; j++) {
        finalState[(b * C + c) * (W - 1) + j] = input(x, dims, o.initialState, b, L - (W - 1) + j, c);
      }
    }
  }
  return { y, finalState };
}

/** Gradients of Σ y · dy: dx (B, L, C), dw (C, W), dbias (C), dinitialState (B, C, W − 1). */
export function causalConv1dBackwardRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  dy: ArrayLike<number>,
  dims: ConvDims,
  o: ConvRefOptions = {},
): { x: Float64Array; weight: Float64Array; bias: Float64Array; initialState: Float64Array } {
  const { B, L, C, W } = dims;
  const dx = new Float64Array(B * L * C);
  const dw = new Float64Array(C * W);
  const db = new Float64Array(C);
  const ds0 = new Float64Array(B * C * (W - 1));
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      for (let c = 0; c < C; c++) {
        // da = dy · act'(a), with silu'(a) = σ(a)(1 + a(1 − σ(a)))
        const a = preact(x, w, dims, o, b, t, c);
        const g = dy[(b * L + t) * C + c];
        const sg = sigmoid(a);
        const da = o.activation === "silu" ? g * sg * (1 + a * (1 - sg)) : g;
        db[c] += da;
        for (let i = 0; i < W; i++) {
          const s = t - W + 1 + i;
          dw[c * W + i] += da * input(x, dims, o.initialState, b, s, c);
          if (s >= 0) dx[(b * L + s) * C + c] += da * w[c * W + i];
          else ds0[(b * C + c) * (W - 1) + W - 1 + s] += da * w[c * W + i];
        }
      }
    }
  }
  return { x: dx, weight: dw, bias: db, initialState: ds0 };
}

/**
 * One decoding step: y (B, C) for the new input x (B, C), and the state (B, C, W − 1) shifted left by
 * one with x appended (a new array; the input is not modified).
 */
export function causalConv1dStepRef(
  state: ArrayLike<number>,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  dims: { B: number; C: number; W: number },
  o: { bias?: ArrayLike<number>; activation?: Activation } = {},
): { y: Float64Array; state: Float64Array } {
  const { B, C, W } = dims;
  const y = new Float64Array(B * C);
  const next = new Float64Array(B * C * (W - 1));
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      const row = (b * C + c) * (W - 1);
      let a = o.bias ? o.bias[c] : 0;
      for (let i = 0; i < W - 1; i++) a += w[c * W + i] * state[row + i];
      a += w[c * W + W - 1] * x[b * C + c];
      y[b * C + c] = o.activation === "silu" ? a * sigmoid(a) : a;
      for (let j = 0; j < W - 2; j++) next[row + j] = state[row + j + 1];
      if (W > 1) next[row + W - 2] = x[b * C + c];
    }
  }
  return { y, state: next };
}
