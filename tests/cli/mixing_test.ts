/**
 * `lab mixing` on MambaInLlama's tiny hybrid (layer 0 Mamba-2, layer 1 attention), run as a user
 * would: layer 1 is the model's own attention probabilities, layer 0 the SSD mixing matrix computed
 * in float64 on the host; --html is an offline page; bad input is one line `error: …` and exit 2.
 */
import assert from "node:assert/strict";
import { initGpu } from "../../lib/gpu/device.ts";
import { Checkpoint } from "../../lib/io/checkpoint.ts";
import { SafetensorsFile, writeSafetensors } from "../../lib/io/safetensors.ts";
import { mamba2InputsRef, readMamba2HostWeights } from "../../lib/mixing/mamba2_inputs.ts";
import { ssdMixingRef } from "../../lib/mixing/mixing_ref.ts";
import { mamba2DimsOf, readMambaConfig } from "../../lib/models/hybrid.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { rmsNormRef } from "../../lib/tensor/ops_ref.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose } from "../_assert.ts";
import { runLab } from "./_run.ts";

const HYBRID = new URL("../fixtures/tiny-hybrid-mamba2", import.meta.url).pathname;
const T = 12;

/** A temp dir with `ids.safetensors`: the fixture's two sequences cut to T tokens. */
async function inputs(): Promise<{ dir: string; ids: Int32Array }> {
  using f = await SafetensorsFile.open(`${HYBRID}/reference.safetensors`);
  const all = (await f.read("input_ids")).data as Int32Array;
  const full = all.length / 2;
  const ids = Int32Array.from({ length: 2 * T }, (_, i) => all[Math.floor(i / T) * full + (i % T)]);
  const dir = await Deno.makeTempDir();
  await writeSafetensors(`${dir}/ids.safetensors`, { input_ids: { dtype: "I32", shape: [2, T], data: ids } });
  return { dir, ids };
}

async function readMixing(
  path: string,
): Promise<{ shape: number[]; data: Float32Array; meta: Record<string, string> }> {
  using f = await SafetensorsFile.open(path);
  return { shape: f.info("mixing").shape, data: await f.readF32("mixing"), meta: f.metadata };
}

/** `lab mixing` on the fixture's ids for one layer, writing `dir/m<layer>.safetensors`, plus `extra`. */
function mixingRun(dir: string, layer: number, extra: string[] = []) {
  return runLab([
    "mixing",
    "--model",
    HYBRID,
    "--input",
    `${dir}/ids.safetensors`,
    "--layer",
    String(layer),
    "--out",
    `${dir}/m${layer}.safetensors`,
    ...extra,
  ]);
}

function assertOneLineError(r: { code: number; stderr: string }, mention: RegExp) {
  assert.equal(r.code, 2, `exit code ${r.code}; stderr: ${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0], /^error: /);
  assert.match(lines[0], mention);
}

Deno.test("lab mixing: layer 1 (attention) is LlamaModel.forward's probabilities of the first sequence, with an offline HTML page", async () => {
  const { dir, ids } = await inputs();
  const r = await mixingRun(dir, 1, ["--html", `${dir}/m1.html`]);
  assert.equal(r.code, 0, r.stderr);
  const got = await readMixing(`${dir}/m1.safetensors`);
  assert.deepEqual(got.shape, [4, T, T]);
  assert.equal(got.meta.mixer, "attention");
  await initGpu();
  using model = await LlamaModel.load(HYBRID);
  using x = Tensor.from(ids.slice(0, T), [1, T], "i32");
  const out = model.forward(x, { attentions: true });
  assert.equal(out.attentions!.length, 1, "one attention layer in the hybrid");
  const [probs] = await readTensors([out.attentions![0]]);
  for (const t of [out.logits, ...out.attentions!]) t.dispose();
  assertAllclose(got.data, probs, { atol: 0, rtol: 0, name: "layer 1 probabilities" });
  const html = await Deno.readTextFile(`${dir}/m1.html`);
  assert.ok(html.length > 1_000_000, "plotly.js inlined");
  assert.doesNotMatch(html, /<script[^>]+src=/i);
  assert.equal((html.match(/Plotly\.newPlot\(/g) ?? []).length, 1 + 4, "the grid and one heatmap per head");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("lab mixing: layer 0 (Mamba-2) equals the SSD mixing matrix computed on the CPU", async () => {
  const { dir, ids } = await inputs();
  const r = await mixingRun(dir, 0);
  assert.equal(r.code, 0, r.stderr);
  const got = await readMixing(`${dir}/m0.safetensors`);
  assert.deepEqual(got.shape, [4, T, T]);
  assert.equal(got.meta.mixer, "mamba2");
  using ckpt = await Checkpoint.open(HYBRID);
  const c = ckpt.config;
  const dims = mamba2DimsOf((await readMambaConfig(HYBRID, c))!);
  const D = c.hiddenSize;
  const embed = await ckpt.readF32("model.embed_tokens.weight");
  const h0 = new Float64Array(T * D);
  for (let t = 0; t < T; t++) h0.set(embed.subarray(ids[t] * D, (ids[t] + 1) * D), t * D);
  const u = rmsNormRef(h0, await ckpt.readF32("model.layers.0.input_layernorm.weight"), D, c.rmsNormEps);
  const ops = mamba2InputsRef(u, await readMamba2HostWeights(ckpt, 0), dims, {
    batch: 1,
    T,
    kvHeads: c.numKvHeads,
  });
  const want = ssdMixingRef({ ...ops, dims: { batch: 1, T, H: 4, N: dims.dState } });
  assertAllclose(got.data, want, { rtol: 1e-3, atol: 1e-5, name: "layer 0 SSD matrix" });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("lab mixing: a layer out of range and a file without input_ids are one-line errors (exit 2)", async () => {
  const { dir } = await inputs();
  const base = ["mixing", "--model", HYBRID, "--out", `${dir}/o.safetensors`];
  assertOneLineError(
    await runLab([...base, "--input", `${dir}/ids.safetensors`, "--layer", "2"]),
    /--layer 2 is outside 0 … 1/,
  );
  await writeSafetensors(`${dir}/other.safetensors`, {
    tokens: { dtype: "I32", shape: [1, 3], data: new Int32Array([1, 2, 3]) },
  });
  assertOneLineError(
    await runLab([...base, "--input", `${dir}/other.safetensors`, "--layer", "0"]),
    /other\.safetensors: no tensor "input_ids"/,
  );
  assertOneLineError(await runLab([...base, "--input", `${dir}/ids.safetensors`]), /--layer is required/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("lab mixing: a Mamba-1 layer writes one matrix per channel [d_inner, T, T]", async () => {
  const { dir } = await inputs();
  const student = `${dir}/student`;
  const { convertTeacher } = await import("../../lib/distill/convert.ts");
  await convertTeacher(new URL("../fixtures/tiny-llama", import.meta.url).pathname, student, {
    attentionLayers: [1],
    mamba: 1,
    seed: 0,
  });
  const r = await runLab([
    "mixing",
    "--model",
    student,
    "--input",
    `${dir}/ids.safetensors`,
    "--layer",
    "0",
    "--out",
    `${dir}/m.safetensors`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const got = await readMixing(`${dir}/m.safetensors`);
  assert.deepEqual(got.shape, [64, T, T]);
  assert.equal(got.meta.mixer, "mamba1");
  assert.ok(got.data.some((v) => v !== 0) && got.data.every(Number.isFinite));
  for (let t = 0; t < T; t++) for (let s = t + 1; s < T; s++) assert.equal(got.data[t * T + s], 0, "causal");
  await Deno.remove(dir, { recursive: true });
});
