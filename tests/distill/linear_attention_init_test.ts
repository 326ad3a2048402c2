// The `linear-attention` init of the Mamba-2 port (lib/distill/convert_mamba2.ts): the converted layer,
// loaded and run by the hybrid model on the GPU (kernels/conv1d.wgsl, ssd.wgsl, gated_norm.wgsl,
// mamba2_glue.wgsl), equals o_proj(silu(z_t) ⊙ Σ_{s≤t} (q_t·k_s) v_s) computed in float64 from the
// teacher's q, k, v, o (no softmax, no 1/√d, no RoPE) — on Brown text and on random hidden states;
// and its SSD stage (everything before the gate) is the teacher's plain linear attention: mixing matrix
// (α_q α_k / 4)·q_t·k_s and values (α_v / 2)·v, through the layer's real conv and SiLU (lib/mixing).
import assert from "node:assert/strict";
import { initGpu } from "../../lib/gpu/device.ts";
import { Checkpoint } from "../../lib/io/checkpoint.ts";
import { loadTokenizer } from "../../lib/io/tokenizer.ts";
import { readBrownParagraphs, splitBrown } from "../../lib/data/brown.ts";
import { convertTeacher } from "../../lib/distill/convert.ts";
import { LINEAR_ATTENTION_TAU, linearAttentionScales, mamba2Dims } from "../../lib/distill/convert_mamba2.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { embeddingRef, rmsNormRef } from "../../lib/tensor/ops_ref.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import {
  linearAttentionMixingRef,
  linearRef,
  mamba2InputsRef,
  readMamba2HostWeights,
  ssdMixingRef,
} from "../../lib/mixing/mod.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();

const teacherDir = new URL("../../data/brown-llama-6m", import.meta.url).pathname;
const LAYER = 2;

/** o_proj(gate ⊙ LA) in float64: LA_t[h] = Σ_{s≤t} (q_t[h]·k_s[g]) v_s[g], g = ⌊h·H_kv/H⌋. */
function gatedLinearAttention(
  u: Float64Array,
  T: number,
  w: { q: Float32Array; k: Float32Array; v: Float32Array; o: Float32Array; z: Float32Array },
  c: { D: number; H: number; Hkv: number; P: number },
): Float64Array {
  const { D, H, Hkv, P } = c;
  const proj = (W: Float32Array, rows: number) => {
    const y = new Float64Array(T * rows);
    for (let t = 0; t < T; t++) {
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let j = 0; j < D; j++) s += u[t * D + j] * W[r * D + j];
        y[t * rows + r] = s;
      }
    }
    return y;
  };
  const q = proj(w.q, H * P), k = proj(w.k, Hkv * P), v = proj(w.v, Hkv * P), z = proj(w.z, H * P);
  const y = new Float64Array(T * H * P);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h * Hkv / H);
      for (let s = 0; s <= t; s++) {
        let qk = 0;
        for (let n = 0; n < P; n++) qk += q[(t * H + h) * P + n] * k[(s * Hkv + g) * P + n];
        for (let p = 0; p < P; p++) y[(t * H + h) * P + p] += qk * v[(s * Hkv + g) * P + p];
      }
      for (let p = 0; p < P; p++) {
        const zz = z[(t * H + h) * P + p];
        y[(t * H + h) * P + p] *= zz / (1 + Math.exp(-zz));
      }
    }
  }
  const out = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < D; r++) {
      let s = 0;
      for (let j = 0; j < H * P; j++) s += y[t * H * P + j] * w.o[r * H * P + j];
      out[t * D + r] = s;
    }
  }
  return out;
}

