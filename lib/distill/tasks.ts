/**
 * The training tasks of the distillation recipes (each a {@linkcode TrainTask} for `train()`):
 *
 * - {@linkcode distillTask}: end-to-end KD and SFT, and each step of MambaInLlama's stepwise
 *   replacement: L = w_CE · CE(student, next tokens) + w_KL · KL(p_T ‖ p_S) on random windows
 *   (method.md §3.7), with the KL's token-mean or MambaInLlama's `batchmean` (sum ÷ B) reduction.
 * - {@linkcode hiddenAlignmentTask}: MOHAWK stage 2 (method.md §4.3): every converted layer ℓ is fed
 *   the teacher's hidden state entering ℓ; loss = Σ_ℓ mean over tokens of ‖mixer_S(u_ℓ) − attn_T(u_ℓ)‖₂.
 * - {@linkcode dpoTask}: DPO on preference pairs against a frozen reference model.
 *
 * Which parameters train is the recipe's choice (`train` / `freeze` name patterns); the teacher
 * never trains and runs outside the tape.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { add, crossEntropy, rmsNorm, scale } from "../autograd/ops.ts";
import { dpoLoss, klDivergence, sequenceLogProbs, tokenL2 } from "../autograd/losses.ts";
import { lmHeadLoss } from "../autograd/lm_loss.ts";
import { GradTape } from "../autograd/tape.ts";
import { randomWindows } from "../data/windows.ts";
import type { LlamaModel } from "../models/llama.ts";
import type { Rng } from "../random.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { TrainTask } from "../train/loop.ts";
import { selectTrainable } from "../train/optim.ts";
import type { PreferencePair } from "./data.ts";
import { pseudoLabelBatch, type PseudoLabelOptions } from "./pseudo_labels.ts";

/** Which student parameters train: name patterns (see `selectTrainable`). */
export interface TrainableSpec {
  /** Only names matching one of these train (default: all). */
  train?: string[];
  /** Names matching one of these are frozen. */
  freeze?: string[];
}

/** Options of {@linkcode distillTask}. */
export interface DistillTaskOptions extends TrainableSpec {
  /** Sequences per step (B) and tokens per sequence (T). */
  batch: number;
  seqLen: number;
  /** Weight of the next-token cross-entropy (default 1). */
  ceWeight?: number;
  /** Weight of KL(teacher ‖ student) (default 0: plain SFT). */
  klWeight?: number;
  /** "mean" over tokens (default) or MambaInLlama's "batchmean" (sum over positions ÷ B). */
  klReduction?: "mean" | "batchmean";
  /** Softmax temperature of the KL (default 1). */
  temperature?: number;
  /** Train on the teacher's continuations of the data's prompts (sequence-level KD) instead of the data. */
  pseudoLabels?: PseudoLabelOptions;
  /** LM head and loss in chunks of rows or as whole logits (default "auto": chunked). */
  lmHead?: LmHeadMode;
}

/** A student's trainable parameters and its whole state, per the spec. */
function studentParams(student: LlamaModel, spec: TrainableSpec) {
  const state = student.namedParameters();
  return { state, params: selectTrainable(state, spec) };
}

/** KD / SFT on random windows of `ids` (the teacher may be null when `klWeight` is 0). */
export function distillTask(
  teacher: LlamaModel | null,
  student: LlamaModel,
  ids: Int32Array,
  opts: DistillTaskOptions,
): TrainTask {
  const { batch: B, seqLen: T } = opts;
  const klW = opts.klWeight ?? 0;
  if ((klW > 0 || opts.pseudoLabels) && !teacher) {
    throw new ShapeError("distill", "a KL term and pseudo-labels need a teacher");
  }
  const V = student.config.vocabSize;
  if (teacher && teacher.config.vocabSize !== V) {
    throw new ShapeError("distill", `teacher vocabulary ${teacher.config.vocabSize} ≠ student ${V}`);
  }
  const { state, params } = studentParams(student, opts);
  return {
    params,
    state,
    step(_step: number, rng: Rng) {
      const w = randomWindows(ids, { batch: B, seqLen: T, rng });
      const pl = opts.pseudoLabels;
      const batch = pl
        ? pseudoLabelBatch(teacher!, promptsOf(w.input, B, T, pl.promptLen), B, T, {
          ...pl,
          seed: rng.int(2 ** 31),
        })
        : { x: Tensor.from(w.input, [B, T], "i32"), y: Tensor.from(w.target, [B * T], "i32") };
      using x = batch.x;
      using y = batch.y;
      using tape = new GradTape();
      const { loss, parts } = tape.run(() => distillLoss(teacher, student, x, y, opts));
      tape.backward(loss);
      return { loss, parts: Object.keys(parts).length > 1 ? parts : disposeAll(parts), tokens: B * T };
    },
  };
}

