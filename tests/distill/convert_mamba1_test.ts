// The Mamba-1 port (lib/distill/convert_mamba1.ts) and `lab convert --mamba 1`: which rows came from
// where (reference and head-aligned blocks), names and shapes of MambaInLlama's Mamba-1 layer, the
// mamba_config, and the converted directory loading into the hybrid model (kernels/mamba1_glue.wgsl,
// selective_scan.wgsl, conv1d.wgsl) with `lab logits` running on it.
import assert from "node:assert/strict";
import { initGpu } from "../../lib/gpu/device.ts";
import { Checkpoint } from "../../lib/io/checkpoint.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { Rng } from "../../lib/random.ts";
import {
  convertAttentionToMamba1,
  mamba1BlockSources,
  mamba1Dims,
} from "../../lib/distill/convert_mamba1.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { mamba1ForwardRef } from "../../lib/models/mamba1_layer_ref.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";
import { runLab } from "../cli/_run.ts";

const root = new URL("../../", import.meta.url).pathname;
const tiny = `${root}tests/fixtures/tiny-llama`;
const brown = `${root}data/brown-llama-6m`;

const NAMES = [
  "A_log",
  "B_proj.weight",
  "C_proj.weight",
  "D",
  "conv1d.bias",
  "conv1d.weight",
  "dt_proj.bias",
  "dt_proj.weight",
  "dt_proj_down.weight",
  "in_proj_x.weight",
  "in_proj_z.weight",
  "out_proj.weight",
];

Deno.test("mamba1 port: x←v, B←k, C←q, out←o; head-aligned blocks pair sub-block m of q head h with sub-block m of kv head ⌊h/r⌋", async () => {
  using ckpt = await Checkpoint.open(brown); // head_dim 32 = 2 blocks of 16, 8 q heads on 4 kv heads
  const c = ckpt.config;
  const a = "model.layers.0.self_attn";
  const att = {
    q: await ckpt.readF32(`${a}.q_proj.weight`),
    k: await ckpt.readF32(`${a}.k_proj.weight`),
    v: await ckpt.readF32(`${a}.v_proj.weight`),
    o: await ckpt.readF32(`${a}.o_proj.weight`),
  };
  const d = mamba1Dims(c);
  assert.deepEqual(d, { dModel: 256, dInner: 256, dXb: 128, dState: 16, dtRank: 16, convWidth: 4 });
  const N = 16, M = 256, r = 2, S = 2;
  const ref = convertAttentionToMamba1(att, d, new Rng(0), { headDim: c.headDim });
  const heads = convertAttentionToMamba1(att, d, new Rng(0), { headDim: c.headDim, blocks: "heads" });
  assert.deepEqual(Object.keys(ref).sort(), NAMES);
  const shapes: Record<string, number[]> = Object.fromEntries(
    Object.entries(ref).map(([k, t]) => [k, t.shape]),
  );
  assert.deepEqual(shapes, {
    "in_proj_x.weight": [128, 256],
    "in_proj_z.weight": [256, 256],
    "conv1d.weight": [256, 1, 4],
    "conv1d.bias": [256],
    "B_proj.weight": [128, 256],
    "C_proj.weight": [256, 256],
    "dt_proj_down.weight": [16, 256],
    "dt_proj.weight": [256, 16],
    "dt_proj.bias": [256],
    "A_log": [256, 16],
    "D": [256],
    "out_proj.weight": [256, 256],
  });
  assert.deepEqual(ref["in_proj_x.weight"].data, att.v);
  assert.deepEqual(ref["B_proj.weight"].data, att.k);
  assert.deepEqual(ref["C_proj.weight"].data, att.q);
  assert.deepEqual(ref["out_proj.weight"].data, att.o);
  // S4D-real A and D = 1; the same seed draws the same new parameters in both layouts.
  assert.deepEqual(
    Array.from((ref["A_log"].data as Float32Array).slice(0, 16), Math.exp).map(Math.round),
    [...Array(16)].map((_, n) => n + 1),
  );
  assert.ok((ref["D"].data as Float32Array).every((v) => v === 1));
  for (const n of ["in_proj_z.weight", "dt_proj.bias", "conv1d.weight"]) {
    assert.deepEqual(heads[n].data, ref[n].data, n);
  }
  // The reference pairs C group j with k block ⌊j/r⌋: the right kv head, a mismatched sub-block.
  const refSrc = mamba1BlockSources(d, c.headDim, "reference");
  const mismatched = refSrc.filter((s) => s.qBlock % S !== s.kvBlock % S).length;
  assert.equal(mismatched, 8, "half of the 16 groups pair different sub-blocks");
  for (const s of refSrc) assert.equal(Math.floor(Math.floor(s.qBlock / S) / r), Math.floor(s.kvBlock / S));
  // Head-aligned: every group reads q head h sub-block m and kv head ⌊h/r⌋ sub-block m, each q block once.
  const src = mamba1BlockSources(d, c.headDim, "heads");
  assert.deepEqual(src.map((s) => s.qBlock).sort((x, y) => x - y), [...Array(16).keys()]);
  const C = heads["C_proj.weight"].data as Float32Array;
  const O = heads["out_proj.weight"].data as Float32Array;
  for (const s of src) {
    const h = Math.floor(s.qBlock / S), m = s.qBlock % S;
    assert.equal(Math.floor(s.kvBlock / S), Math.floor(h / r), `group ${s.group}: kv head`);
    assert.equal(s.kvBlock % S, m, `group ${s.group}: sub-block`);
    assert.deepEqual(
      C.subarray(s.group * N * M, (s.group + 1) * N * M),
      att.q.subarray(s.qBlock * N * M, (s.qBlock + 1) * N * M),
    );
    for (const row of [0, 77, 255]) {
      assert.deepEqual(
        O.subarray(row * 256 + s.group * N, row * 256 + s.group * N + N),
        att.o.subarray(row * 256 + s.qBlock * N, row * 256 + s.qBlock * N + N),
      );
    }
  }
  assert.deepEqual(src.slice(0, 4).map((s) => s.qBlock), [0, 2, 1, 3], "q heads 0, 1 share kv head 0");
  // With d_state = head_dim both layouts coincide (one block per head).
  assert.deepEqual(
    mamba1BlockSources(mamba1Dims(c, 32), 32, "heads"),
    mamba1BlockSources(mamba1Dims(c, 32), 32, "reference"),
  );
});

