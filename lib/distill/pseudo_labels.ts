/**
 * Sequence-level pseudo-labels (MambaInLlama's stage-1 data, method.md §3.7): the teacher continues
 * each training prompt, and the student learns the teacher's own sequences, with cross-entropy on
 * the generated tokens only (the prompt is masked) and KL at every position.
 *
 * Everything stays on the GPU: the teacher samples with its KV cache into a token buffer and the
 * batch's input and target tensors are assembled from it by buffer copies, so a training step with
 * pseudo-labels needs no readback (a readback costs ≥ 11 ms in Deno). After the prompt, every step
 * reads its position from a counter on the GPU (as `generate` does), so its commands are recorded
 * once and replayed instead of being built again for each token.
 *
 *   prompt p (B, P) from the data; g = teacher continuation (B, T − P + 1)
 *   input  x = [p | g₀ … g_{T−P−1}]            (B, T)
 *   target y_t = x_{t+1}, y_{T−1} = g_{T−P}, and −100 for t < P − 1 (the prompt is not a target)
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { GpuSampler, type GpuSamplingOptions } from "../decode/gpu_sampler.ts";
import {
  captureCommands,
  type CapturedCommands,
  flush,
  releaseCapture,
  replayCommands,
} from "../gpu/commands.ts";
import type { LayerCache, LlamaModel } from "../models/llama.ts";
import { copyElements } from "../tensor/copy.ts";
import { Tensor } from "../tensor/tensor.ts";

const SUBMIT_EVERY = 4; // recorded steps per submission

/** How the teacher continues the prompts. */
export interface PseudoLabelOptions {
  /** Prompt tokens P taken from the data (1 ≤ P < T). */
  promptLen: number;
  /** Sampling temperature (0: greedy; default 1). */
  temperature?: number;
  /** Nucleus sampling (default 1: off). */
  topP?: number;
}

/**
 * One continuation step after a prompt of `promptLen` tokens, at the position the GPU counter
 * `position` holds (word 0): the teacher's forward of each row's last token, then each row's draw into
 * slot position − (promptLen − 1) of the sampler's history; the counter then advances. The same
 * commands at every step, so they can be recorded once and replayed.
 */
export function pseudoLabelStep(
  teacher: LlamaModel,
  caches: LayerCache[],
  sampler: GpuSampler,
  position: Tensor,
  promptLen: number,
  o: GpuSamplingOptions,
): void {
  const { logits } = teacher.forward(sampler.next, {
    cache: caches,
    lastOnly: true,
    position: { counts: position, word: 0, offset: 0 },
  });
  sampler.sampleNext(logits, position, promptLen - 1, o);
  logits.dispose();
}

/**
 * The teacher's pseudo-labelled batch for prompts (B·P ids): input x (B, T) and targets y (B·T) on
 * the GPU (the caller owns both). `seed` fixes the teacher's draws.
 */
export function pseudoLabelBatch(
  teacher: LlamaModel,
  prompts: Int32Array,
  B: number,
  T: number,
  opts: PseudoLabelOptions & { seed: number },
): { x: Tensor; y: Tensor } {
  const P = opts.promptLen;
  if (!Number.isInteger(P) || P < 1 || P >= T) {
    throw new ShapeError("pseudo-labels", `the prompt length must be in [1, ${T}), got ${P}`);
  }
  if (prompts.length !== B * P) throw new ShapeError("pseudo-labels", `expected ${B}×${P} prompt ids`);
  const G = T - P + 1;
  const caches = teacher.createCache(B, P + G);
  using sampler = new GpuSampler(B, teacher.config.vocabSize, G);
  // The position of the token fed at step 1 (the first sampled one); sampleNext advances it.
  using position = Tensor.from([P], [1], "i32");
  const o = { temperature: opts.temperature ?? 1, topP: opts.topP, seed: opts.seed };
  let program: CapturedCommands | null = null;
  try {
    {
      using prompt = Tensor.from(prompts, [B, P], "i32");
      const { logits } = teacher.forward(prompt, { cache: caches, lastOnly: true });
      sampler.sample(logits, 0, o);
      logits.dispose();
    }
    // Steps 1 … G − 1: slot and draw index = position − (P − 1), as sample(…, step) would use.
    const step = () => pseudoLabelStep(teacher, caches, sampler, position, P, o);
    for (let i = 1; i < G; i++) {
      if (program) replayCommands(program);
      else program = captureCommands(step);
      if (i % SUBMIT_EVERY === 0) flush(); // the GPU starts on these steps while more are recorded
    }
  } finally {
    if (program) releaseCapture(program);
    for (const c of caches) c[Symbol.dispose]();
  }
  const hostX = new Int32Array(B * T);
  for (let b = 0; b < B; b++) hostX.set(prompts.subarray(b * P, (b + 1) * P), b * T);
  const x = Tensor.from(hostX, [B, T], "i32");
  const y = Tensor.from(new Int32Array(B * T).fill(-100), [B * T], "i32");
  for (let b = 0; b < B; b++) {
    copyElements(sampler.tokens, b * G, x, b * T + P, T - P);
    copyElements(sampler.tokens, b * G, y, b * T + P - 1, G);
  }
  return { x, y };
}
