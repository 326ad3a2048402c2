/**
 * Distillation losses (`kernels/distill_loss.wgsl`), differentiable with respect to the student:
 * forward and reverse KL with temperature and both normalisations, the per-token L2 of MOHAWK stage 2
 * and the Frobenius distance of stage 1. Each returns a (1) tensor on the GPU and says its reduction.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dummyBuffer } from "../gpu/buffers.ts";
import { dispatch, Params } from "../gpu/commands.ts";
import { copyElements } from "../tensor/copy.ts";
import { rowGrid } from "../tensor/launch.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";
import { record } from "./tape.ts";
import { scale } from "../tensor/elementwise.ts";
import { sumRowsInto } from "../tensor/reduce.ts";
import { crossEntropyRows, weightedCrossEntropyBackward } from "../tensor/softmax.ts";

const FILE = "distill_loss.wgsl";

/** How per-row losses become one number. */
export type Reduction =
  /** Sum over the valid rows divided by their count (token mean; M1's reverse KL). */
  | { kind: "mean" }
  /** Sum over all rows divided by a fixed number (MambaInLlama's KL: `batchmean` on (B, L, V) = ÷ B). */
  | { kind: "sum-over"; divisor: number };

/** Options of the KL losses. */
export interface KlOptions {
  /** Softmax temperature τ of both distributions (default 1; MambaInLlama uses none). */
  temperature?: number;
  /** Default: token mean. */
  reduction?: Reduction;
  /** Labels (R) i32: rows whose label is `ignoreIndex` do not count (default: every row counts). */
  labels?: Tensor;
  /** Default −100. */
  ignoreIndex?: number;
}

function rowLoss(
  entry: "kl" | "l2",
  student: Tensor,
  teacher: Tensor,
  mode: number,
  invTau: number,
  reduction: Reduction,
  labels: Tensor | undefined,
  ignore: number,
): Tensor {
  if (student.size !== teacher.size) {
    throw new ShapeError(
      entry,
      `student ${fmtShape(student.shape)} and teacher ${fmtShape(teacher.shape)} differ`,
    );
  }
  const C = student.shape[student.shape.length - 1];
  const R = student.size / C;
  if (labels && labels.size !== R) {
    throw new ShapeError(entry, `labels have ${labels.size} values for ${R} rows`);
  }
  const { groups, yrow } = rowGrid(R);
  const div = reduction.kind === "sum-over" ? reduction.divisor : 0;
  const params = () =>
    new Params().u32(R, C, yrow, mode).f32v(invTau).i32v(ignore).u32(labels ? 1 : 0).f32v(div);
  const lab = labels?.buffer ?? dummyBuffer();
  using rows = Tensor.empty([R]);
  dispatch(
    { file: FILE, entry: `${entry}_rows` },
    [student.buffer, teacher.buffer, rows.buffer],
    params(),
    groups,
  );
  const stats = Tensor.empty([2]);
  dispatch({ file: FILE, entry: "finish" }, [null, null, rows.buffer, lab, stats.buffer], params(), [1]);
  const loss = Tensor.empty([1]);
  copyElements(stats, 0, loss, 0, 1);
  const save = [student, teacher, stats, ...(labels ? [labels] : [])];
  const out = record([student], loss, save, (g, [s, t, st, l]) => {
    const ds = Tensor.empty(s.shape);
    dispatch(
      { file: FILE, entry: `${entry}_backward` },
      [s.buffer, t.buffer, ds.buffer, l?.buffer ?? dummyBuffer(), st.buffer, g.buffer],
      params(),
      groups,
    );
    return [ds];
  });
  stats.dispose();
  return out;
}

/**
 * KL(teacher ‖ student) over the last dimension of logits (…, V): Σ_v p_T (log p_T − log p_S) with
 * p = softmax(logits / τ), reduced per `opts.reduction` (default token mean). No τ² factor.
 */
export function klDivergence(student: Tensor, teacher: Tensor, opts: KlOptions = {}): Tensor {
  return rowLoss(
    "kl",
    student,
    teacher,
    0,
    1 / (opts.temperature ?? 1),
    opts.reduction ?? { kind: "mean" },
    opts.labels,
    opts.ignoreIndex ?? -100,
  );
}

/** Reverse KL(student ‖ teacher) = Σ_v p_S (log p_S − log p_T) (M1), reduced as {@linkcode klDivergence}. */
export function reverseKlDivergence(student: Tensor, teacher: Tensor, opts: KlOptions = {}): Tensor {
  return rowLoss(
    "kl",
    student,
    teacher,
    1,
    1 / (opts.temperature ?? 1),
    opts.reduction ?? { kind: "mean" },
    opts.labels,
    opts.ignoreIndex ?? -100,
  );
}

