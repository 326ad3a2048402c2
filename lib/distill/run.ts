/**
 * A distillation run: the stages of a recipe, one after the other, from a teacher directory to a
 * student in MambaInLlama's layout, with metrics, perplexities, an HTML report, checkpoints and
 * resume.
 *
 * Layout of `outDir`:
 *   run.json                 the plan, each stage's status and results (written atomically)
 *   run.lock                 while a process writes the run (lib/distill/run_lock.ts)
 *   metrics.jsonl            one JSON object per logged step: step, loss, tokens, stage, parts, lr, …
 *   stages/NN-name/          a stage's checkpoint while it runs; its trained student (`student/`) after
 *   model.safetensors, config.json, mamba_config.json, tokenizer files   the final student
 *   report.html              loss curves per stage, perplexities, a mixing-matrix snapshot (offline)
 *
 * Resume: finished stages are skipped (the next stage starts from the last finished stage's student,
 * converting its new layers with the same seed), and the interrupted stage continues from its
 * checkpoint, so a resumed run's losses equal an uninterrupted run's.
 *
 * @module
 */
import { acquireRunLock } from "./run_lock.ts";
import { UsageError } from "../errors.ts";
import { loadTokenizer } from "../io/tokenizer.ts";
import { evaluateLoss } from "../models/evaluate.ts";
import { readMambaConfig } from "../models/hybrid.ts";
import { LlamaModel } from "../models/llama.ts";
import { Checkpoint } from "../io/checkpoint.ts";
import { SafetensorsFile } from "../io/safetensors.ts";
import { CHECKPOINT_FILE } from "../train/checkpoint.ts";
import { train, type TrainEvent, type TrainListener } from "../train/loop.ts";
import type { Mamba2Init } from "./convert_mamba2.ts";
import { brownIdsForModel, loadPreferenceData, loadTextData, type PreferencePair } from "./data.ts";
import { planRecipe, type RecipeName, type StagePlan } from "./recipes.ts";
import { convertAndLoad, saveStudent } from "./student.ts";
import { distillTask, dpoTask, hiddenAlignmentTask } from "./tasks.ts";
import { matrixOrientationTask } from "./matrix_task.ts";
import { writeReport } from "./report.ts";
import type { PseudoLabelOptions } from "./pseudo_labels.ts";

/** Options of {@linkcode runDistillation}. */
export interface DistillRunOptions {
  /** The teacher checkpoint directory. */
  teacherDir: string;
  /** Where the run, its stages and the final student go. */
  outDir: string;
  recipe: RecipeName;
  /** Layers that keep attention in the final student. */
  attentionLayers: number[];
  /** Start from this student (an earlier run's output) instead of converting the teacher. */
  studentDir?: string;
  /** Token budget of the whole run (default 2^20). */
  tokens?: number;
  /** Training text (`.txt` / `.jsonl`; DPO: preference JSONL). Default: Brown's training split. */
  dataPath?: string;
  /** Continue the run in `outDir`. */
  resume?: boolean;
  /** Seed of conversion and data order (default 0). */
  seed?: number;
  /** How converted layers start (default from attention). */
  init?: Mamba2Init;
  /**
   * Sequence-level KD for the distill stages (stepwise, kd, sft): the teacher continues the first
   * `promptLen` tokens of each window and the student trains on that (default: off).
   */
  pseudoLabels?: PseudoLabelOptions;
  /** MOHAWK stages to run (default all three). */
  mohawkStages?: number[];
  /** Sequences per step and their length (defaults 8 × 256). */
  batch?: number;
  seqLen?: number;
  /** Validation windows of 256 tokens for perplexities (default: all of Brown's 327). */
  evalWindows?: number;
  /** Read losses back every this many steps (default 10). */
  logEvery?: number;
  /** Stops the run at the next step boundary, after a checkpoint. */
  signal?: AbortSignal;
  /** Extra listeners per stage (progress bar, notebook chart, …). */
  listeners?: (stage: StagePlan, index: number, count: number) => TrainListener[];
  /** Status lines (default: none). */
  log?: (line: string) => void;
  /** Write `report.html` at the end (default true). */
  report?: boolean;
}

/** What a finished stage reports. */
export interface StageResult {
  name: string;
  steps: number;
  tokens: number;
  /** The last logged loss. */
  loss: number;
  /** Student validation perplexity after the stage. */
  ppl: number;
  seconds: number;
}

