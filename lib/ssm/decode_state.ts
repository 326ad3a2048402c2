/**
 * Rolling a Mamba-2 decoding state back to an accepted prefix (`kernels/decode_state.wgsl`), as
 * speculative decoding needs (method.md §3.9): a layer keeps the state at the start of a round (the
 * checkpoint) and the per-step inputs of the round; keeping m steps replays them from the checkpoint.
 * No per-step state is ever stored. The plain-loop twins are in `decode_state_ref.ts`.
 *
 *   ssdReplay:   S = S₀;  for t < m:  S ← exp(A_t) · S + X_t B_tᵀ
 *   convWindow:  the last W − 1 of [s₀ | x_0 … x_{m−1}]
 *
 * The kept count can live on the GPU ({@linkcode DeviceSteps}: a word of an i32 buffer that a kernel
 * wrote, e.g. the accepted drafts + 1 of a speculative round), so a round loop never reads it back.
 *
 * Shapes (outermost first, T the round's capacity): X (B, T, H, P), A (B, T, H), Bs (B, T, H, N);
 * SSM states (B, H, P, N); conv inputs (B, T, C); conv states (B, C, W − 1), oldest first.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, groupsFor, Params } from "../gpu/commands.ts";
import { dummyBuffer } from "../gpu/buffers.ts";
import { expectShape, fmtShape, type Tensor } from "../tensor/tensor.ts";

const FILE = "decode_state.wgsl";

/**
 * A kept-step count on the GPU: m = clamp(`counts[word]`, 0, `max`), where `max` is the number of steps
 * the round cached; m = `max` leaves the output as it is (the state after every cached step is already
 * there), as the host path does by not replaying.
 */
export interface DeviceSteps {
  /** i32 buffer holding the count. */
  counts: Tensor;
  /** Index of the count in `counts`. */
  word: number;
  /** Steps cached in the round (the largest count). */
  max: number;
  /**
   * Also write the resulting state into the checkpoint (so the next round can start without copying
   * the state there); the checkpoint must be the round's own buffer, not shared.
   */
  refresh?: boolean;
}

/** A kept-step count: known on the host, or in a GPU buffer. */
export type Steps = number | DeviceSteps;

function launch(
  entry: string,
  buffers: (GPUBuffer | null)[],
  n: number,
  words: number[],
  steps: Steps,
): void {
  const [gx, gy] = groupsFor(n, 256);
  const dyn = typeof steps !== "number";
  const all = [...buffers];
  while (all.length < 7) all.push(null);
  all.push(dyn ? steps.counts.buffer : dummyBuffer());
  const refresh = dyn && steps.refresh === true;
  const params = new Params().u32(n, gx * 256, ...words, dyn ? 1 : 0, dyn ? steps.word : 0, refresh ? 1 : 0);
  dispatch({ file: FILE, entry }, all, params, [gx, gy]);
}

/** The step count of the uniform words (the maximum for a device count), validated against T. */
function stepWords(op: string, steps: Steps, T: number): number {
  const m = typeof steps === "number" ? steps : steps.max;
  if (!Number.isInteger(m) || m < 0 || m > T) {
    throw new ShapeError(op, `steps must be a whole number in [0, ${T}], got ${m}`);
  }
  if (typeof steps !== "number") {
    if (
      steps.counts.dtype !== "i32" || !Number.isInteger(steps.word) || steps.word < 0 ||
      steps.word >= steps.counts.size
    ) {
      throw new ShapeError(op, `the device count must be a word of an i32 buffer, got word ${steps.word}`);
    }
  }
  return m;
}

/** The cached SSD inputs of a round: X (B, T, H, P), A (B, T, H), Bs (B, T, H, N). */
export interface ReplayInputs {
  /** X = x·dt (B, T, H, P). */
  X: Tensor;
  /** Log-decays A·dt (B, T, H). */
  A: Tensor;
  /** B per head (B, T, H, N). */
  Bs: Tensor;
}

