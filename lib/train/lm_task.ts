/**
 * The plain language-modelling task: random windows of a token stream, next-token cross-entropy.
 * Used to train a teacher from scratch and as the pattern of the distillation recipes' tasks.
 *
 * @module
 */
import { randomWindows } from "../data/windows.ts";
import type { LlamaModel } from "../models/llama.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { TrainTask } from "./loop.ts";
import { selectTrainable } from "./optim.ts";
import { nextTokenBackward } from "./next_token.ts";

/** A {@linkcode TrainTask} training every parameter of `model` on windows of `ids`. */
export function languageModelTask(
  model: LlamaModel,
  ids: Int32Array,
  opts: { batch: number; seqLen: number; freeze?: string[] },
): TrainTask {
  const state = model.namedParameters();
  const params = selectTrainable(state, { freeze: opts.freeze });
  const { batch: B, seqLen: T } = opts;
  return {
    params,
    state,
    step(_step, rng) {
      const w = randomWindows(ids, { batch: B, seqLen: T, rng });
      using x = Tensor.from(w.input, [B, T], "i32");
      using y = Tensor.from(w.target, [B * T], "i32");
      return { loss: nextTokenBackward(model, x, y), tokens: B * T };
    },
  };
}
