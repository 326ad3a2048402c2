/**
 * The next-token objective of causal LMs: logits[:, :-1] predict ids[:, 1:], as transformers'
 * `LlamaForCausalLM(labels=ids)` computes it (mean over all predicted positions).
 *
 * @module
 */
import { crossEntropy } from "../autograd/ops.ts";
import { LM_CHUNK_BYTES, lmHeadLoss } from "../autograd/lm_loss.ts";
import { gpu } from "../gpu/device.ts";
import { LlamaModel } from "../models/llama.ts";
import { GradTape } from "../autograd/tape.ts";
import type { CausalLM } from "../models/evaluate.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Targets (B·T) for ids (B, T): ids shifted left by one, `ignore` at each row's last position. */
export function nextTokenTargets(ids: ArrayLike<number>, B: number, T: number, ignore = -100): Int32Array {
  const y = new Int32Array(B * T).fill(ignore);
  for (let b = 0; b < B; b++) for (let t = 0; t < T - 1; t++) y[b * T + t] = ids[b * T + t + 1];
  return y;
}

/**
 * Mean cross-entropy of `model` on x (B, T) against targets (B·T); a (1) tensor on the GPU. A
 * `LlamaModel` whose logits would exceed {@linkcode LM_CHUNK_BYTES} (or one binding) gets the LM head
 * and the loss in chunks of rows (`lmHeadLoss`): the same value, without the (B·T, V) logits.
 */
export function nextTokenLoss(model: CausalLM, x: Tensor, targets: Tensor): Tensor {
  const [B, T] = x.shape;
  const logitsBytes = B * T * model.config.vocabSize * 4;
  if (model instanceof LlamaModel && logitsBytes > Math.min(LM_CHUNK_BYTES, gpu().maxBindingBytes)) {
    using h = model.finalHidden(x);
    const r = lmHeadLoss(h.view([B * T, model.config.hiddenSize]), model.lmHead, { targets });
    r.ce.dispose();
    r.kl.dispose();
    return r.loss;
  }
  const { logits } = model.forward(x);
  const loss = crossEntropy(logits.view([B * T, model.config.vocabSize]), targets);
  logits.dispose();
  return loss;
}

/**
 * Runs forward and backward of the next-token loss: afterwards each parameter that requires grad
 * holds its gradient in `.grad` (added to any gradient already there). Returns the loss (1).
 */
export function nextTokenBackward(model: CausalLM, x: Tensor, targets: Tensor): Tensor {
  using tape = new GradTape();
  const loss = tape.run(() => nextTokenLoss(model, x, targets));
  tape.backward(loss);
  return loss;
}