Deno.test("lab convert --mamba 1: MambaInLlama's Mamba-1 layout loads, its mixer matches the float64 reference, lab logits runs", async () => {
  await initGpu();
  const out = await Deno.makeTempDir();
  const r = await runLab([
    "convert",
    "--teacher",
    tiny,
    "--out",
    out,
    "--attention-layers",
    "1",
    "--mamba",
    "1",
    "--seed",
    "2",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Mamba-1/);
  const cfg = JSON.parse(await Deno.readTextFile(`${out}/mamba_config.json`));
  assert.deepEqual(cfg, {
    d_model: 64,
    ssm_cfg: { expand: 1, d_state: 16 },
    rms_norm_eps: 1e-5,
    vocab_size: 4096,
    d_inner: 64,
    d_xb: 32,
    intermediate_size: 176,
    hidden_act: "silu",
    n_layer: 2,
    attn_layers: [1],
  });
  using st = await SafetensorsFile.open(`${out}/model.safetensors`);
  const layer0 = st.names().filter((n) => n.startsWith("model.layers.0.")).sort();
  assert.deepEqual(
    layer0,
    [
      ...NAMES.map((n) => `model.layers.0.mamba.${n}`),
      "model.layers.0.input_layernorm.weight",
      "model.layers.0.mlp.down_proj.weight",
      "model.layers.0.mlp.gate_proj.weight",
      "model.layers.0.mlp.up_proj.weight",
      "model.layers.0.post_attention_layernorm.weight",
    ].sort(),
  );
  assert.ok(st.names().includes("model.layers.1.self_attn.q_proj.weight"));
  // The loaded layer: its mixer on the GPU against the float64 reference on the file's tensors.
  using model = await LlamaModel.load(out);
  assert.ok(model.layers[0].mamba1 && !model.layers[0].mamba && !model.layers[0].attn);
  assert.equal(model.namedParameters().filter(([n]) => n.startsWith("model.layers.0.mamba.")).length, 12);
  const host = Object.fromEntries(
    await Promise.all(NAMES.map(async (n) => [n, await st.readF32(`model.layers.0.mamba.${n}`)] as const)),
  );
  const T = 12;
  const u = randomArray(T * 64, 4);
  using x = Tensor.from(u, [1, T, 64]);
  using y = model.mixerForward(0, x);
  assertAllclose(await y.toArray(), mamba1ForwardRef(u, { B: 1, L: T }, host, model.hybrid!.mamba1Dims!), {
    rtol: 1e-4,
    atol: 1e-5,
    name: "mixer",
  });
  // lab logits on the directory.
  const ids = `${out}/ids.safetensors`;
  const { writeSafetensors } = await import("../../lib/io/safetensors.ts");
  await writeSafetensors(ids, {
    input_ids: { dtype: "I32", shape: [1, 8], data: Int32Array.from([1, 5, 9, 2, 7, 3, 3, 0]) },
  });
  const lg = await runLab(["logits", "--model", out, "--input", ids, "--out", `${out}/logits.safetensors`]);
  assert.equal(lg.code, 0, lg.stderr);
  using lf = await SafetensorsFile.open(`${out}/logits.safetensors`);
  const logits = await lf.readF32("logits");
  assert.equal(logits.length, 8 * 4096);
  assert.ok(logits.every(Number.isFinite));
  // lab grads: a gradient for every Mamba-1 parameter, in the checkpoint's shapes.
  const gr = await runLab(["grads", "--model", out, "--input", ids, "--out", `${out}/grads.safetensors`]);
  assert.equal(gr.code, 0, gr.stderr);
  using gf = await SafetensorsFile.open(`${out}/grads.safetensors`);
  for (const n of NAMES) {
    const name = `model.layers.0.mamba.${n}`;
    assert.deepEqual(gf.info(name).shape, st.info(name).shape, name);
    assert.ok((await gf.readF32(name)).some((g) => g !== 0), `${name} gets a gradient`);
  }
  const convert = (teacher: string, to: string, flags: string[]) =>
    runLab(["convert", "--teacher", teacher, "--out", to, ...flags]);
  // Seeded; --init random replaces the copies; linear-attention and --blocks have their own scopes.
  const again = await Deno.makeTempDir();
  await convert(tiny, again, ["--attention-layers", "1", "--mamba", "1", "--seed", "2"]);
  assert.deepEqual(
    await Deno.readFile(`${again}/model.safetensors`),
    await Deno.readFile(`${out}/model.safetensors`),
  );
  const rnd = await convert(tiny, again, ["--attention-share", "0", "--mamba", "1", "--init", "random"]);
  assert.equal(rnd.code, 0, rnd.stderr);
  using rf = await SafetensorsFile.open(`${again}/model.safetensors`);
  assert.notDeepEqual(
    await rf.readF32("model.layers.1.mamba.C_proj.weight"),
    await st.readF32("model.layers.1.self_attn.q_proj.weight"),
  );
  const la = await convert(tiny, again, [
    "--attention-share",
    "0",
    "--mamba",
    "1",
    "--init",
    "linear-attention",
  ]);
  assert.equal(la.code, 2);
  assert.match(la.stderr, /^error: .*linear-attention is for --mamba 2/);
  const bl = await convert(tiny, again, ["--attention-share", "0", "--blocks", "heads"]);
  assert.equal(bl.code, 2);
  assert.match(bl.stderr, /--mamba 1 only/);
  // Stepwise: a Mamba-1 student converts further with --mamba 1 (its Mamba layers kept), not with Mamba-2.
  const step = await convert(out, again, ["--attention-share", "0", "--mamba", "1"]);
  assert.equal(step.code, 0, step.stderr);
  using sf = await SafetensorsFile.open(`${again}/model.safetensors`);
  assert.deepEqual(await sf.readF32("model.layers.0.mamba.C_proj.weight"), host["C_proj.weight"]);
  assert.deepEqual(
    await sf.readF32("model.layers.1.mamba.C_proj.weight"),
    await st.readF32("model.layers.1.self_attn.q_proj.weight"),
  );
  const mixed = await convert(out, again, ["--attention-share", "0"]);
  assert.equal(mixed.code, 2);
  assert.match(mixed.stderr, /layer 0 of .* is a Mamba-1 layer: convert further layers with --mamba 1/);
  for (const dir of [out, again]) await Deno.remove(dir, { recursive: true });
});
