/**
 * Per-layer mixing matrices of loaded models (kernels/mixing.wgsl through lib/mixing/layer_mixing.ts):
 * a Mamba-2 layer of MambaInLlama's tiny hybrid against the float64 chain embedding → norm → in_proj →
 * conv → SSD operands → M, where M·x through the gated norm, out_proj and MLP reproduces the fixture's
 * hidden state made by MambaInLlama's code; attention layers against transformers' probabilities and
 * the CPU linear attention.
 */
import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { Checkpoint } from "../../lib/io/checkpoint.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { layerKind, layerMixing } from "../../lib/mixing/layer_mixing.ts";
import { linearRef, mamba2InputsRef, readMamba2HostWeights } from "../../lib/mixing/mamba2_inputs.ts";
import { applyMixingRef, linearAttentionMixingRef, ssdMixingRef } from "../../lib/mixing/mixing_ref.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { mamba2DimsOf, readMambaConfig } from "../../lib/models/hybrid.ts";
import { gatedRmsNormRef } from "../../lib/ssm/gated_norm_ref.ts";
import { rmsNormRef, swigluRef } from "../../lib/tensor/ops_ref.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose } from "../_assert.ts";

await initGpu();

const HYBRID = new URL("../fixtures/tiny-hybrid-mamba2", import.meta.url).pathname;
const TINY = new URL("../fixtures/tiny-llama", import.meta.url).pathname;

async function firstSequence(dir: string, T?: number): Promise<{ ids: Int32Array; T: number; full: number }> {
  using f = await SafetensorsFile.open(`${dir}/reference.safetensors`);
  const t = await f.read("input_ids");
  const full = t.shape[1];
  const n = T ?? full;
  return { ids: (t.data as Int32Array).slice(0, n), T: n, full };
}

Deno.test("layerMixing: the hybrid's Mamba-2 layer 0 equals the float64 chain, and M·x reproduces MambaInLlama's hidden state", async () => {
  const { ids, T } = await firstSequence(HYBRID);
  using model = await LlamaModel.load(HYBRID);
  assert.equal(layerKind(model, 0), "mamba2");
  using idsT = Tensor.from(ids, [1, T], "i32");
  const { kind, M } = await layerMixing(model, idsT, 0);
  assert.equal(kind, "mamba2");
  assert.deepEqual(M.shape, [1, 4, T, T]);
  const [got] = await readTensors([M]);
  M.dispose();

  // The same maths on the host from the checkpoint's tensors.
  using ckpt = await Checkpoint.open(HYBRID);
  const c = ckpt.config;
  const dims = mamba2DimsOf((await readMambaConfig(HYBRID, c))!);
  const Dm = c.hiddenSize;
  const embed = await ckpt.readF32("model.embed_tokens.weight");
  const h0 = new Float64Array(T * Dm);
  ids.forEach((id, t) => h0.set(embed.subarray(id * Dm, (id + 1) * Dm), t * Dm));
  const u = rmsNormRef(h0, await ckpt.readF32("model.layers.0.input_layernorm.weight"), Dm, c.rmsNormEps);
  const w = await readMamba2HostWeights(ckpt, 0);
  const ops = mamba2InputsRef(u, w, dims, { batch: 1, T, kvHeads: c.numKvHeads });
  const want = ssdMixingRef({
    dims: { batch: 1, T, H: 4, N: dims.dState },
    A: ops.A,
    B: ops.B,
    C: ops.C,
    dt: ops.dt,
    D: ops.D,
  });
  assertAllclose(got, want, { rtol: 1e-3, atol: 1e-5, name: "M layer 0" });

  // M x (with D on the diagonal) → gated norm → out_proj → residual → MLP = the fixture's hidden state 1.
  const y = applyMixingRef(want, ops.x, { batch: 1, T, H: 4, P: dims.headDim });
  const g = gatedRmsNormRef(y, ops.z, w.norm, dims.dInner, {
    eps: c.rmsNormEps,
    groupSize: dims.dInner / dims.nGroups,
  });
  const mix = linearRef(g, w.outProj, dims.dInner, Dm);
  const h1 = h0.map((v, i) => v + mix[i]);
  const x2 = rmsNormRef(
    h1,
    await ckpt.readF32("model.layers.0.post_attention_layernorm.weight"),
    Dm,
    c.rmsNormEps,
  );
  const I = c.intermediateSize;
  const gate = linearRef(x2, await ckpt.readF32("model.layers.0.mlp.gate_proj.weight"), Dm, I);
  const up = linearRef(x2, await ckpt.readF32("model.layers.0.mlp.up_proj.weight"), Dm, I);
  const mlp = linearRef(
    swigluRef(gate, up),
    await ckpt.readF32("model.layers.0.mlp.down_proj.weight"),
    I,
    Dm,
  );
  using ref = await SafetensorsFile.open(`${HYBRID}/reference.safetensors`);
  const hidden = await ref.readF32("hidden_states"); // [after layer 0, final], (2, B, T, d)
  assertAllclose(h1.map((v, i) => v + mlp[i]), hidden.subarray(0, T * Dm), {
    atol: 1e-3,
    rtol: 0,
    name: "hidden 1",
  });
});

Deno.test("layerMixing: attention layers give transformers' probabilities, and linear attention q kᵀ on request", async () => {
  const { ids, T } = await firstSequence(TINY);
  using model = await LlamaModel.load(TINY);
  using idsT = Tensor.from(ids, [1, T], "i32");
  using ref = await SafetensorsFile.open(`${TINY}/reference.safetensors`);
  const att = await ref.readF32("attentions"); // (layers, B, H, T, T)
  const per = 2 * 4 * T * T;
  const soft = await layerMixing(model, idsT, 1);
  assert.equal(soft.kind, "attention");
  const [probs] = await readTensors([soft.M]);
  soft.M.dispose();
  assertAllclose(probs, att.subarray(per, per + 4 * T * T), {
    atol: 1e-5,
    rtol: 1e-4,
    name: "probs layer 1",
  });

  const lin = await layerMixing(model, idsT, 1, { attention: "linear" });
  const [gotLin] = await readTensors([lin.M]);
  lin.M.dispose();
  using ckpt = await Checkpoint.open(TINY);
  const c = ckpt.config;
  const hidden = await ref.readF32("hidden_states"); // [embeddings, layer 0, final]
  const Dm = c.hiddenSize;
  const h1 = hidden.subarray(2 * T * Dm, 3 * T * Dm); // hidden_states[1], sequence 0
  const u = rmsNormRef(h1, await ckpt.readF32("model.layers.1.input_layernorm.weight"), Dm, c.rmsNormEps);
  const q = linearRef(u, await ckpt.readF32("model.layers.1.self_attn.q_proj.weight"), Dm, 4 * c.headDim);
  const k = linearRef(u, await ckpt.readF32("model.layers.1.self_attn.k_proj.weight"), Dm, 2 * c.headDim);
  const want = linearAttentionMixingRef(q, k, { batch: 1, T, H: 4, Hkv: 2, P: c.headDim });
  assertAllclose(gotLin, want, { atol: 1e-4, rtol: 1e-3, name: "linear attention layer 1" });
});

Deno.test("layerMixing: a layer outside the model is a ShapeError naming the range", async () => {
  using model = await LlamaModel.load(TINY);
  using idsT = Tensor.from(new Int32Array([1, 2, 3]), [1, 3], "i32");
  await assert.rejects(
    () => layerMixing(model, idsT, 2),
    (e) => e instanceof ShapeError && /outside 0 … 1/.test(e.message),
  );
});
