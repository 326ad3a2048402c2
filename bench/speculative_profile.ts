/**
 * Where a speculative round's time goes (issue #7): for one model, the host time to record a forward
 * (building every bind group, as a step recorded afresh pays), and the time of the same forward when
 * its recorded commands are replayed back to back (`replayCommands`, as the GPU-resident round loop
 * does), for one token (a draft step, or a plain decoding step) and for K + 1 tokens (a verification).
 * Positions come from a GPU buffer (`ForwardOptions.position`), as in the round loop.
 *
 * speedup ≈ (mean accepted + 1) · t_step(target) / (K · t_step(draft) + t_step(draft) + t_verify(target))
 * for the resident loop, whose draft runs K + 1 one-token steps a round.
 *
 * @module
 */
import {
  captureCommands,
  dispatchCount,
  flush,
  releaseCapture,
  replayCommands,
  sync,
} from "../lib/gpu/commands.ts";
import { DecodeState } from "../lib/models/decode_state.ts";
import type { LlamaModel } from "../lib/models/llama.ts";
import { kernelBreakdown, type KernelShare } from "./timing.ts";
import { Tensor } from "../lib/tensor/tensor.ts";

/** Timings of one model's forwards (milliseconds). */
export interface StepProfile {
  /** Dispatches of a one-token forward. */
  dispatches_1: number;
  /** Host time to record a one-token forward (no replay), averaged. */
  record_ms_1: number;
  /** Wall time per one-token forward when replayed `n` times, one submit each, and waited for. */
  replay_ms_1: number;
  /** The same for forwards of K + 1 tokens, by K. */
  replay_ms_verify: Record<number, number>;
  /** Dispatches of a (K + 1)-token forward, by K. */
  dispatches_verify: Record<number, number>;
  /** Kernel by kernel GPU time of the one-token forward ({@linkcode kernelBreakdown}), when asked for. */
  kernels_1?: { total_us: number; kernels: KernelShare[] };
  /** The same for the (K + 1)-token forward at the largest K. */
  kernels_verify?: { K: number; total_us: number; kernels: KernelShare[] };
}

/** Wall ms of a sync with nothing submitted (the readback floor), the least of three. */
async function syncFloor(): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await sync();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

/**
 * Replays `fn`'s recorded work `n` times, one submit each; returns wall ms per replay (after a few
 * warm-up replays), the readback floor of the closing sync taken off.
 */
async function replayed(fn: () => void, n: number): Promise<{ ms: number; dispatches: number }> {
  const c0 = dispatchCount();
  const program = captureCommands(fn);
  const dispatches = dispatchCount() - c0;
  await sync();
  // Warm-up replays for ≥ 300 ms of wall time (the GPU's clocks ramp up under load: timed from a
  // short warm-up, the first profile of a run read 2.4× its later figures), then the timed ones.
  const w0 = performance.now();
  for (let i = 0; i < 5 || performance.now() - w0 < 300; i++) {
    replayCommands(program);
    flush();
    if (i % 256 === 255) await sync(); // bounded queue; the check of the clock needs a wait now and then
  }
  await sync();
  const t0 = performance.now();
  // One submit per replay, as the decoding loops do: the GPU runs one while the host records the next.
  for (let i = 0; i < n; i++) {
    replayCommands(program);
    flush();
  }
  await sync();
  const ms = (performance.now() - t0 - await syncFloor()) / n;
  releaseCapture(program);
  return { ms, dispatches };
}

/**
 * Profiles `model`'s one-token and (K + 1)-token forwards at position 16 of a cache of 64 + K; with
 * `time` (GPU timing of recorded work, bench/timing.ts), also kernel by kernel.
 */
export async function profileSteps(
  model: LlamaModel,
  Ks: number[],
  n = 200,
  time?: (fn: () => void) => Promise<{ ms: number }>,
): Promise<StepProfile> {
  const maxK = Math.max(...Ks, 1);
  using st = new DecodeState(model.createCache(1, 64 + maxK));
  using pre = Tensor.from(
    Array.from({ length: 16 }, (_, i) => (i * 7) % model.config.vocabSize),
    [1, 16],
    "i32",
  );
  model.forward(pre, { cache: st.layers, lastOnly: true }).logits.dispose();
  using counts = Tensor.from([16], [1], "i32");
  using one = Tensor.from([5], [1, 1], "i32");
  const position = { counts, word: 0, offset: 0 };
  const step = () => model.forward(one, { cache: st.layers, lastOnly: true, position }).logits.dispose();
  // Host recording time, bind groups built every call (what a step recorded afresh pays).
  await sync();
  step();
  const reps = 20;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) step();
  const record = (performance.now() - t0) / reps;
  await sync();
  const single = await replayed(step, n);
  const verify: Record<number, number> = {};
  const vd: Record<number, number> = {};
  let kernelsVerify: StepProfile["kernels_verify"];
  for (const K of Ks) {
    using ids = Tensor.from(Array.from({ length: K + 1 }, (_, i) => i + 3), [1, K + 1], "i32");
    const forward = () => model.forward(ids, { cache: st.layers, position }).logits.dispose();
    const r = await replayed(forward, Math.max(20, Math.floor(n / 4)));
    verify[K] = r.ms;
    vd[K] = r.dispatches;
    if (time && K === maxK) kernelsVerify = { K, ...await kernelBreakdown(forward, time) };
  }
  return {
    dispatches_1: single.dispatches,
    record_ms_1: record,
    replay_ms_1: single.ms,
    replay_ms_verify: verify,
    dispatches_verify: vd,
    ...(time ? { kernels_1: await kernelBreakdown(step, time), kernels_verify: kernelsVerify } : {}),
  };
}

/**
 * Speedup of the GPU-resident speculative loop over plain decoding predicted from measured forward
 * times: a round runs K + 1 one-token draft forwards and one (K + 1)-token target forward and emits
 * 1 + (mean accepted) tokens, where plain decoding pays one target forward per token:
 *
 *   speedup ≈ (1 + accepted) · t₁(target) / ((K + 1) · t₁(draft) + t_verify,K(target))
 *
 * With `meanAccepted` absent, drafts are accepted independently with probability `alpha`:
 * accepted = α (1 − α^K) / (1 − α). Sampling and the round's bookkeeping dispatches are left out.
 */
export function projectedSpeedup(
  target: StepProfile,
  draft: StepProfile,
  K: number,
  acceptance: { alpha: number } | { meanAccepted: number },
): number {
  const tv = target.replay_ms_verify[K];
  if (tv === undefined) throw new Error(`no verification time for K = ${K}`);
  const accepted = "meanAccepted" in acceptance
    ? acceptance.meanAccepted
    : acceptance.alpha === 1
    ? K
    : acceptance.alpha * (1 - acceptance.alpha ** K) / (1 - acceptance.alpha);
  return (1 + accepted) * target.replay_ms_1 / ((K + 1) * draft.replay_ms_1 + tv);
}