/** How {@linkcode distillLoss} computes the LM head: in chunks of rows (lmHeadLoss) or as whole logits. */
export type LmHeadMode = "auto" | "chunked" | "full";

/**
 * Whether the step takes the chunked head. `auto` (the default) always does: besides fitting any
 * vocabulary, it measured as fast as whole logits where those fit (brown-llama-6m at 32 × 256 on the
 * H200: 27.1 ms against 27.7 ms per distillation step, 1.62 GB peak against 1.87 GB). `full` keeps the
 * whole logits (linear + crossEntropy + klDivergence) while they fit one binding.
 */
export function chunkedHeadFor(mode: LmHeadMode | undefined, _rows: number, _vocab: number): boolean {
  return (mode ?? "auto") !== "full";
}

/**
 * One step's loss w_CE · CE + w_KL · KL of the student on x (B, T) against next tokens y (B·T), the
 * teacher run without gradients; call it inside `tape.run` and back-propagate the returned loss.
 * Returns the loss and its named parts ("ce", "kl"; the caller owns all of them). Unless `lmHead` is
 * "full", both models stop at their final hidden states and `lmHeadLoss` computes the heads and the
 * loss chunk by chunk of rows (see {@linkcode chunkedHeadFor}).
 */
export function distillLoss(
  teacher: LlamaModel | null,
  student: LlamaModel,
  x: Tensor,
  y: Tensor,
  opts: Omit<DistillTaskOptions, "batch" | "seqLen"> & { lmHead?: LmHeadMode },
): { loss: Tensor; parts: Record<string, Tensor> } {
  const [B, T] = x.shape;
  const V = student.config.vocabSize;
  const ceW = opts.ceWeight ?? 1;
  const klW = opts.klWeight ?? 0;
  const reduction = opts.klReduction === "batchmean"
    ? { kind: "sum-over" as const, divisor: B }
    : { kind: "mean" as const };
  const parts: Record<string, Tensor> = {};
  if (chunkedHeadFor(opts.lmHead, B * T, V)) {
    if (ceW === 0 && klW === 0) throw new ShapeError("distill", "both loss weights are 0");
    // The teacher's parameters do not require grad, so its ops are not taped.
    const th = klW > 0 ? teacher!.finalHidden(x) : null;
    using hs = student.finalHidden(x);
    const r = lmHeadLoss(hs.view([B * T, student.config.hiddenSize]), student.lmHead, {
      targets: y,
      ceWeight: ceW,
      klWeight: klW,
      teacher: th ? { hidden: th, head: teacher!.lmHead } : undefined,
      klReduction: reduction,
      temperature: opts.temperature,
    });
    th?.dispose();
    if (ceW > 0) parts.ce = r.ce;
    else r.ce.dispose();
    if (klW > 0) parts.kl = r.kl;
    else r.kl.dispose();
    return { loss: r.loss, parts };
  }
  const teacherLogits = klW > 0 ? teacher!.forward(x).logits : null;
  const { logits } = student.forward(x);
  const flat = logits.view([B * T, V]);
  let total: Tensor | null = null;
  const addTerm = (name: string, term: Tensor, weight: number) => {
    parts[name] = term;
    using weighted = weight === 1 ? term.retain() : scale(term, weight);
    total = addLoss(total, weighted);
  };
  if (ceW > 0) addTerm("ce", crossEntropy(flat, y), ceW);
  if (teacherLogits) {
    addTerm(
      "kl",
      klDivergence(flat, teacherLogits.view([B * T, V]), { reduction, temperature: opts.temperature }),
      klW,
    );
  }
  logits.dispose();
  teacherLogits?.dispose();
  if (!total) throw new ShapeError("distill", "both loss weights are 0");
  return { loss: total as Tensor, parts };
}