/**
 * MOHAWK stage 2: the mean over rows (tokens) of ‖student_r − teacher_r‖₂ over the last dimension
 * (not squared). Gradients flow to the student only.
 */
export function tokenL2(
  student: Tensor,
  teacher: Tensor,
  opts: { labels?: Tensor; ignoreIndex?: number } = {},
): Tensor {
  return rowLoss("l2", student, teacher, 0, 1, { kind: "mean" }, opts.labels, opts.ignoreIndex ?? -100);
}

/**
 * MOHAWK stage 1: ‖M_S − M_T‖_F per mixing matrix, averaged over matrices. Inputs (…, T, T) (e.g.
 * (B, H, T, T)); the norm is not squared and not normalised by T, as in the reference code.
 */
export function frobeniusDistance(student: Tensor, teacher: Tensor): Tensor {
  const T2 = student.shape.slice(-2).reduce((a, b) => a * b, 1);
  return tokenL2(student.view([student.size / T2, T2]), teacher.view([teacher.size / T2, T2]));
}

/**
 * The DPO loss of a batch of preference pairs (MambaInLlama's `train_dpo.py`, TRL's sigmoid loss):
 * mean_b −log σ(β[(log π − log π_ref)(y_w) − (log π − log π_ref)(y_l)]), where log π(y) is the sum of
 * the answer tokens' log-probabilities.
 *
 * `chosen` and `rejected` are the policy's logits (B, T, V) on the two answers; `chosenLabels` and
 * `rejectedLabels` (B·T) i32 hold each position's next token, with `ignoreIndex` on prompt and padding
 * positions; `refChosen` / `refRejected` (B) are the frozen reference model's log π_ref(y), from
 * {@linkcode sequenceLogProbs}. Gradients flow to both policy logits.
 */
export function dpoLoss(
  chosen: Tensor,
  rejected: Tensor,
  labels: { chosen: Tensor; rejected: Tensor },
  ref: { chosen: Tensor; rejected: Tensor },
  opts: { beta: number; ignoreIndex?: number },
): Tensor {
  const [B] = chosen.shape;
  const ignore = opts.ignoreIndex ?? -100;
  // sums[0..B) policy chosen, [B..2B) policy rejected, [2B..3B) ref chosen, [3B..4B) ref rejected:
  // each a sum of token cross-entropies, i.e. −log π(y).
  using sums = Tensor.zeros([4 * B]);
  for (const [i, logits, lab] of [[0, chosen, labels.chosen], [1, rejected, labels.rejected]] as const) {
    using rows = crossEntropyRows(logits, lab, ignore);
    sumRowsInto(rows.view([B, rows.size / B]), sums, i * B);
  }
  for (const [i, r] of [[2, ref.chosen], [3, ref.rejected]] as const) {
    using neg = scale(r, -1);
    copyElements(neg, 0, sums, i * B, B);
  }
  const stats = Tensor.empty([1 + B]);
  dispatch(
    { file: FILE, entry: "dpo" },
    [null, null, sums.buffer, null, stats.buffer],
    new Params().u32(B, 0, 0, 0).f32v(1).i32v(ignore).u32(0).f32v(opts.beta),
    [1],
  );
  const loss = Tensor.empty([1]);
  copyElements(stats, 0, loss, 0, 1);
  const out = record([chosen, rejected], loss, [chosen, rejected, labels.chosen, labels.rejected, stats], (
    g,
    [cw, cl, lw, ll, st],
  ) => [
    // d loss / d logits = coef · d(pol_w)/d logits with pol_w = Σ CE: per-row weights ±coef[b]·g.
    weightedCrossEntropyBackward(cw, lw, st, g, 1, ignore),
    weightedCrossEntropyBackward(cl, ll, st, g, -1, ignore),
  ]);
  stats.dispose();
  return out;
}

/** log π(y) per sequence (B) of logits (B, T, V) against labels (B·T) (ignored positions skipped). */
export function sequenceLogProbs(logits: Tensor, labels: Tensor, ignoreIndex = -100): Tensor {
  const [B] = logits.shape;
  using rows = crossEntropyRows(logits, labels, ignoreIndex);
  using sums = Tensor.zeros([B]);
  sumRowsInto(rows.view([B, rows.size / B]), sums, 0);
  return scale(sums, -1);
}
