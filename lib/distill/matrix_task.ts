/**
 * MOHAWK stage 1 (matrix orientation), method.md §4.2.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { LlamaModel } from "../models/llama.ts";
import type { TrainTask } from "../train/loop.ts";
import type { AlignmentTaskOptions } from "./tasks.ts";

/** MOHAWK stage 1 task. */
export function matrixOrientationTask(
  _teacher: LlamaModel,
  _student: LlamaModel,
  _ids: Int32Array,
  _opts: AlignmentTaskOptions,
): TrainTask {
  throw new UsageError("lab distill", "MOHAWK stage 1 is not wired yet");
}
