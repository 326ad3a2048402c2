/**
 * Training: the loop, listeners, optimizer, checkpoints and the next-token objective.
 *
 * @module
 */
export {
  train,
  type TrainEvent,
  type TrainListener,
  type TrainOptions,
  type TrainResult,
  type TrainTask,
} from "./loop.ts";
export { type DisplayFn, jsonlLogger, jupyterDisplay, notebookChart, terminalProgress } from "./listeners.ts";
export { AdamW, type AdamWOptions, isNoDecay, namePattern, selectTrainable, warmupCosine } from "./optim.ts";
export {
  CHECKPOINT_FILE,
  type CheckpointMeta,
  hasCheckpoint,
  loadCheckpoint,
  removeStaleTemps,
  saveCheckpoint,
  tensorChecksum,
} from "./checkpoint.ts";
export { nextTokenBackward, nextTokenLoss, nextTokenTargets } from "./next_token.ts";
export { languageModelTask } from "./lm_task.ts";