/** The first P ids of each of B rows of T. */
function promptsOf(input: Int32Array, B: number, T: number, P: number): Int32Array {
  const out = new Int32Array(B * P);
  for (let b = 0; b < B; b++) out.set(input.subarray(b * T, b * T + P), b * P);
  return out;
}

function disposeAll(parts: Record<string, Tensor>): undefined {
  for (const t of Object.values(parts)) t.dispose();
  return undefined;
}

/** Options of the per-layer alignment tasks (MOHAWK stages 1 and 2). */
export interface AlignmentTaskOptions {
  batch: number;
  seqLen: number;
  /** The student layers to align (its Mamba layers). */
  layers: number[];
}

/** total + term (total null: the term itself); the caller keeps its own reference to `term`. */
export function addLoss(total: Tensor | null, term: Tensor): Tensor {
  if (!total) return term.retain();
  const sum = add(total, term);
  total.dispose();
  return sum;
}

/** What one per-layer alignment objective compares. */
export interface LayerObjective {
  /** Name prefix of each layer's loss part (`<prefix>_layer<l>`). */
  part: string;
  /** The teacher's attention probabilities are needed (stage 1). */
  attentions?: boolean;
  /**
   * Layer l's loss term (1) for the student's normalised input xn (B, T, D), given the teacher's run
   * (hidden states entering each layer, and attention probabilities when asked).
   */
  term(
    l: number,
    xn: Tensor,
    teacher: { hidden: Tensor[]; attentions?: Tensor[]; xnTeacher: Tensor },
  ): Tensor;
}

/**
 * A MOHAWK alignment task: every listed student layer is fed the teacher's hidden state entering that
 * layer (through the student's own input norm) and scored by `objective`; the loss is the sum over
 * layers. Only the listed layers' mixers train, and each term reaches one mixer (layers independent).
 */
export function layerAlignmentTask(
  teacher: LlamaModel,
  student: LlamaModel,
  ids: Int32Array,
  opts: AlignmentTaskOptions,
  objective: LayerObjective,
): TrainTask {
  const { batch: B, seqLen: T, layers } = opts;
  const eps = student.config.rmsNormEps;
  const { state, params } = studentParams(student, {
    train: layers.map((l) => `model.layers.${l}.mamba.*`),
  });
  return {
    params,
    state,
    step(_step: number, rng: Rng) {
      const w = randomWindows(ids, { batch: B, seqLen: T, rng });
      using x = Tensor.from(w.input, [B, T], "i32");
      const t = teacher.forward(x, { hidden: true, attentions: objective.attentions });
      t.logits.dispose();
      const hidden = t.hidden!;
      using tape = new GradTape();
      const parts: Record<string, Tensor> = {};
      const loss = tape.run(() => {
        let total: Tensor | null = null;
        for (const l of layers) {
          using xnTeacher = rmsNorm(hidden[l], teacher.layers[l].inputNorm, eps);
          using xn = rmsNorm(hidden[l], student.layers[l].inputNorm, eps);
          const term = objective.term(l, xn, { hidden, attentions: t.attentions, xnTeacher });
          parts[`${objective.part}_layer${l}`] = term;
          total = addLoss(total, term);
        }
        return total!;
      });
      tape.backward(loss);
      for (const h of hidden) h.dispose();
      for (const a of t.attentions ?? []) a.dispose();
      return { loss, parts: layers.length > 1 ? parts : disposeAll(parts), tokens: B * T };
    },
  };
}

