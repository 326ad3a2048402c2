/**
 * Mamba-1 layers' per-channel mixing matrices (lib/mixing/layer_mixing.ts, mamba1_inputs.ts) on
 * tiny-llama converted with MambaInLlama's Mamba-1 port: the matrices from the model equal the float64
 * chain from the checkpoint, and M_d·u_d, gated by silu(z) and through out_proj, is the layer's output
 * as the float64 twin of the mixer (`mamba1ForwardRef`) computes it.
 */
import assert from "node:assert/strict";
import { convertTeacher } from "../../lib/distill/convert.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { Checkpoint } from "../../lib/io/checkpoint.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { layerKind, layerMixing } from "../../lib/mixing/layer_mixing.ts";
import { mamba1InputsRef } from "../../lib/mixing/mamba1_inputs.ts";
import { linearRef } from "../../lib/mixing/mamba2_inputs.ts";
import { mamba1MixingRef } from "../../lib/mixing/mixing_ref.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { mamba1ForwardRef } from "../../lib/models/mamba1_layer_ref.ts";
import { rmsNormRef } from "../../lib/tensor/ops_ref.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose } from "../_assert.ts";

await initGpu();

const TINY = new URL("../fixtures/tiny-llama", import.meta.url).pathname;
const T = 10;

Deno.test("layerMixing: a Mamba-1 layer's per-channel matrices equal the float64 chain, and M·u gives the mixer's output", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await convertTeacher(TINY, dir, { attentionLayers: [1], mamba: 1, seed: 0 });
    using ref = await SafetensorsFile.open(`${TINY}/reference.safetensors`);
    const ids = ((await ref.read("input_ids")).data as Int32Array).slice(0, T);
    using model = await LlamaModel.load(dir);
    assert.equal(layerKind(model, 0), "mamba1");
    const d = model.hybrid!.mamba1Dims!;
    using x = Tensor.from(ids, [1, T], "i32");
    const { kind, M } = await layerMixing(model, x, 0);
    assert.equal(kind, "mamba1");
    assert.deepEqual(M.shape, [1, d.dInner, T, T]);
    const [got] = await readTensors([M]);
    M.dispose();

    using ckpt = await Checkpoint.open(dir);
    const c = ckpt.config;
    const Dm = c.hiddenSize;
    const embed = await ckpt.readF32("model.embed_tokens.weight");
    const h0 = new Float64Array(T * Dm);
    ids.forEach((id, t) => h0.set(embed.subarray(id * Dm, (id + 1) * Dm), t * Dm));
    const u = rmsNormRef(h0, await ckpt.readF32("model.layers.0.input_layernorm.weight"), Dm, c.rmsNormEps);
    const names = ckpt.names().filter((n) => n.startsWith("model.layers.0.mamba."));
    const w: Record<string, Float32Array> = {};
    for (const n of names) w[n.slice("model.layers.0.mamba.".length)] = await ckpt.readF32(n);
    const ops = mamba1InputsRef(u, w, d, { batch: 1, T });
    const want = mamba1MixingRef(ops);
    assertAllclose(got, want, { rtol: 1e-3, atol: 1e-5, name: "Mamba-1 matrices" });

    // y_d = M_d u_d, then the gate silu(z) and out_proj: the mixer's output.
    const D = d.dInner;
    const y = new Float64Array(T * D); // (T, D) rows for out_proj
    for (let ch = 0; ch < D; ch++) {
      for (let t = 0; t < T; t++) {
        let acc = 0;
        for (let s = 0; s <= t; s++) acc += want[(ch * T + t) * T + s] * ops.u[ch * T + s];
        const z = ops.z[ch * T + t];
        y[t * D + ch] = acc * z / (1 + Math.exp(-z));
      }
    }
    const out = linearRef(y, w["out_proj.weight"], D, Dm);
    assertAllclose(out, mamba1ForwardRef(u, { B: 1, L: T }, w, d), {
      rtol: 1e-9,
      atol: 1e-11,
      name: "mixer output",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
