/**
 * Sequence-level pseudo-labels (lib/distill/pseudo_labels.ts): the batch holds the teacher's own
 * greedy continuation of each prompt (checked against argmax of full recomputation), the targets are
 * the next tokens with the prompt masked, and a KD run on pseudo-labels trains.
 */
import assert from "node:assert/strict";
import { pseudoLabelBatch, pseudoLabelStep } from "../../lib/distill/pseudo_labels.ts";
import { runDistillation } from "../../lib/distill/run.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { argmax } from "../../lib/decode/sampling.ts";
import { GpuSampler } from "../../lib/decode/gpu_sampler.ts";

await initGpu();
const TEACHER = new URL("../fixtures/tiny-llama", import.meta.url).pathname;

Deno.test("pseudo-labels: greedy continuations of the teacher, next-token targets, prompt masked", async () => {
  using teacher = await LlamaModel.load(TEACHER);
  const [B, P, T] = [2, 5, 9];
  const prompts = Int32Array.from([11, 22, 33, 44, 55, 7, 8, 9, 10, 12]);
  const { x, y } = pseudoLabelBatch(teacher, prompts, B, T, { promptLen: P, temperature: 0, seed: 3 });
  const xs = (await x.toArray()) as Int32Array;
  const ys = (await y.toArray()) as Int32Array;
  x.dispose();
  y.dispose();
  const V = teacher.config.vocabSize;
  for (let b = 0; b < B; b++) {
    const row = Array.from(xs.subarray(b * T, (b + 1) * T));
    assert.deepEqual(row.slice(0, P), Array.from(prompts.subarray(b * P, (b + 1) * P)));
    // every generated token is the argmax of the teacher run on everything before it
    const seq = [...row, ys[b * T + T - 1]];
    for (let t = P; t <= T; t++) {
      using ids = Tensor.from(Int32Array.from(seq.slice(0, t)), [1, t], "i32");
      const { logits } = teacher.forward(ids, { lastOnly: true });
      const l = (await logits.toArray()) as Float32Array;
      logits.dispose();
      assert.equal(seq[t], argmax(l.subarray(0, V)), `row ${b}, token ${t}`);
    }
    for (let t = 0; t < T; t++) {
      assert.equal(ys[b * T + t], t < P - 1 ? -100 : seq[t + 1], `target ${b}, ${t}`);
    }
  }
});

Deno.test("pseudo-labels: sampled continuations (steps recorded once, replayed) equal the same steps recorded afresh each time", async () => {
  using teacher = await LlamaModel.load(TEACHER);
  const [B, P, T] = [3, 4, 12];
  const prompts = Int32Array.from({ length: B * P }, (_, i) => (17 * i + 5) % teacher.config.vocabSize);
  const o = { temperature: 1, topP: 0.9, seed: 11 };
  const { x, y } = pseudoLabelBatch(teacher, prompts, B, T, { promptLen: P, ...o });
  const xs = (await x.toArray()) as Int32Array;
  const ys = (await y.toArray()) as Int32Array;
  x.dispose();
  y.dispose();
  // The reference: the same kernels (a device position), every step's commands built afresh; the
  // first draw from the prompt's logits at step 0, then the counter's steps.
  const G = T - P + 1;
  const caches = teacher.createCache(B, P + G);
  using sampler = new GpuSampler(B, teacher.config.vocabSize, G);
  using position = Tensor.from([P], [1], "i32");
  for (let step = 0; step < G; step++) {
    using prompt = step === 0 ? Tensor.from(prompts, [B, P], "i32") : null;
    if (step === 0) {
      const { logits } = teacher.forward(prompt!, { cache: caches, lastOnly: true });
      sampler.sample(logits, 0, o);
      logits.dispose();
    } else {
      pseudoLabelStep(teacher, caches, sampler, position, P, o);
    }
  }
  const want = await sampler.read(0, G);
  for (const c of caches) c[Symbol.dispose]();
  for (let b = 0; b < B; b++) {
    assert.deepEqual(Array.from(xs.subarray(b * T + P, (b + 1) * T)), Array.from(want[b].subarray(0, G - 1)));
    assert.equal(ys[b * T + T - 1], want[b][G - 1], `row ${b}: the last target`);
  }
  // Sampling at temperature 1 does not just repeat the greedy choice everywhere.
  const greedy = pseudoLabelBatch(teacher, prompts, B, T, { promptLen: P, temperature: 0, seed: 11 });
  const gx = (await greedy.x.toArray()) as Int32Array;
  greedy.x.dispose();
  greedy.y.dispose();
  assert.notDeepEqual(Array.from(gx), Array.from(xs));
});

Deno.test("pseudo-labels: a kd run on the teacher's sequences trains and records its setting", async () => {
  const out = await Deno.makeTempDir();
  const r = await runDistillation({
    teacherDir: TEACHER,
    outDir: out,
    recipe: "kd",
    attentionLayers: [1],
    tokens: 4 * 64,
    batch: 2,
    seqLen: 32,
    evalWindows: 1,
    logEvery: 2,
    pseudoLabels: { promptLen: 16 },
  });
  assert.equal(r.reason, "done");
  const state = JSON.parse(await Deno.readTextFile(`${out}/run.json`));
  assert.deepEqual(state.pseudoLabels, { promptLen: 16 });
  const m = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(m.length, 4);
  assert.ok(
    m.every((e) => Number.isFinite(e.loss) && Number.isFinite(e.loss_ce) && Number.isFinite(e.loss_kl)),
  );
  await Deno.remove(out, { recursive: true });
});