/**
 * Writes into `out` (B, H, P, N) the state after the first `steps` cached steps, starting from
 * `checkpoint` (B, H, P, N). `out` must not be `checkpoint`.
 */
export function ssdReplay(checkpoint: Tensor, inp: ReplayInputs, steps: Steps, out: Tensor): void {
  const op = "ssdReplay";
  if (checkpoint.shape.length !== 4) {
    throw new ShapeError(op, `expected checkpoint (B, H, P, N), got ${fmtShape(checkpoint.shape)}`);
  }
  const [B, H, P, N] = checkpoint.shape;
  if (inp.X.shape.length !== 4) {
    throw new ShapeError(op, `expected X (B, T, H, P), got ${fmtShape(inp.X.shape)}`);
  }
  const T = inp.X.shape[1];
  expectShape(op, "X (B, T, H, P)", inp.X, [B, T, H, P]);
  expectShape(op, "A (B, T, H)", inp.A, [B, T, H]);
  expectShape(op, "Bs (B, T, H, N)", inp.Bs, [B, T, H, N]);
  expectShape(op, "out (B, H, P, N)", out, [B, H, P, N]);
  const m = stepWords(op, steps, T);
  if (out === checkpoint) throw new ShapeError(op, "out must be a different tensor from the checkpoint");
  launch(
    "ssd_replay",
    [checkpoint.buffer, inp.X.buffer, inp.A.buffer, inp.Bs.buffer, out.buffer],
    out.size,
    [B, T, H, P, N, m, 0, 0],
    steps,
  );
}

/**
 * Writes into `out` (B, C, W − 1) the conv state after the first `steps` of the round's conv inputs
 * `xs` (B, T, C), starting from `checkpoint` (B, C, W − 1). `out` must not be `checkpoint`.
 */
export function convWindow(checkpoint: Tensor, xs: Tensor, steps: Steps, out: Tensor): void {
  const op = "convWindow";
  if (checkpoint.shape.length !== 3 || xs.shape.length !== 3) {
    throw new ShapeError(
      op,
      `expected checkpoint (B, C, W − 1) and xs (B, T, C), got ${fmtShape(checkpoint.shape)} and ${
        fmtShape(xs.shape)
      }`,
    );
  }
  const [B, C, W1] = checkpoint.shape;
  const T = xs.shape[1];
  expectShape(op, "xs (B, T, C)", xs, [B, T, C]);
  expectShape(op, "out (B, C, W − 1)", out, [B, C, W1]);
  const m = stepWords(op, steps, T);
  if (out === checkpoint) throw new ShapeError(op, "out must be a different tensor from the checkpoint");
  if (out.size === 0) return;
  const refresh = typeof steps !== "number" && steps.refresh === true;
  if (refresh && W1 > 8) throw new ShapeError(op, `refreshing a window of ${W1} > 8 inputs is not supported`);
  launch(
    refresh ? "conv_window_refresh" : "conv_window",
    [checkpoint.buffer, xs.buffer, null, null, out.buffer],
    refresh ? B * C : out.size,
    [B, T, 0, 0, 0, m, C, W1],
    steps,
  );
}

/** The cached inputs of a Mamba-1 round: x after the conv (B, T, D), raw dt (B, T, D), B (B, T, G, N). */
export interface SelectiveReplayInputs {
  /** x after the conv (B, T, D). */
  x: Tensor;
  /** dt before the bias and the softplus (B, T, D). */
  dt: Tensor;
  /** B (B, T, G, N). */
  Bs: Tensor;
  /** A (D, N), negative. */
  A: Tensor;
  /** The dt bias (D), added before the softplus. */
  dtBias: Tensor;
}

/**
 * Mamba-1: writes into `out` (B, D, N) the state after the first `steps` cached steps from
 * `checkpoint` (B, D, N): S ← exp(δA) S + δ B x with δ = softplus(dt + bias). `out` must not be
 * `checkpoint`.
 */
