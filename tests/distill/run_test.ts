/**
 * Distillation runs end to end on tiny-llama (lib/distill/run.ts): the outputs a researcher gets
 * (metrics.jsonl, report.html, run.json, the student in MambaInLlama's layout), what trains in each
 * recipe, and a resumed run continuing an interrupted one exactly. Budgets are a few steps of 2 × 32
 * tokens so that the file runs in seconds on the software adapter.
 */
import assert from "node:assert/strict";
import { initGpu } from "../../lib/gpu/device.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { runDistillation } from "../../lib/distill/run.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { UsageError } from "../../lib/errors.ts";
import { assertAllclose } from "../_assert.ts";

await initGpu();
const TEACHER = new URL("../fixtures/tiny-llama", import.meta.url).pathname;
const small = { batch: 2, seqLen: 32, evalWindows: 1, logEvery: 2 };

async function metrics(dir: string): Promise<Record<string, number | string>[]> {
  const text = await Deno.readTextFile(`${dir}/metrics.jsonl`);
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

async function weights(dir: string, names: string[]): Promise<Float32Array[]> {
  using f = await SafetensorsFile.open(`${dir}/model.safetensors`);
  return await Promise.all(names.map((n) => f.readF32(n)));
}

Deno.test("distill: stepwise on tiny-llama trains only the new mixer and writes student, metrics and report", async () => {
  const out = await Deno.makeTempDir();
  const lines: string[] = [];
  const r = await runDistillation({
    ...small,
    teacherDir: TEACHER,
    outDir: out,
    recipe: "stepwise",
    attentionLayers: [1],
    tokens: 6 * 64,
    log: (l) => lines.push(l),
  });
  assert.equal(r.reason, "done");
  assert.ok(Number.isFinite(r.teacherPpl) && Number.isFinite(r.studentPpl));
  assert.deepEqual(r.stages.map((s) => s.name), ["stepwise-01-layer0"]);
  // metrics: one object per step with run-wide step and tokens
  const m = await metrics(out);
  assert.deepEqual(m.map((e) => e.step), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(m.map((e) => e.tokens), [64, 128, 192, 256, 320, 384]);
  assert.ok(m.every((e) => Number.isFinite(e.loss) && "loss_ce" in e && "loss_kl" in e));
  // the student: MambaInLlama's layout, attention kept at layer 1, and it loads as a hybrid
  const cfg = JSON.parse(await Deno.readTextFile(`${out}/mamba_config.json`));
  assert.deepEqual(cfg.attn_layers, [1]);
  using student = await LlamaModel.load(out);
  assert.ok(student.layers[0].mamba && student.layers[1].attn);
  // mixer-only: the converted layer's MLP and every kept tensor equal the teacher's
  const kept = [
    "model.layers.0.mlp.down_proj.weight",
    "model.layers.1.self_attn.q_proj.weight",
    "lm_head.weight",
  ];
  const [t, s] = [await weights(TEACHER, kept), await weights(out, kept)];
  kept.forEach((n, i) => assert.deepEqual(s[i], t[i], `${n} is frozen in the alignment stage`));
  // …while the mixer moved away from its initialisation
  const start = `${out}/stages/01-stepwise-01-layer0/student`;
  assert.ok((await Deno.stat(`${start}/model.safetensors`)).isFile, "the stage's student is kept");
  const report = await Deno.readTextFile(`${out}/report.html`);
  assert.match(report, /Loss curves/);
  assert.match(report, /Perplexity/);
  assert.doesNotMatch(report, /<script[^>]+src=["']https?:/, "no CDN: plotly.js is inlined");
  assert.ok(lines.some((l) => /teacher validation perplexity/.test(l)));
  await Deno.remove(out, { recursive: true });
});

Deno.test("distill: an interrupted kd run resumed with --resume continues the uninterrupted run's losses", async () => {
  const base = { ...small, teacherDir: TEACHER, recipe: "kd" as const, attentionLayers: [1], tokens: 8 * 64 };
  const full = await Deno.makeTempDir();
  await runDistillation({ ...base, outDir: full });
  const part = await Deno.makeTempDir();
  const stop = new AbortController();
  const first = await runDistillation({
    ...base,
    outDir: part,
    signal: stop.signal,
    listeners: () => [{ log: (ev) => void (ev.at(-1)!.step >= 4 && stop.abort()) }],
  });
  assert.equal(first.reason, "aborted");
  await assert.rejects(
    () => runDistillation({ ...base, outDir: part }),
    (e) => e instanceof UsageError && /--resume/.test(e.message),
  );
  await assert.rejects(
    () => runDistillation({ ...base, tokens: 16 * 64, outDir: part, resume: true }),
    (e) => e instanceof UsageError && /different settings \(tokens/.test(e.message),
  );
  // as if the process had been killed after logging a step past its last checkpoint (step 4)
  await Deno.writeTextFile(`${part}/metrics.jsonl`, '{"step":5,"stage":"kd","stage_step":5,"loss":123}\n', {
    append: true,
  });
  const second = await runDistillation({ ...base, outDir: part, resume: true });
  assert.equal(second.reason, "done");
  const [a, b] = [await metrics(full), await metrics(part)];
  assert.deepEqual(b.map((e) => e.step), a.map((e) => e.step));
  assertAllclose(b.map((e) => Number(e.loss)), a.map((e) => Number(e.loss)), {
    atol: 1e-5,
    rtol: 1e-5,
    name: "losses of the resumed run",
  });
  const names = ["model.layers.0.mamba.in_proj.weight", "model.layers.1.mlp.up_proj.weight"];
  const [wa, wb] = [await weights(full, names), await weights(part, names)];
  wa.forEach((w, i) => assertAllclose(wb[i], w, { atol: 1e-5, rtol: 1e-4, name: names[i] }));
  // kd trains every parameter: the kept layer's MLP moved
  const [t] = [await weights(TEACHER, [names[1]])];
  assert.notDeepEqual(wa[1], t[0]);
  for (const d of [full, part]) await Deno.remove(d, { recursive: true });
});

Deno.test("distill: DPO on a preference file lowers its loss against the frozen starting student", async () => {
  const out = await Deno.makeTempDir();
  const data = `${out}/prefs.jsonl`;
  const pair = (p: string, c: string, r: string) => JSON.stringify({ prompt: p, chosen: c, rejected: r });
  await Deno.writeTextFile(
    data,
    [pair("The jury", " said it was fair.", " sky sky sky."), pair("It was", " a long day.", " the the the.")]
      .join("\n"),
  );
  const r = await runDistillation({
    ...small,
    teacherDir: TEACHER,
    outDir: `${out}/run`,
    recipe: "dpo",
    attentionLayers: [1], // layer 0 converted: the reference must be the converted student
    dataPath: data,
    tokens: 10 * 2 * 2 * 32,
  });
  assert.equal(r.reason, "done");
  const m = await metrics(`${out}/run`);
  assert.equal(m.length, 10);
  assert.ok(Math.abs(Number(m[0].loss) - Math.log(2)) < 1e-3, `first DPO loss ${m[0].loss} is log 2`);
  assert.ok(Number(m.at(-1)!.loss) < Number(m[0].loss) - 0.01, "the policy moves towards the chosen answers");
  await Deno.remove(out, { recursive: true });
});
