import assert from "node:assert/strict";
import { inverseSoftplus } from "../../lib/distill/convert_mamba2.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { runLab } from "../cli/_run.ts";

const fixtures = new URL("../fixtures/", import.meta.url).pathname;
const teacher = `${fixtures}tiny-llama`;
const reference = `${fixtures}tiny-hybrid-mamba2`;

Deno.test("lab convert: tiny-llama → the layout, names, shapes and mamba_config of MambaInLlama's own student", async () => {
  const out = await Deno.makeTempDir();
  const r = await runLab([
    "convert",
    "--teacher",
    teacher,
    "--out",
    out,
    "--attention-layers",
    "1",
    "--seed",
    "3",
  ]);
  assert.equal(r.code, 0, r.stderr);
  using got = await SafetensorsFile.open(`${out}/model.safetensors`);
  using want = await SafetensorsFile.open(`${reference}/model.safetensors`);
  assert.deepEqual(got.names(), want.names());
  for (const n of want.names()) assert.deepEqual(got.info(n).shape, want.info(n).shape, n);
  assert.deepEqual(
    JSON.parse(await Deno.readTextFile(`${out}/mamba_config.json`)),
    JSON.parse(await Deno.readTextFile(`${reference}/mamba_config.json`)),
  );
  assert.equal(
    await Deno.readTextFile(`${out}/config.json`),
    await Deno.readTextFile(`${teacher}/config.json`),
  );
  // Everything but layer 0's new parameters equals the reference student: copied tensors, and the
  // in_proj rows and out_proj taken from v, k, q, o.
  const inProj = await got.readF32("model.layers.0.mamba.in_proj.weight");
  const refInProj = await want.readF32("model.layers.0.mamba.in_proj.weight");
  const D = 64;
  assert.deepEqual(inProj.subarray(64 * D, 192 * D), refInProj.subarray(64 * D, 192 * D), "x | B | C rows");
  for (const n of want.names().filter((n) => !/layers\.0\.mamba\.(in_proj|conv1d|dt_bias|A_log)/.test(n))) {
    assert.deepEqual(await got.readBytes(n), await want.readBytes(n), n);
  }
  // New parameters: seeded, within the reference's ranges.
  const aLog = await got.readF32("model.layers.0.mamba.A_log");
  assert.ok(aLog.every((v) => v >= 0 && v <= Math.log(16)));
  const dt = Array.from(await got.readF32("model.layers.0.mamba.dt_bias"), (b) => Math.log1p(Math.exp(b)));
  assert.ok(dt.every((v) => v >= 1e-3 * 0.999 && v <= 0.1 * 1.001), `dt = ${dt}`);
  const conv = await got.readF32("model.layers.0.mamba.conv1d.weight");
  assert.ok(conv.every((v) => Math.abs(v) <= 0.5) && conv.some((v) => v !== 0));
  const z = inProj.subarray(0, 64 * D);
  assert.ok(z.every((v) => Math.abs(v) <= 1 / 8) && z.some((v) => Math.abs(v) > 0.1));
  // Same seed, same bytes; another seed, other new parameters.
  const again = await Deno.makeTempDir();
  await runLab(["convert", "--teacher", teacher, "--out", again, "--attention-layers", "1", "--seed", "3"]);
  assert.deepEqual(
    await Deno.readFile(`${again}/model.safetensors`),
    await Deno.readFile(`${out}/model.safetensors`),
  );
  await runLab(["convert", "--teacher", teacher, "--out", again, "--attention-layers", "1", "--seed", "4"]);
  using other = await SafetensorsFile.open(`${again}/model.safetensors`);
  assert.notDeepEqual(await other.readF32("model.layers.0.mamba.A_log"), aLog);
  for (const d of [out, again]) await Deno.remove(d, { recursive: true });
});

Deno.test("lab convert: share flags, random init and unsupported options", async () => {
  const out = await Deno.makeTempDir();
  const r = await runLab([
    "convert",
    "--teacher",
    teacher,
    "--out",
    out,
    "--attention-share",
    "0",
    "--init",
    "random",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(await Deno.readTextFile(`${out}/mamba_config.json`)).attn_layers, []);
  using got = await SafetensorsFile.open(`${out}/model.safetensors`);
  using t = await SafetensorsFile.open(`${teacher}/model.safetensors`);
  const v = await t.readF32("model.layers.1.self_attn.v_proj.weight");
  const x = (await got.readF32("model.layers.1.mamba.in_proj.weight")).subarray(64 * 64, 64 * 64 + v.length);
  assert.notDeepEqual(x, v, "a random init does not copy v_proj");
  const both = await runLab([
    "convert",
    "--teacher",
    teacher,
    "--out",
    out,
    "--attention-share",
    "0.5",
    "--attention-layers",
    "1",
  ]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /exactly one of/);
  const m1 = await runLab([
    "convert",
    "--teacher",
    teacher,
    "--out",
    out,
    "--attention-share",
    "0.5",
    "--mamba",
    "3",
  ]);
  assert.equal(m1.code, 2);
  assert.match(m1.stderr, /--mamba must be 1 or 2/);
  assert.ok(Math.abs(Math.log1p(Math.exp(inverseSoftplus(0.01))) - 0.01) < 1e-12);
  await Deno.remove(out, { recursive: true });
});
