/**
 * `lab distill --teacher DIR --out DIR --recipe mohawk|stepwise|kd|sft|dpo (--attention-share S |
 * --attention-layers LIST) [--tokens N] [--data FILE] [--resume] [--seed N]`, plus
 * `[--student DIR] [--init attention|random] [--stages 1,2,3] [--pseudo-labels P] [--batch B] [--seq T]
 * [--eval-windows N]`. `--pseudo-labels P`: the teacher continues the first P tokens of each window and
 * the student trains on those sequences (sequence-level KD).
 *
 * A progress bar per stage (ETA, current losses), `metrics.jsonl`, `report.html` and the student in
 * MambaInLlama's layout in `--out`. Ctrl-C stops at the next step boundary after writing a
 * checkpoint; `--resume` continues from it.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { adapterName, initGpu } from "../gpu/device.ts";
import { Checkpoint } from "../io/checkpoint.ts";
import { attentionLayersByShare, parseLayerList } from "../distill/plan.ts";
import { parseRecipe } from "../distill/recipes.ts";
import { type DistillRunResult, runDistillation } from "../distill/run.ts";
import { terminalProgress } from "../train/listeners.ts";
import { type Flags, intFlag, parseFlags, required } from "./args.ts";

/** Usage line of `lab distill`. */
export const DISTILL_USAGE = "distill --teacher DIR --out DIR --recipe mohawk|stepwise|kd|sft|dpo " +
  "(--attention-share S | --attention-layers LIST) [--tokens N] [--data FILE] [--resume] [--seed N] " +
  "[--student DIR] [--init attention|random] [--stages LIST] [--pseudo-labels P] [--batch B] [--seq T] " +
  "[--eval-windows N]";

/** How many layers the checkpoint in `dir` has (reads its config only). */
export async function layerCount(dir: string): Promise<number> {
  using c = await Checkpoint.open(dir);
  return c.config.numLayers;
}

/**
 * Layers of `dir`'s model that keep attention, from exactly one of `--attention-share S` and
 * `--attention-layers LIST` (checked before the checkpoint is opened).
 */
export async function attentionLayersFromFlags(cmd: string, f: Flags, dir: string): Promise<number[]> {
  const share = f["attention-share"] as number | undefined;
  const list = f["attention-layers"] as string | undefined;
  if ((share === undefined) === (list === undefined)) {
    throw new UsageError(cmd, "give exactly one of --attention-share S and --attention-layers LIST");
  }
  const n = await layerCount(dir);
  return list !== undefined ? parseLayerList(String(list), n) : attentionLayersByShare(n, share!);
}

/** Runs `lab distill`. */
export async function distillCommand(args: string[]): Promise<DistillRunResult> {
  const cmd = "lab distill";
  const f = parseFlags(cmd, args, {
    teacher: "string",
    out: "string",
    recipe: "string",
    "attention-share": "number",
    "attention-layers": "string",
    tokens: "number",
    data: "string",
    resume: "boolean",
    seed: "number",
    student: "string",
    init: "string",
    stages: "string",
    batch: "number",
    seq: "number",
    "eval-windows": "number",
    "pseudo-labels": "number",
  });
  const teacher = required(cmd, f, "teacher");
  const out = required(cmd, f, "out");
  const recipe = parseRecipe(required(cmd, f, "recipe"));
  const init = (f.init as string | undefined) ?? "attention";
  if (init !== "attention" && init !== "random") {
    throw new UsageError(cmd, `--init must be attention or random, got "${init}"`);
  }
  const attentionLayers = await attentionLayersFromFlags(cmd, f, teacher);
  const stages = f.stages === undefined ? undefined : String(f.stages).split(",").map((s) => {
    const n = Number(s.trim());
    if (![1, 2, 3].includes(n)) throw new UsageError(cmd, `--stages takes MOHAWK stages 1, 2, 3, got "${s}"`);
    return n;
  });
  if (stages && recipe !== "mohawk") throw new UsageError(cmd, "--stages applies to --recipe mohawk only");
  const promptLen = f["pseudo-labels"] === undefined ? undefined : intFlag(cmd, f, "pseudo-labels", 1);
  if (promptLen !== undefined && !["stepwise", "kd", "sft"].includes(recipe)) {
    throw new UsageError(cmd, "--pseudo-labels applies to --recipe stepwise, kd and sft");
  }
  const ctx = await initGpu();
  const software = ctx.isFallback;
  console.error(`adapter: ${adapterName(ctx)}`);
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) Deno.exit(130); // a second Ctrl-C: stop now
    console.error("\ninterrupt: finishing the step and writing a checkpoint (Ctrl-C again to quit at once)");
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    const r = await runDistillation({
      teacherDir: teacher,
      outDir: out,
      recipe,
      attentionLayers,
      studentDir: f.student as string | undefined,
      tokens: f.tokens === undefined ? undefined : intFlag(cmd, f, "tokens", 1),
      dataPath: f.data as string | undefined,
      resume: f.resume === true,
      seed: intFlag(cmd, f, "seed", 0, 0),
      init,
      mohawkStages: stages,
      pseudoLabels: promptLen === undefined ? undefined : { promptLen },
      batch: intFlag(cmd, f, "batch", software ? 4 : 8),
      seqLen: intFlag(cmd, f, "seq", software ? 128 : 256),
      evalWindows: intFlag(cmd, f, "eval-windows", software ? 8 : 327),
      signal: controller.signal,
      listeners: (stage, i, n) => [terminalProgress(`${i + 1}/${n} ${stage.name}`)],
      log: (line) => console.error(line),
    });
    if (r.reason === "done") {
      console.log(`teacher perplexity ${r.teacherPpl.toFixed(2)}`);
      console.log(`student perplexity ${r.studentPpl.toFixed(2)}`);
      console.log(`student: ${r.outDir}  report: ${r.reportPath}`);
    } else {
      console.log(`interrupted: run \`deno task lab distill … --resume\` with the same flags to continue`);
    }
    return r;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}
