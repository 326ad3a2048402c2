import assert from "node:assert/strict";
import { SafetensorsFile, writeSafetensors } from "../../lib/io/safetensors.ts";
import { crossEntropyRef } from "../../lib/tensor/ops_ref.ts";
import { assertAllclose } from "../_assert.ts";
import { runLab } from "./_run.ts";

const fixtures = new URL("../fixtures/", import.meta.url).pathname;
const tiny = `${fixtures}tiny-llama`;

Deno.test("lab logits: writes logits, hidden states and attentions in the fixtures' layout", async () => {
  const dir = await Deno.makeTempDir();
  const r = await runLab([
    "logits",
    "--model",
    tiny,
    "--input",
    `${tiny}/reference.safetensors`,
    "--out",
    `${dir}/out.safetensors`,
    "--hidden",
    "--attentions",
  ]);
  assert.equal(r.code, 0, r.stderr);
  using out = await SafetensorsFile.open(`${dir}/out.safetensors`);
  using ref = await SafetensorsFile.open(`${tiny}/reference.safetensors`);
  for (const [name, atol] of [["logits", 1e-3], ["hidden_states", 1e-3], ["attentions", 1e-4]] as const) {
    assert.deepEqual(out.info(name).shape, ref.info(name).shape, name);
    assertAllclose(await out.readF32(name), await ref.readF32(name), { atol, rtol: 0, name });
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("lab eval --json: the loss of one window equals cross-entropy of transformers' logits", async () => {
  // ids = both reference rows back to back; with --seq 32 the one window is row 0 predicting
  // ids[1..32], whose logits transformers computed (row 0 of reference.safetensors).
  using ref = await SafetensorsFile.open(`${tiny}/reference.safetensors`);
  const ids = (await ref.read("input_ids")).data as Int32Array;
  const logits = await ref.readF32("logits");
  const V = 4096;
  const expected =
    crossEntropyRef(logits.subarray(0, 32 * V), ids.subarray(1, 33), V).reduce((a, b) => a + b) / 32;
  const dir = await Deno.makeTempDir();
  await writeSafetensors(`${dir}/ids.safetensors`, { ids: { dtype: "I32", shape: [64], data: ids } });
  const r = await runLab([
    "eval",
    "--model",
    tiny,
    "--ids",
    `${dir}/ids.safetensors`,
    "--seq",
    "32",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const line = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  assert.equal(line.tokens, 32);
  assertAllclose([line.loss], [expected], { atol: 1e-4, rtol: 0, name: "loss" });
  assertAllclose([line.ppl], [Math.exp(expected)], { rtol: 1e-4, name: "ppl" });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("lab grads: every parameter's gradient and the loss, named as in the checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const r = await runLab([
    "grads",
    "--model",
    tiny,
    "--input",
    `${tiny}/reference.safetensors`,
    "--out",
    `${dir}/g.safetensors`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  using got = await SafetensorsFile.open(`${dir}/g.safetensors`);
  using want = await SafetensorsFile.open(`${tiny}/grads.safetensors`);
  assert.deepEqual(got.names(), want.names());
  for (const name of want.names()) {
    const w = await want.readF32(name);
    const scale = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assertAllclose(await got.readF32(name), w, { atol: 1e-3 * scale, rtol: 1e-3, name });
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("lab logits on hybrids: MambaInLlama's tiny hybrid, and a student made by lab convert", async () => {
  const dir = await Deno.makeTempDir();
  const hybrid = `${fixtures}tiny-hybrid-mamba2`;
  const r = await runLab([
    "logits",
    "--model",
    hybrid,
    "--input",
    `${hybrid}/reference.safetensors`,
    "--out",
    `${dir}/h.safetensors`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  using got = await SafetensorsFile.open(`${dir}/h.safetensors`);
  using ref = await SafetensorsFile.open(`${hybrid}/reference.safetensors`);
  assertAllclose(await got.readF32("logits"), await ref.readF32("logits"), {
    atol: 1e-3,
    rtol: 0,
    name: "hybrid logits",
  });
  const c = await runLab([
    "convert",
    "--teacher",
    tiny,
    "--out",
    `${dir}/student`,
    "--attention-share",
    "0.5",
  ]);
  assert.equal(c.code, 0, c.stderr);
  const s = await runLab([
    "logits",
    "--model",
    `${dir}/student`,
    "--input",
    `${tiny}/reference.safetensors`,
    "--out",
    `${dir}/s.safetensors`,
  ]);
  assert.equal(s.code, 0, s.stderr);
  using student = await SafetensorsFile.open(`${dir}/s.safetensors`);
  const logits = await student.readF32("logits");
  assert.ok(logits.every(Number.isFinite) && logits.some((v) => v !== 0));
  await Deno.remove(dir, { recursive: true });
});