/**
 * MOHAWK stage 2: each listed student layer's mixer, fed the teacher's hidden state entering that
 * layer, against the teacher's attention output there: mean over tokens of ‖y_S − y_T‖₂.
 */
export function hiddenAlignmentTask(
  teacher: LlamaModel,
  student: LlamaModel,
  ids: Int32Array,
  opts: AlignmentTaskOptions,
): TrainTask {
  const D = student.config.hiddenSize;
  return layerAlignmentTask(teacher, student, ids, opts, {
    part: "l2",
    term(l, xn, t) {
      using target = teacher.mixerForward(l, t.xnTeacher);
      using out = student.mixerForward(l, xn);
      const R = out.size / D;
      return tokenL2(out.view([R, D]), target.view([R, D]));
    },
  });
}

/** Options of {@linkcode dpoTask}. */
export interface DpoTaskOptions extends TrainableSpec {
  /** Pairs per step. */
  batch: number;
  /** β of the DPO loss (default 0.1). */
  beta?: number;
  /** Longest prompt + answer (longer pairs are cut from the answer's end). */
  maxLen?: number;
  /** Padding id (default: the end-of-text id 0). */
  padId?: number;
}

/**
 * DPO (TRL's sigmoid loss) of `policy` against the frozen `reference` on batches of `pairs` drawn
 * at random; answers are scored on their own tokens (prompt and padding ignored).
 */
export function dpoTask(
  policy: LlamaModel,
  reference: LlamaModel,
  pairs: PreferencePair[],
  opts: DpoTaskOptions,
): TrainTask {
  const B = opts.batch;
  const maxLen = opts.maxLen ?? 256;
  const pad = opts.padId ?? 0;
  const { state, params } = studentParams(policy, opts);
  /** (B, T) inputs and (B·T) labels of prompt + answer sequences, right-padded. */
  const pack = (rows: { prompt: number[]; answer: number[] }[]) => {
    const seqs = rows.map((r) => [...r.prompt, ...r.answer].slice(0, maxLen));
    const T = Math.max(2, ...seqs.map((s) => s.length));
    const input = new Int32Array(B * T).fill(pad);
    const labels = new Int32Array(B * T).fill(-100);
    seqs.forEach((s, b) => {
      input.set(s, b * T);
      // position t predicts token t + 1: label it when that token belongs to the answer
      for (let t = 0; t + 1 < s.length; t++) if (t + 1 >= rows[b].prompt.length) labels[b * T + t] = s[t + 1];
    });
    return { input, labels, T };
  };
  return {
    params,
    state,
    step(_step: number, rng: Rng) {
      const batch = Array.from({ length: B }, () => pairs[rng.int(pairs.length)]);
      const c = pack(batch.map((p) => ({ prompt: p.prompt, answer: p.chosen })));
      const r = pack(batch.map((p) => ({ prompt: p.prompt, answer: p.rejected })));
      using xc = Tensor.from(c.input, [B, c.T], "i32");
      using xr = Tensor.from(r.input, [B, r.T], "i32");
      using lc = Tensor.from(c.labels, [B * c.T], "i32");
      using lr = Tensor.from(r.labels, [B * r.T], "i32");
      const refLogProbs = (x: Tensor, l: Tensor) => {
        const { logits } = reference.forward(x);
        const lp = sequenceLogProbs(logits, l);
        logits.dispose();
        return lp;
      };
      using refC = refLogProbs(xc, lc);
      using refR = refLogProbs(xr, lr);
      using tape = new GradTape();
      const loss = tape.run(() => {
        using chosen = policy.forward(xc).logits;
        using rejected = policy.forward(xr).logits;
        return dpoLoss(chosen, rejected, { chosen: lc, rejected: lr }, { chosen: refC, rejected: refR }, {
          beta: opts.beta ?? 0.1,
        });
      });
      tape.backward(loss);
      return { loss, tokens: B * (c.T + r.T) };
    },
  };
}