Deno.test("linear-attention init: the converted Mamba-2 layer computes the teacher's gated causal linear attention", async () => {
  const out = await Deno.makeTempDir();
  const layers = [0, 1, 2, 3, 4, 5].filter((i) => i !== LAYER);
  await convertTeacher(teacherDir, out, { attentionLayers: layers, init: "linear-attention", seed: 1 });
  using teacher = await Checkpoint.open(teacherDir);
  using student = await Checkpoint.open(out);
  const c = teacher.config;
  const dims = { D: c.hiddenSize, H: c.numHeads, Hkv: c.numKvHeads, P: c.headDim };
  const a = `model.layers.${LAYER}.self_attn`;
  const w = {
    q: await teacher.readF32(`${a}.q_proj.weight`),
    k: await teacher.readF32(`${a}.k_proj.weight`),
    v: await teacher.readF32(`${a}.v_proj.weight`),
    o: await teacher.readF32(`${a}.o_proj.weight`),
    z: (await student.readF32(`model.layers.${LAYER}.mamba.in_proj.weight`)).subarray(
      0,
      dims.H * dims.P * dims.D,
    ),
  };
  const norm = await teacher.readF32(`model.layers.${LAYER}.input_layernorm.weight`);
  // Real text: the embeddings of a Brown validation paragraph; random: N(0, 1) hidden states.
  const tok = await loadTokenizer(teacherDir);
  const T = 48;
  const ids = splitBrown(await readBrownParagraphs()).validation.slice(0, 4).flatMap((p) => tok.encode(p))
    .slice(0, T);
  assert.equal(ids.length, T);
  const embed = await teacher.readF32("model.embed_tokens.weight");
  const inputs = {
    brown: embeddingRef(ids, embed, dims.D),
    random: Float64Array.from(randomArray(T * dims.D, 17, 3)),
  };
  using model = await LlamaModel.load(out);
  assert.ok(model.layers[LAYER].mamba && !model.layers[LAYER].attn);
  const scales = linearAttentionScales({ ...w, inputNorm: norm }, mamba2Dims(c), c.rmsNormEps);
  for (const [name, h] of Object.entries(inputs)) {
    const u = rmsNormRef(h, norm, dims.D, c.rmsNormEps);
    // The SiLU bound of the construction holds on this input.
    const vMax = Math.max(...gatedLinearAttentionInputs(u, T, w.v, dims.D).map(Math.abs));
    assert.ok(vMax * scales.alphaV <= LINEAR_ATTENTION_TAU, `|α v| ≤ τ on ${name}`);
    using x = Tensor.from(Float32Array.from(u), [1, T, dims.D]);
    using y = model.mixerForward(LAYER, x);
    const got = await y.toArray();
    const want = gatedLinearAttention(u, T, w, dims);
    const scale = Math.max(...want.map(Math.abs));
    assert.ok(scale > 1e-3, `a non-trivial output on ${name}`);
    assertAllclose(got, want, { rtol: 1e-4, atol: 1e-4 * scale, name });
  }
  await Deno.remove(out, { recursive: true });
});

/** v = u W_vᵀ (T, rows) for the bound check. */
function gatedLinearAttentionInputs(u: Float64Array, T: number, W: Float32Array, D: number): number[] {
  const rows = W.length / D;
  const y: number[] = [];
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = 0; j < D; j++) s += u[t * D + j] * W[r * D + j];
      y.push(s);
    }
  }
  return y;
}

Deno.test("linear-attention init: the SSD stage's mixing matrix and values are the teacher's plain linear attention", async () => {
  const out = await Deno.makeTempDir();
  const layers = [0, 1, 2, 3, 4, 5].filter((i) => i !== LAYER);
  await convertTeacher(teacherDir, out, { attentionLayers: layers, init: "linear-attention", seed: 1 });
  using teacher = await Checkpoint.open(teacherDir);
  using student = await Checkpoint.open(out);
  const c = teacher.config;
  const [D, H, Hkv, P] = [c.hiddenSize, c.numHeads, c.numKvHeads, c.headDim];
  const a = `model.layers.${LAYER}.self_attn`;
  const q = await teacher.readF32(`${a}.q_proj.weight`);
  const k = await teacher.readF32(`${a}.k_proj.weight`);
  const v = await teacher.readF32(`${a}.v_proj.weight`);
  const o = await teacher.readF32(`${a}.o_proj.weight`);
  const norm = await teacher.readF32(`model.layers.${LAYER}.input_layernorm.weight`);
  const s = linearAttentionScales({ q, k, v, o, inputNorm: norm }, mamba2Dims(c), c.rmsNormEps);
  const T = 24;
  const u = rmsNormRef(randomArray(T * D, 5, 2), norm, D, c.rmsNormEps);
  const ops = mamba2InputsRef(u, await readMamba2HostWeights(student, LAYER), mamba2Dims(c), {
    batch: 1,
    T,
    kvHeads: Hkv,
  });
  const M = ssdMixingRef({
    dims: { batch: 1, T, H, N: P },
    A: ops.A,
    B: ops.B,
    C: ops.C,
    dt: ops.dt,
    D: ops.D,
  });
  const la = linearAttentionMixingRef(linearRef(u, q, D, H * P), linearRef(u, k, D, Hkv * P), {
    batch: 1,
    T,
    H,
    Hkv,
    P,
  });
  const want = la.map((m) => m * s.alphaQ * s.alphaK / 4);
  const scale = Math.max(...want.map(Math.abs));
  assertAllclose(M, want, {
    rtol: 1e-5,
    atol: 1e-5 * scale,
    name: "M = (α_q α_k / 4) q_t·k_s (s ≤ t), 0 above",
  });
  // x of head h is (α_v / 2)·v of its kv head ⌊h·H_kv/H⌋.
  const vh = linearRef(u, v, D, Hkv * P);
  const wantX = new Float64Array(T * H * P);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h * Hkv / H);
      for (let p = 0; p < P; p++) wantX[(t * H + h) * P + p] = vh[(t * Hkv + g) * P + p] * s.alphaV / 2;
    }
  }
  assertAllclose(ops.x, wantX, { rtol: 1e-5, atol: 1e-5 * Math.max(...wantX.map(Math.abs)), name: "x" });
  assert.ok(ops.dt.every((x) => Math.abs(x - 1) < 1e-6), "dt = 1");
  await Deno.remove(out, { recursive: true });
});
