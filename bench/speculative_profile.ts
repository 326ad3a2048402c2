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
  beginCapture,
  dispatch,
  dispatchCount,
  endCapture,
  Params,
  releaseCapture,
  replayCommands,
  sync,
} from "../lib/gpu/commands.ts";
import { copyElements } from "../lib/tensor/copy.ts";
import { DecodeState } from "../lib/models/decode_state.ts";
import type { LlamaModel } from "../lib/models/llama.ts";
import { Tensor } from "../lib/tensor/tensor.ts";

/** Timings of one model's forwards (milliseconds). */
export interface StepProfile {
  /** Dispatches of a one-token forward. */
  dispatches_1: number;
  /** Host time to record a one-token forward (no replay), averaged. */
  record_ms_1: number;
  /** Wall time per one-token forward when replayed `n` times in one submit and waited for. */
  replay_ms_1: number;
  /** The same for forwards of K + 1 tokens, by K. */
  replay_ms_verify: Record<number, number>;
  /** Dispatches of a (K + 1)-token forward, by K. */
  dispatches_verify: Record<number, number>;
}

/** Replays `fn`'s recorded work `n` times; returns wall ms per replay (after a few warm-up replays). */
async function replayed(fn: () => void, n: number): Promise<{ ms: number; dispatches: number }> {
  beginCapture();
  const c0 = dispatchCount();
  try {
    fn();
  } catch (e) {
    endCapture();
    throw e;
  }
  const program = endCapture();
  const dispatches = dispatchCount() - c0;
  await sync();
  // Warm-up replays (the GPU's clocks, first-use costs), then the timed ones.
  for (let i = 0; i < Math.max(5, Math.floor(n / 10)); i++) replayCommands(program);
  await sync();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) replayCommands(program);
  await sync();
  const ms = (performance.now() - t0) / n;
  releaseCapture(program);
  return { ms, dispatches };
}

/** Profiles `model`'s one-token and (K + 1)-token forwards at position 16 of a cache of 64 + K. */
export async function profileSteps(model: LlamaModel, Ks: number[], n = 200): Promise<StepProfile> {
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
  for (const K of Ks) {
    using ids = Tensor.from(Array.from({ length: K + 1 }, (_, i) => i + 3), [1, K + 1], "i32");
    const r = await replayed(
      () => model.forward(ids, { cache: st.layers, position }).logits.dispose(),
      Math.max(20, Math.floor(n / 4)),
    );
    verify[K] = r.ms;
    vd[K] = r.dispatches;
  }
  return {
    dispatches_1: single.dispatches,
    record_ms_1: record,
    replay_ms_1: single.ms,
    replay_ms_verify: verify,
    dispatches_verify: vd,
  };
}

/** Replayed cost of small commands on this device (µs each): tiny dispatches alone, and each followed by a copy. */
export async function opCosts(n = 500): Promise<{ dispatch_us: number; dispatch_and_copy_us: number }> {
  using a = Tensor.zeros([256]);
  using b = Tensor.zeros([256]);
  using c = Tensor.zeros([256]);
  using d = Tensor.zeros([256]);
  const add = () =>
    dispatch(
      { file: "elementwise.wgsl", entry: "add" },
      [a.buffer, b.buffer, c.buffer],
      new Params().u32(256, 256),
      [1],
    );
  const alone = await replayed(() => {
    for (let i = 0; i < 100; i++) add();
  }, Math.ceil(n / 100));
  const withCopy = await replayed(() => {
    for (let i = 0; i < 100; i++) {
      add();
      copyElements(c, 0, d, 0, 256);
    }
  }, Math.ceil(n / 100));
  return { dispatch_us: alone.ms * 10, dispatch_and_copy_us: withCopy.ms * 10 };
}