/** The state file `run.json`. */
export interface RunState {
  version: 1;
  recipe: RecipeName;
  teacherDir: string;
  studentDir: string | null;
  attentionLayers: number[];
  tokens: number;
  seed: number;
  init: Mamba2Init;
  dataPath: string | null;
  batch: number;
  seqLen: number;
  mohawkStages: number[] | null;
  pseudoLabels: PseudoLabelOptions | null;
  stages: StagePlan[];
  done: StageResult[];
  teacherPpl: number | null;
  finished: boolean;
}

/** How a run ended. */
export interface DistillRunResult {
  reason: "done" | "aborted";
  teacherPpl: number;
  /** The final student's validation perplexity (NaN when aborted). */
  studentPpl: number;
  stages: StageResult[];
  outDir: string;
  reportPath?: string;
}

const RUN_FILE = "run.json";

async function writeState(dir: string, s: RunState): Promise<void> {
  const tmp = `${dir}/${RUN_FILE}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(s, null, 2));
  await Deno.rename(tmp, `${dir}/${RUN_FILE}`);
}

async function readState(dir: string): Promise<RunState | null> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/${RUN_FILE}`)) as RunState;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new UsageError(`${dir}/${RUN_FILE}`, `unreadable run state (${(e as Error).message})`);
  }
}

/** Appends the loop's events to `metrics.jsonl` with run-wide step and token counts. */
function metricsListener(path: string, stage: string, stepBase: number, tokenBase: number, perStep: number) {
  const enc = new TextEncoder();
  return {
    async log(events: TrainEvent[]) {
      const lines = events.map((e) =>
        JSON.stringify({
          step: stepBase + e.step,
          stage,
          stage_step: e.step,
          loss: e.loss,
          tokens: tokenBase + e.step * perStep,
          ...Object.fromEntries(Object.entries(e.parts).map(([k, v]) => [`loss_${k}`, v])),
          lr: e.lr,
          grad_norm: e.gradNorm,
          tokens_per_s: e.tokensPerSecond,
          gpu_memory_bytes: e.gpuMemoryBytes,
          skipped: e.skipped,
        })
      ).join("\n") + "\n";
      await Deno.writeFile(path, enc.encode(lines), { append: true });
    },
  } satisfies TrainListener;
}

/** The step of `dir`'s training checkpoint (0 when there is none). */
async function checkpointStep(dir: string): Promise<number> {
  const path = `${dir}/${CHECKPOINT_FILE}`;
  try {
    await Deno.stat(path);
  } catch {
    return 0;
  }
  using f = await SafetensorsFile.open(path);
  return Number(f.metadata.step ?? 0);
}

/**
 * Drops the metrics a resumed stage will log again: its lines after step `keep` (a run killed after
 * its last checkpoint logged steps that the resume repeats) and any line of a later stage.
 */
async function trimMetrics(path: string, stage: string, keep: number): Promise<void> {
  const lines = (await Deno.readTextFile(path).catch(() => "")).split("\n").filter((l) => l.trim());
  let seen = false;
  const kept = lines.filter((l) => {
    const e = JSON.parse(l) as { stage: string; stage_step: number };
    if (e.stage === stage) seen = true;
    else if (seen) return false; // a later stage
    return e.stage !== stage || e.stage_step <= keep;
  });
  if (kept.length !== lines.length) {
    await Deno.writeTextFile(`${path}.tmp`, kept.map((l) => l + "\n").join(""));
    await Deno.rename(`${path}.tmp`, path);
  }
}

/** Steps of a stage: its tokens over the tokens of one step, at least 1. */
function stepsOf(stage: StagePlan, perStep: number): number {
  return Math.max(1, Math.floor(stage.tokens / perStep));
}

