/**
 * The training loop: steps of a {@linkcode TrainTask}, AdamW with warmup + cosine, losses kept on the
 * GPU and read back every `logEvery` steps (each readback costs ≥ 11 ms in Deno), events to listeners,
 * atomic checkpoints, resume, and a stop on non-finite losses that keeps the last good checkpoint.
 *
 * @module
 */
import { TrainingError } from "../errors.ts";
import { gpuMemory } from "../gpu/buffers.ts";
import { Rng } from "../random.ts";
import { copyElements } from "../tensor/copy.ts";
import { Tensor } from "../tensor/tensor.ts";
import { hasCheckpoint, loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { AdamW, type AdamWOptions, warmupCosine } from "./optim.ts";

/** One step's work, provided by a recipe. */
export interface TrainTask {
  /** Parameters to optimise (requiresGrad set), by name. */
  params: [string, Tensor][];
  /** Every tensor a checkpoint must hold (trainable or not), by checkpoint name. */
  state: [string, Tensor][];
  /**
   * Forward and backward of step `step` (gradients land in the params' `.grad`). Returns the loss
   * (1) and optional named parts (1 each), which the loop owns and disposes.
   */
  step(step: number, rng: Rng): { loss: Tensor; parts?: Record<string, Tensor>; tokens: number };
}

/** Loop settings. */
export interface TrainOptions {
  /** Total steps (the schedule's length). */
  steps: number;
  /** Peak learning rate, warmup steps, final learning rate. */
  lr: { peak: number; warmup?: number; min?: number };
  /** AdamW settings. */
  adamw?: AdamWOptions;
  /** Read losses back and emit events every this many steps (default 10). */
  logEvery?: number;
  /** Directory for `checkpoint.safetensors` (none: no checkpoints). */
  checkpointDir?: string;
  /** Checkpoint every this many steps (rounded up to a multiple of `logEvery`); default: at the end only. */
  checkpointEvery?: number;
  /** Continue from the checkpoint in `checkpointDir` if there is one. */
  resume?: boolean;
  /** Seed of the data RNG (default 0). */
  seed?: number;
  /**
   * On a non-finite loss or gradient: stop (default: a {@linkcode TrainingError} naming the last good
   * checkpoint) or skip (the optimizer already skipped the update; the run goes on and each such step
   * is reported to the listeners' `warn`, or on the console when none has one).
   */
  onNonFinite?: "stop" | "skip";
  /** Aborting stops the loop at the next step boundary, after writing a checkpoint. */
  signal?: AbortSignal;
  /** Extra JSON stored in checkpoints. */
  extra?: Record<string, unknown>;
}

/** What listeners receive per step. */
export interface TrainEvent {
  step: number;
  loss: number;
  parts: Record<string, number>;
  lr: number;
  gradNorm: number;
  /** Tokens seen since the run (not the session) started. */
  tokens: number;
  tokensPerSecond: number;
  gpuMemoryBytes: number;
  /** Whether the optimizer skipped this step (non-finite gradients). */
  skipped: boolean;
}

/** Observers of a run. */
export interface TrainListener {
  start?(info: { steps: number; startStep: number; params: number }): void | Promise<void>;
  log?(events: TrainEvent[], total: number): void | Promise<void>;
  checkpoint?(step: number, path: string): void | Promise<void>;
  /** A step with a non-finite loss or gradient that was skipped (`onNonFinite: "skip"`), in words. */
  warn?(message: string, event: TrainEvent): void | Promise<void>;
  end?(result: TrainResult): void | Promise<void>;
}

/** How a run ended. */
export interface TrainResult {
  /** Steps completed (including those of a resumed run). */
  steps: number;
  /** Why it stopped. */
  reason: "done" | "aborted" | "non-finite";
  /** The last logged loss. */
  lastLoss: number;
  /** The last checkpoint written, if any. */
  checkpoint?: string;
  /** Steps of this session with a non-finite loss or gradient (`onNonFinite: "skip"`). */
  nonFiniteSteps: number[];
  /** Every event of this session. */
  events: TrainEvent[];
}

/** Runs `task` for `opts.steps` steps (or what remains of them after a resume). */
export async function train(
  task: TrainTask,
  opts: TrainOptions,
  listeners: TrainListener[] = [],
): Promise<TrainResult> {
  const logEvery = Math.max(1, opts.logEvery ?? 10);
  const ckptEvery = opts.checkpointEvery ? Math.ceil(opts.checkpointEvery / logEvery) * logEvery : 0;
  using opt = new AdamW(task.params, opts.adamw);
  let rng = new Rng(opts.seed ?? 0);
  const stateOf = (): [
    string,
    Tensor,
  ][] => [...task.state, ...opt.state().map(([n, t]) => [`optimizer.${n}`, t] as [string, Tensor])];
  let step = 0;
  let checkpoint: string | undefined;
  if (opts.resume && opts.checkpointDir && await hasCheckpoint(opts.checkpointDir)) {
    const meta = await loadCheckpoint(opts.checkpointDir, stateOf());
    step = meta.step;
    opt.setSteps(meta.optimizerStep);
    rng = Rng.fromState(meta.rng);
    checkpoint = `${opts.checkpointDir}/checkpoint.safetensors`;
  }
  const partNames: string[] = [];
  let log: Tensor | null = null; // (logEvery, 2 + parts): loss, grad norm, parts…
  const events: TrainEvent[] = [];
  for (const l of listeners) {
    await l.start?.({ steps: opts.steps, startStep: step, params: task.params.length });
  }
  let tokens = 0;
  let windowStart = performance.now();
  let windowTokens = 0;
  const pending: { step: number; lr: number; tokens: number }[] = [];
  let reason: TrainResult["reason"] = "done";
  const nonFiniteSteps: number[] = [];
  const save = async () => {
    if (!opts.checkpointDir) return;
    checkpoint = await saveCheckpoint(opts.checkpointDir, stateOf(), {
      step,
      optimizerStep: await opt.steps(),
      rng: rng.getState(),
      extra: opts.extra,
    });
    for (const l of listeners) await l.checkpoint?.(step, checkpoint);
  };
  try {
    while (step < opts.steps) {
      if (opts.signal?.aborted) {
        reason = "aborted";
        break;
      }
      const lr = warmupCosine(step, {
        peak: opts.lr.peak,
        warmup: opts.lr.warmup ?? 0,
        total: opts.steps,
        minLr: opts.lr.min,
      });
      const out = task.step(step, rng);
      opt.update(lr);
      if (!log) {
        partNames.push(...Object.keys(out.parts ?? {}));
        log = Tensor.zeros([logEvery, 2 + partNames.length]);
      }
      const row = pending.length * (2 + partNames.length);
      copyElements(out.loss, 0, log, row, 1);
      copyElements(opt.gradNorm(), 0, log, row + 1, 1);
      partNames.forEach((n, i) => copyElements(out.parts![n], 0, log!, row + 2 + i, 1));
      out.loss.dispose();
      for (const t of Object.values(out.parts ?? {})) t.dispose();
      tokens += out.tokens;
      windowTokens += out.tokens;
      step++;
      pending.push({ step, lr, tokens });
      if (pending.length === logEvery || step === opts.steps || opts.signal?.aborted) {
        const values = (await log.toArray()) as Float32Array;
        const now = performance.now();
        const tps = windowTokens / ((now - windowStart) / 1000);
        windowStart = now;
        windowTokens = 0;
        const width = 2 + partNames.length;
        const batch: TrainEvent[] = pending.map((p, i) => {
          const loss = values[i * width];
          const gradNorm = values[i * width + 1];
          const parts: Record<string, number> = {};
          partNames.forEach((n, j) => parts[n] = values[i * width + 2 + j]);
          return {
            step: p.step,
            loss,
            parts,
            lr: p.lr,
            gradNorm,
            tokens: p.tokens,
            tokensPerSecond: tps,
            gpuMemoryBytes: gpuMemory().inUse,
            skipped: !Number.isFinite(gradNorm),
          };
        });
        pending.length = 0;
        events.push(...batch);
        for (const l of listeners) await l.log?.(batch, opts.steps);
        const bad = batch.filter((e) => !Number.isFinite(e.loss) || e.skipped);
        if (bad.length && (opts.onNonFinite ?? "stop") === "stop") {
          reason = "non-finite";
          throw new TrainingError(
            opts.checkpointDir ?? "train",
            `loss is ${bad[0].loss} (gradient norm ${bad[0].gradNorm}) at step ${bad[0].step}: stopped; ` +
              (checkpoint ? `the last good checkpoint is ${checkpoint}` : "no checkpoint was written"),
          );
        }
        for (const e of bad) {
          nonFiniteSteps.push(e.step);
          const message = `step ${e.step}: loss ${e.loss}, gradient norm ${e.gradNorm}: ` +
            (e.skipped
              ? "the update was skipped (onNonFinite: skip)"
              : "the gradients were finite, so the update was applied (onNonFinite: skip)");
          const warned = listeners.filter((l) => l.warn);
          if (!warned.length) console.warn(`warning: ${message}`);
          for (const l of warned) await l.warn!(message, e);
        }
        if (ckptEvery && step % ckptEvery === 0 && step < opts.steps) await save();
      }
    }
    await save();
  } finally {
    log?.dispose();
  }
  const result: TrainResult = {
    steps: step,
    reason,
    lastLoss: events.at(-1)?.loss ?? NaN,
    checkpoint,
    nonFiniteSteps,
    events,
  };
  for (const l of listeners) await l.end?.(result);
  return result;
}
