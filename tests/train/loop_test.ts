import assert from "node:assert/strict";
import { TrainingError } from "../../lib/errors.ts";
import { gpuMemory } from "../../lib/gpu/buffers.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
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

/** `inner` with a NaN batch at step index `at`: a NaN loss and NaN gradients, as a NaN input gives. */
function poisoned(inner: TrainTask, at: number): TrainTask {
  return {
    ...inner,
    step(step, rng) {
      const r = inner.step(step, rng);
      if (step === at) {
        r.loss.write(new Float32Array([NaN]));
        for (const [, p] of inner.params) p.grad?.write(new Float32Array(p.size).fill(NaN));
      }
      return r;
    },
  };
}

Deno.test("train: a NaN loss stops the run with a message and keeps the last good checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  using m = micro(1);
  const task = poisoned(languageModelTask(m, ids, { batch: 2, seqLen: 16 }), 5);
  const before = await m.namedParameters()[0][1].toArray();
  await assert.rejects(
    train(task, { ...opts, checkpointDir: dir, checkpointEvery: 2 }),
    (e: Error) =>
      e instanceof TrainingError && /step 6/.test(e.message) && e.message.includes("checkpoint.safetensors"),
  );
  const after = await m.namedParameters()[0][1].toArray();
  assert.ok(after.every(Number.isFinite), "weights stay finite: the optimizer skipped the NaN step");
  assert.notDeepEqual(after, before);
  assert.ok(await hasCheckpoint(dir), "the checkpoint of step 4 is kept");
  {
    using f = await SafetensorsFile.open(`${dir}/checkpoint.safetensors`);
    assert.equal(f.metadata.step, "4");
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train: with onNonFinite skip a NaN batch is skipped with a message and the run goes on", async () => {
  const dir = await Deno.makeTempDir();
  using m = micro(1);
  const task = poisoned(languageModelTask(m, ids, { batch: 2, seqLen: 16 }), 5);
  const warnings: string[] = [];
  const saved: number[] = [];
  const r = await train(task, { ...opts, checkpointDir: dir, checkpointEvery: 2, onNonFinite: "skip" }, [{
    warn: (msg, e) => void warnings.push(`${e.step} ${msg}`),
    checkpoint: (step) => void saved.push(step),
  }]);
  assert.equal(r.reason, "done");
  assert.equal(r.steps, 8);
  assert.deepEqual(r.nonFiniteSteps, [6]);
  assert.deepEqual(warnings, [
    "6 step 6: loss NaN, gradient norm NaN: the update was skipped (onNonFinite: skip)",
  ]);
  assert.deepEqual(r.events.map((e) => e.skipped), [false, false, false, false, false, true, false, false]);
  assert.ok(r.events.every((e, i) => i === 5 || (Number.isFinite(e.loss) && Number.isFinite(e.gradNorm))));
  // The checkpoints after the skipped step are good ones: finite weights and moments.
  assert.deepEqual(saved, [2, 4, 6, 8]);
  using f = await SafetensorsFile.open(`${dir}/checkpoint.safetensors`);
  assert.equal(f.metadata.step, "8");
  for (const name of f.names()) {
    assert.ok((await f.readF32(name)).every(Number.isFinite), `${name} is finite`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train: without a listener that takes warnings, a skipped step is reported on the console", async () => {
  using m = micro(1);
  const task = poisoned(languageModelTask(m, ids, { batch: 2, seqLen: 16 }), 2);
  const lines: string[] = [];
  const warn = console.warn;
  console.warn = (...a: unknown[]) => void lines.push(a.join(" "));
  try {
    const r = await train(task, { ...opts, steps: 4, onNonFinite: "skip" });
    assert.equal(r.reason, "done");
  } finally {
    console.warn = warn;
  }
  assert.deepEqual(lines, [
    "warning: step 3: loss NaN, gradient norm NaN: the update was skipped (onNonFinite: skip)",
  ]);
});

/** The smallest Llama that still runs every op of a training step (GQA attention, RoPE, SwiGLU). */
function nano(): LlamaModel {
  const config = parseLlamaConfig({
    vocab_size: 16,
    hidden_size: 8,
    intermediate_size: 8,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 16,
    hidden_act: "silu",
  }, "nano");
  return LlamaModel.random(config, 1, 0.1);
}

Deno.test("train: GPU memory in use does not grow over 2,000 steps", async () => {
  using m = nano();
  const inner = languageModelTask(m, ids.map((x) => x % 16), { batch: 1, seqLen: 4 });
  // Sampled on the host at the start of every step (no readback): bytes in live tensors, and the
  // number of buffers ever created (a leak that the pool hides would show as new buffers).
  const inUse: number[] = [];
  const created: number[] = [];
  const task: TrainTask = {
    ...inner,
    step(step, rng) {
      const mem = gpuMemory();
      inUse.push(mem.inUse);
      created.push(mem.created);
      return inner.step(step, rng);
    },
  };
  const rss: number[] = [];
  const r = await train(task, { steps: 2000, lr: { peak: 1e-3 }, logEvery: 500 }, [{
    log: () => void rss.push(Deno.memoryUsage().rss),
  }]);
  assert.equal(r.events.length, 2000);
  assert.ok(r.events.every((e) => Number.isFinite(e.loss)));
  const warm = 10;
  const steady = new Set(inUse.slice(warm));
  assert.equal(steady.size, 1, `bytes in use at steps ${warm}..2000: ${[...steady].join(", ")}`);
  assert.equal(
    created.at(-1),
    created[warm],
    `buffers created: ${created[warm]} by step ${warm}, ${created.at(-1)} by the end`,
  );
  console.log(
    `memory: ${inUse[warm]} bytes in use from step ${warm} on (step 0: ${inUse[0]}), ` +
      `${created.at(-1)} buffers created; rss at steps 500..2000: ` +
      `${rss.map((x) => (x / 2 ** 20).toFixed(0)).join(", ")} MiB`,
  );
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