/** Runs (or resumes) a distillation. */
export async function runDistillation(o: DistillRunOptions): Promise<DistillRunResult> {
  const log = o.log ?? (() => {});
  const B = o.batch ?? 8;
  const T = o.seqLen ?? 256;
  const seed = o.seed ?? 0;
  const init = o.init ?? "attention";
  await Deno.mkdir(`${o.outDir}/stages`, { recursive: true });
  await using _lock = await acquireRunLock(o.outDir);
  const previous = await readState(o.outDir);
  if (previous && !o.resume) {
    throw new UsageError(
      o.outDir,
      "already holds a run: pass --resume to continue it, or choose another --out",
    );
  }
  const sourceDir = o.studentDir ?? o.teacherDir;
  using teacherCkpt = await Checkpoint.open(o.teacherDir);
  const cfg = teacherCkpt.config;
  const sourceMamba = await readMambaConfig(sourceDir, cfg);
  const alreadyMamba = sourceMamba
    ? Array.from({ length: cfg.numLayers }, (_, i) => i).filter((i) => !sourceMamba.attn_layers.includes(i))
    : [];
  const stages = planRecipe({
    recipe: o.recipe,
    numLayers: cfg.numLayers,
    attentionLayers: o.attentionLayers,
    alreadyMamba,
    tokens: o.tokens ?? 2 ** 20,
    mohawkStages: o.mohawkStages,
  });
  const fresh: RunState = {
    version: 1,
    recipe: o.recipe,
    teacherDir: o.teacherDir,
    studentDir: o.studentDir ?? null,
    attentionLayers: [...o.attentionLayers].sort((a, b) => a - b),
    tokens: o.tokens ?? 2 ** 20,
    seed,
    init,
    dataPath: o.dataPath ?? null,
    batch: B,
    seqLen: T,
    mohawkStages: o.mohawkStages ?? null,
    pseudoLabels: o.pseudoLabels ?? null,
    stages,
    done: [],
    teacherPpl: null,
    finished: false,
  };
  const state = previous ?? fresh;
  if (previous) {
    const same = (k: keyof RunState) => JSON.stringify(previous[k]) === JSON.stringify(fresh[k]);
    const differ = ([
      "recipe",
      "attentionLayers",
      "tokens",
      "seed",
      "init",
      "dataPath",
      "batch",
      "seqLen",
      "pseudoLabels",
      "stages",
    ] as const)
      .filter((k) => !same(k));
    if (differ.length) {
      throw new UsageError(
        o.outDir,
        `--resume with different settings (${differ.join(", ")}) than the run there`,
      );
    }
    log(`resuming: ${previous.done.length} of ${stages.length} stages done`);
  }
  await writeState(o.outDir, state);

  const metricsPath = `${o.outDir}/metrics.jsonl`;
  if (!previous) await Deno.writeTextFile(metricsPath, "");
  const tok = await loadTokenizer(o.teacherDir);
  const brown = await brownIdsForModel(o.teacherDir);
  const windows = Math.min(o.evalWindows ?? 327, Math.floor((brown.validation.length - 1) / 256));
  const validation = brown.validation.subarray(0, windows * 256 + 1);
  let trainIds: Int32Array = brown.train;
  let pairs: PreferencePair[] = [];
  if (o.recipe === "dpo") {
    if (!o.dataPath) {
      throw new UsageError("lab distill", "--recipe dpo needs --data FILE (JSONL: prompt, chosen, rejected)");
    }
    pairs = await loadPreferenceData(o.dataPath, tok);
  } else if (o.dataPath) {
    trainIds = await loadTextData(o.dataPath, tok, tok.eosTokenId ?? 0);
  }

  using teacher = await LlamaModel.load(o.teacherDir);
  if (state.teacherPpl === null) {
    state.teacherPpl = (await evaluateLoss(teacher, validation)).ppl;
    await writeState(o.outDir, state);
  }
  log(`teacher validation perplexity ${state.teacherPpl.toFixed(2)} (${windows} windows of 256)`);

  let source = sourceDir;
  let stepBase = 0;
  let tokenBase = 0;
  for (let i = 0; i < stages.length; i++) {
    const stage = stages[i];
    const dir = `${o.outDir}/stages/${String(i + 1).padStart(2, "0")}-${stage.name}`;
    const perStep = stage.kind === "dpo" ? B * 2 * T : B * T;
    const steps = stepsOf(stage, perStep);
    if (i < state.done.length) {
      source = `${dir}/student`;
      stepBase += steps;
      tokenBase += steps * perStep;
      continue;
    }
    if (previous) await trimMetrics(metricsPath, stage.name, await checkpointStep(dir));
    const started = performance.now();
    log(
      `stage ${i + 1}/${stages.length} ${stage.name}: ${steps} steps × ${perStep} tokens` +
        (stage.newLayers.length ? `, converting layers [${stage.newLayers.join(", ")}]` : ""),
    );
    using student = stage.newLayers.length
      ? await convertAndLoad(source, `${dir}/start`, stage.attentionLayers, { init, seed: seed + i })
      : await LlamaModel.load(source);
    let reference: LlamaModel | null = null;
    try {
      const task = () => {
        switch (stage.kind) {
          case "matrix":
            return matrixOrientationTask(teacher, student, trainIds, {
              batch: B,
              seqLen: T,
              layers: mambaLayers(student),
            });
          case "hidden":
            return hiddenAlignmentTask(teacher, student, trainIds, {
              batch: B,
              seqLen: T,
              layers: mambaLayers(student),
            });
          case "distill":
            return distillTask(stage.klWeight || o.pseudoLabels ? teacher : null, student, trainIds, {
              batch: B,
              seqLen: T,
              train: stage.train,
              ceWeight: stage.ceWeight,
              klWeight: stage.klWeight,
              klReduction: stage.klReduction,
              pseudoLabels: o.pseudoLabels,
            });
          case "dpo":
            return dpoTask(student, reference!, pairs, { batch: B, maxLen: T, padId: tok.eosTokenId ?? 0 });
        }
      };
      // DPO's frozen reference is the policy as the stage starts (its converted form when it converts).
      if (stage.kind === "dpo") {
        reference = await LlamaModel.load(stage.newLayers.length ? `${dir}/start` : source);
      }
      const logEvery = Math.min(o.logEvery ?? 10, steps);
      const result = await train(task(), {
        steps,
        lr: { peak: stage.lr, warmup: Math.ceil(steps * stage.warmupFraction), min: stage.lr * 0.1 },
        adamw: stage.adamw,
        logEvery,
        checkpointDir: dir,
        checkpointEvery: Math.max(logEvery, Math.ceil(steps / 4)),
        resume: o.resume,
        seed: seed + 1000 * (i + 1),
        signal: o.signal,
        extra: { recipe: o.recipe, stage: stage.name },
      }, [
        metricsListener(metricsPath, stage.name, stepBase, tokenBase, perStep),
        ...(o.listeners?.(stage, i, stages.length) ?? []),
      ]);
      if (result.reason === "aborted") {
        log(
          `interrupted in ${stage.name} at step ${result.steps}: checkpoint ${result.checkpoint}; continue with --resume`,
        );
        return {
          reason: "aborted",
          teacherPpl: state.teacherPpl,
          studentPpl: NaN,
          stages: state.done,
          outDir: o.outDir,
        };
      }
      const ppl = (await evaluateLoss(student, validation)).ppl;
      await saveStudent(student, `${dir}/student`, o.teacherDir);
      state.done.push({
        name: stage.name,
        steps,
        tokens: steps * perStep,
        loss: result.lastLoss,
        ppl,
        seconds: (performance.now() - started) / 1000,
      });
      await writeState(o.outDir, state);
      log(
        `stage ${stage.name} done: loss ${result.lastLoss.toFixed(4)}, student perplexity ${ppl.toFixed(2)}`,
      );
    } finally {
      reference?.dispose();
    }
    // The stage's student is saved (a snapshot: stepwise runs keep the 50% → 25% → … students); its
    // start copy and checkpoint are no longer needed.
    await Deno.remove(`${dir}/start`, { recursive: true }).catch(() => {});
    await Deno.remove(`${dir}/checkpoint.safetensors`).catch(() => {});
    source = `${dir}/student`;
    stepBase += steps;
    tokenBase += steps * perStep;
  }

  using final = await LlamaModel.load(source);
  await saveStudent(final, o.outDir, o.teacherDir);
  const studentPpl = state.done.at(-1)?.ppl ?? (await evaluateLoss(final, validation)).ppl;
  state.finished = true;
  await writeState(o.outDir, state);
  let reportPath: string | undefined;
  if (o.report ?? true) {
    reportPath = `${o.outDir}/report.html`;
    await writeReport(reportPath, {
      state,
      metricsPath,
      teacher,
      student: final,
      tokenizer: tok,
      sample: validation,
    });
  }
  log(`student written to ${o.outDir}${reportPath ? `; report ${reportPath}` : ""}`);
  return {
    reason: "done",
    teacherPpl: state.teacherPpl,
    studentPpl,
    stages: state.done,
    outDir: o.outDir,
    reportPath,
  };
}

/** The Mamba layers of a student. */
function mambaLayers(m: LlamaModel): number[] {
  return m.layers.flatMap((l, i) => l.mamba ? [i] : []);
}
