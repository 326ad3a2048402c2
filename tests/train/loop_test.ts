import assert from "node:assert/strict";
import { TrainingError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { parseLlamaConfig } from "../../lib/io/config.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { hasCheckpoint } from "../../lib/train/checkpoint.ts";
import { languageModelTask } from "../../lib/train/lm_task.ts";
import { train, type TrainEvent, type TrainTask } from "../../lib/train/loop.ts";
import { Rng } from "../../lib/random.ts";
import { assertAllclose } from "../_assert.ts";

await initGpu();

/** A micro Llama (vocab 64) so that hundreds of steps fit in seconds on the CPU adapter. */
function micro(seed: number, layers = 1): LlamaModel {
  const config = parseLlamaConfig({
    vocab_size: 64,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: layers,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 64,
    hidden_act: "silu",
  }, "micro");
  return LlamaModel.random(config, seed, 0.1);
}

/** A learnable stream: a noisy cyclic pattern over 64 symbols. */
function stream(n: number): Int32Array {
  const rng = new Rng(5);
  return Int32Array.from({ length: n }, (_, i) => rng.uniform() < 0.9 ? (i * 7) % 64 : rng.int(64));
}

const ids = stream(4096);
const opts = { steps: 8, lr: { peak: 3e-3, warmup: 2 }, logEvery: 2, adamw: { maxGradNorm: 1 }, seed: 3 };

Deno.test("train: a resumed run continues the uninterrupted run's loss curve", async () => {
  using a = micro(1);
  const full = await train(languageModelTask(a, ids, { batch: 2, seqLen: 16 }), opts);
  const dir = await Deno.makeTempDir();
  using b = micro(1);
  const stop = new AbortController();
  const first = await train(languageModelTask(b, ids, { batch: 2, seqLen: 16 }), {
    ...opts,
    checkpointDir: dir,
    signal: stop.signal,
  }, [{ log: (ev: TrainEvent[]) => void (ev.at(-1)!.step >= 4 && stop.abort()) }]);
  assert.equal(first.reason, "aborted");
  assert.equal(first.steps, 4);
  assert.ok(await hasCheckpoint(dir));
  using c = micro(2); // other weights: everything must come from the checkpoint
  const resumed = await train(languageModelTask(c, ids, { batch: 2, seqLen: 16 }), {
    ...opts,
    checkpointDir: dir,
    resume: true,
  });
  assert.deepEqual(resumed.events.map((e) => e.step), [5, 6, 7, 8]);
  assertAllclose(
    resumed.events.map((e) => e.loss),
    full.events.slice(4).map((e) => e.loss),
    { atol: 1e-5, rtol: 1e-5, name: "losses after resume" },
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train: a NaN loss stops the run with a message and keeps the last good checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  using m = micro(1);
  const inner = languageModelTask(m, ids, { batch: 2, seqLen: 16 });
  const poisoned: TrainTask = {
    ...inner,
    step(step, rng) {
      if (step !== 5) return inner.step(step, rng);
      // what a NaN in the batch does: a NaN loss and NaN gradients at this step
      const r = inner.step(step, rng);
      r.loss.write(new Float32Array([NaN]));
      for (const [, p] of inner.params) p.grad?.write(new Float32Array(p.size).fill(NaN));
      return r;
    },
  };
  const before = await m.namedParameters()[0][1].toArray();
  await assert.rejects(
    train(poisoned, { ...opts, checkpointDir: dir, checkpointEvery: 2 }),
    (e: Error) =>
      e instanceof TrainingError && /step 6/.test(e.message) && e.message.includes("checkpoint.safetensors"),
  );
  const after = await m.namedParameters()[0][1].toArray();
  assert.ok(after.every(Number.isFinite), "weights stay finite: the optimizer skipped the NaN step");
  assert.notDeepEqual(after, before);
  assert.ok(await hasCheckpoint(dir), "the checkpoint of step 4 is kept");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train: GPU memory in use does not grow over a thousand steps", async () => {
  using m = micro(1);
  const samples: number[] = [];
  await train(languageModelTask(m, ids, { batch: 2, seqLen: 8 }), {
    steps: 1000,
    lr: { peak: 1e-3 },
    logEvery: 100,
  }, [{ log: (ev: TrainEvent[]) => void samples.push(ev.at(-1)!.gpuMemoryBytes) }]);
  assert.equal(samples.length, 10);
  assert.deepEqual(new Set(samples.slice(1)).size, 1, `memory in use by step: ${samples.join(", ")}`);
});

Deno.test("train: events carry lr, grad norm, tokens/s; the loss falls on a learnable stream", async () => {
  using m = micro(1);
  const r = await train(languageModelTask(m, ids, { batch: 4, seqLen: 16 }), {
    steps: 60,
    lr: { peak: 1e-2, warmup: 5 },
    logEvery: 20,
  });
  assert.equal(r.events.length, 60);
  const e = r.events[10];
  assert.ok(e.lr > 0 && e.gradNorm > 0 && e.tokensPerSecond > 0 && e.tokens === 11 * 64);
  const first = r.events.slice(0, 5).reduce((s, x) => s + x.loss, 0) / 5;
  const last = r.events.slice(-5).reduce((s, x) => s + x.loss, 0) / 5;
  assert.ok(last < first - 1, `loss ${first.toFixed(3)} → ${last.toFixed(3)}`);
});
