/**
 * `lab grads` on a hybrid (MambaInLlama's tiny hybrid, lib/cli/commands.ts gradsCommand): every
 * checkpoint tensor gets a gradient in its checkpoint shape, plus `loss`; loss and the dt_bias / D
 * gradients equal the float64 model (lib/models/llama_ref.ts) and its finite differences.
 */
import assert from "node:assert/strict";
import { parseLlamaConfig, readJsonFile } from "../../lib/io/config.ts";
import { SafetensorsFile, writeSafetensors } from "../../lib/io/safetensors.ts";
import { mamba2DimsOf } from "../../lib/models/hybrid.ts";
import { nextTokenLossRef } from "../../lib/models/llama_ref.ts";
import { ropeInverseFrequencies } from "../../lib/tensor/rope.ts";
import { assertAllclose } from "../_assert.ts";
import { runLab } from "./_run.ts";

const hybrid = new URL("../fixtures/tiny-hybrid-mamba2", import.meta.url).pathname;

Deno.test("lab grads on a hybrid: every tensor of the checkpoint in its shape, loss and mamba.* gradients vs the float64 model", async () => {
  const dir = await Deno.makeTempDir();
  const [B, T] = [2, 10];
  const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 613 + 5) % 4096);
  await writeSafetensors(`${dir}/in.safetensors`, { input_ids: { dtype: "I32", shape: [B, T], data: ids } });
  const r = await runLab([
    "grads",
    "--model",
    hybrid,
    "--input",
    `${dir}/in.safetensors`,
    "--out",
    `${dir}/g.safetensors`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  using got = await SafetensorsFile.open(`${dir}/g.safetensors`);
  using ckpt = await SafetensorsFile.open(`${hybrid}/model.safetensors`);
  assert.deepEqual(got.names().sort(), [...ckpt.names(), "loss"].sort());
  for (const name of ckpt.names()) {
    assert.deepEqual(got.info(name).shape, ckpt.info(name).shape, `${name}: shape`);
  }

  const config = parseLlamaConfig(await readJsonFile(`${hybrid}/config.json`), "config.json");
  const mc = JSON.parse(await Deno.readTextFile(`${hybrid}/mamba_config.json`));
  const w = new Map<string, Float64Array>();
  for (const n of ckpt.names()) w.set(n, Float64Array.from(await ckpt.readF32(n)));
  const model = {
    config,
    mamba: { dims: mamba2DimsOf(mc), attnLayers: mc.attn_layers },
    invFreq: ropeInverseFrequencies(config.rope, config.headDim),
  };
  const loss = () => nextTokenLossRef(model, (n) => w.get(n)!, ids, B, T);
  assertAllclose(await got.readF32("loss"), [loss()], { atol: 1e-4, rtol: 0, name: "loss" });
  for (const name of ["model.layers.0.mamba.dt_bias", "model.layers.0.mamba.D"]) {
    const t = w.get(name)!;
    const fd = Array.from(t, (keep, j) => {
      t[j] = keep + 1e-3;
      const up = loss();
      t[j] = keep - 1e-3;
      const down = loss();
      t[j] = keep;
      return (up - down) / 2e-3;
    });
    const g = await got.readF32(name);
    const scale = g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assertAllclose(g, fd, { atol: 1e-3 * scale, rtol: 1e-3, name });
  }
  await Deno.remove(dir, { recursive: true });
});