export function selectiveReplay(
  checkpoint: Tensor,
  inp: SelectiveReplayInputs,
  steps: Steps,
  out: Tensor,
): void {
  const op = "selectiveReplay";
  if (checkpoint.shape.length !== 3) {
    throw new ShapeError(op, `expected checkpoint (B, D, N), got ${fmtShape(checkpoint.shape)}`);
  }
  const [B, D, N] = checkpoint.shape;
  if (inp.x.shape.length !== 3 || inp.Bs.shape.length !== 4) {
    throw new ShapeError(
      op,
      `expected x (B, T, D) and Bs (B, T, G, N), got ${fmtShape(inp.x.shape)} and ${fmtShape(inp.Bs.shape)}`,
    );
  }
  const T = inp.x.shape[1];
  const G = inp.Bs.shape[2];
  expectShape(op, "x (B, T, D)", inp.x, [B, T, D]);
  expectShape(op, "dt (B, T, D)", inp.dt, [B, T, D]);
  expectShape(op, "Bs (B, T, G, N)", inp.Bs, [B, T, G, N]);
  expectShape(op, "A (D, N)", inp.A, [D, N]);
  expectShape(op, "dtBias (D)", inp.dtBias, [D]);
  expectShape(op, "out (B, D, N)", out, [B, D, N]);
  if (D % G !== 0) throw new ShapeError(op, `D = ${D} is not a multiple of the groups G = ${G}`);
  const m = stepWords(op, steps, T);
  if (out === checkpoint) throw new ShapeError(op, "out must be a different tensor from the checkpoint");
  launch(
    "selective_replay",
    [
      checkpoint.buffer,
      inp.x.buffer,
      inp.dt.buffer,
      inp.Bs.buffer,
      out.buffer,
      inp.A.buffer,
      inp.dtBias.buffer,
    ],
    out.size,
    [B, T, D, 1, N, m, G, 0],
    steps,
  );
}

/**
 * A Mamba-2 layer's whole device commit in one dispatch (`commit_refresh`): {@linkcode ssdReplay} and
 * {@linkcode convWindow} with the count on the GPU and `refresh`, into `ssm` and `conv` and their
 * checkpoints. The same values as the two calls.
 */
export function commitMamba2(
  ssd: { checkpoint: Tensor; inputs: ReplayInputs; out: Tensor },
  conv: { checkpoint: Tensor; xs: Tensor; out: Tensor },
  steps: DeviceSteps,
): void {
  const op = "commitMamba2";
  const [B, H, P, N] = ssd.checkpoint.shape;
  const T = ssd.inputs.X.shape[1];
  expectShape(op, "X (B, T, H, P)", ssd.inputs.X, [B, T, H, P]);
  expectShape(op, "A (B, T, H)", ssd.inputs.A, [B, T, H]);
  expectShape(op, "Bs (B, T, H, N)", ssd.inputs.Bs, [B, T, H, N]);
  expectShape(op, "out (B, H, P, N)", ssd.out, [B, H, P, N]);
  const [, C, W1] = conv.checkpoint.shape;
  expectShape(op, "xs (B, T, C)", conv.xs, [B, T, C]);
  expectShape(op, "conv out (B, C, W − 1)", conv.out, [B, C, W1]);
  if (W1 > 8) throw new ShapeError(op, `refreshing a window of ${W1} > 8 inputs is not supported`);
  const m = stepWords(op, steps, T);
  const n = ssd.out.size;
  const nConv = B * C;
  const [gx, gy] = groupsFor(n + nConv, 256);
  dispatch(
    { file: FILE, entry: "commit_refresh" },
    [
      ssd.checkpoint.buffer,
      ssd.inputs.X.buffer,
      ssd.inputs.A.buffer,
      ssd.inputs.Bs.buffer,
      ssd.out.buffer,
      null,
      null,
      steps.counts.buffer,
      conv.checkpoint.buffer,
      conv.xs.buffer,
      conv.out.buffer,
    ],
    new Params().u32(n, gx * 256, B, T, H, P, N, m, C, W1, 1, steps.word, 1, nConv),
    [gx, gy],
  );
}
