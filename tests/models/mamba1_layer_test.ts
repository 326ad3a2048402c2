// Checks kernels/mamba1_glue.wgsl (gather, gather_backward, neg_exp) and the Mamba-1 mixer built on
// it, the conv1d and the selective scan: GPU forward vs the float64 reference, taped gradients vs
// finite differences.
import { initGpu } from "../../lib/gpu/device.ts";
import { Rng } from "../../lib/random.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { convertAttentionToMamba1, type Mamba1Dims } from "../../lib/distill/convert_mamba1.ts";
import { mamba1Forward, type Mamba1Weights } from "../../lib/models/mamba1_layer.ts";
import { mamba1ForwardRef } from "../../lib/models/mamba1_layer_ref.ts";
import { gatherChannels, gatherChannelsBackward, gatherChannelsRef } from "../../lib/ssm/mamba1_glue.ts";
import { assertAllclose, randomArray } from "../_assert.ts";
import { checkOp } from "../_gradcheck.ts";

await initGpu();

/** Host tensors of a mixer converted from random attention weights (so every parameter is generic). */
function hostMixer(d: Mamba1Dims, seed: number): Record<string, Float32Array> {
  const { dModel, dInner, dXb } = d;
  const att = {
    q: randomArray(dInner * dModel, seed, 0.5),
    k: randomArray(dXb * dModel, seed + 1, 0.5),
    v: randomArray(dXb * dModel, seed + 2, 0.5),
    o: randomArray(dModel * dInner, seed + 3, 0.5),
  };
  const t = convertAttentionToMamba1(att, d, new Rng(seed), { headDim: d.dXb / 2, blocks: "heads" });
  const out = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.data as Float32Array]));
  // A bigger spread of A and D than the init's, so the test sees every term.
  out["D"] = randomArray(dInner, seed + 4);
  return out;
}

function upload(h: Record<string, Float32Array>, d: Mamba1Dims): Mamba1Weights {
  const W = (n: string, rows: number, cols: number) => ({
    parts: [Tensor.from(h[n], [rows, cols])],
    shape: [rows, cols] as [number, number],
  });
  const V = (n: string, shape: number[]) => Tensor.from(h[n], shape);
  const { dModel: M, dInner: D, dXb: X, dState: N, dtRank: R } = d;
  return {
    inProjX: W("in_proj_x.weight", X, M),
    inProjZ: W("in_proj_z.weight", D, M),
    convWeight: V("conv1d.weight", [D, 1, 4]),
    convBias: V("conv1d.bias", [D]),
    bProj: W("B_proj.weight", X, M),
    cProj: W("C_proj.weight", D, M),
    dtDown: W("dt_proj_down.weight", R, M),
    dtProj: W("dt_proj.weight", D, R),
    dtBias: V("dt_proj.bias", [D]),
    aLog: V("A_log", [D, N]),
    D: V("D", [D]),
    outProj: W("out_proj.weight", M, D),
  };
}

Deno.test("mamba1 gather: transposes and block repeats match the loop reference, backward sums the copies", async () => {
  const [B, L, C] = [2, 5, 6];
  const x = randomArray(B * L * C, 1);
  using t = Tensor.from(x, [B, L, C]);
  for (const spec of [{}, { block: 3, repeat: 2, to: "last" as const }, { block: 2, repeat: 3 }]) {
    using y = gatherChannels(t, spec);
    assertAllclose(await y.toArray(), gatherChannelsRef(x, { B, L, C }, spec), {
      atol: 0,
      name: JSON.stringify(spec),
    });
  }
  // Channels-first back to channels-last is the inverse transpose.
  using first = gatherChannels(t, {});
  using back = gatherChannels(first, { from: "first", to: "last" });
  assertAllclose(await back.toArray(), x, { atol: 0, name: "round trip" });
  // backward of a (w 3, r 2) repeat: each source element receives the sum of its two copies.
  using g = Tensor.from(new Float32Array(B * L * C * 2).fill(1), [B, C * 2, L]);
  using dx = gatherChannelsBackward(g, { block: 3, repeat: 2 });
  assertAllclose(await dx.toArray(), new Float32Array(B * L * C).fill(2), { atol: 0, name: "backward" });
});

Deno.test("mamba1 mixer: GPU forward matches the float64 reference (GQA repeat 2, blocks of 4, two sequences)", async () => {
  const d: Mamba1Dims = { dModel: 16, dInner: 32, dXb: 16, dState: 4, dtRank: 2, convWidth: 4 };
  const h = hostMixer(d, 11);
  const [B, L] = [2, 9];
  const u = randomArray(B * L * d.dModel, 5);
  const w = upload(h, d);
  using ut = Tensor.from(u, [B, L, d.dModel]);
  using y = mamba1Forward(ut, w, d);
  assertAllclose(await y.toArray(), mamba1ForwardRef(u, { B, L }, h, d), {
    rtol: 1e-4,
    atol: 1e-5,
    name: "out",
  });
});

Deno.test("mamba1 mixer: taped gradients of u and of every parameter match finite differences", async () => {
  const d: Mamba1Dims = { dModel: 8, dInner: 8, dXb: 4, dState: 2, dtRank: 1, convWidth: 4 };
  const h = hostMixer(d, 21);
  const L = 5;
  const { dModel: M, dInner: D, dXb: X, dState: N, dtRank: R } = d;
  const params: [string, number[]][] = [
    ["in_proj_x.weight", [X, M]],
    ["in_proj_z.weight", [D, M]],
    ["conv1d.weight", [D, 1, 4]],
    ["conv1d.bias", [D]],
    ["B_proj.weight", [X, M]],
    ["C_proj.weight", [D, M]],
    ["dt_proj_down.weight", [R, M]],
    ["dt_proj.weight", [D, R]],
    ["dt_proj.bias", [D]],
    ["A_log", [D, N]],
    ["D", [D]],
    ["out_proj.weight", [M, D]],
  ];
  const values = [Float64Array.from(randomArray(L * M, 3)), ...params.map(([n]) => Float64Array.from(h[n]))];
  const asWeight = (t: Tensor) => ({ parts: [t], shape: [t.shape[0], t.shape[1]] as [number, number] });
  await checkOp(
    "mamba1",
    [[1, L, M], ...params.map(([, s]) => s)],
    values.map((_, i) => i),
    ([u, x, z, cw, cb, b, c, dd, dp, db, aLog, skip, o]) =>
      mamba1Forward(u, {
        inProjX: asWeight(x),
        inProjZ: asWeight(z),
        convWeight: cw,
        convBias: cb,
        bProj: asWeight(b),
        cProj: asWeight(c),
        dtDown: asWeight(dd),
        dtProj: asWeight(dp),
        dtBias: db,
        aLog,
        D: skip,
        outProj: asWeight(o),
      }, d),
    ([u, ...ps]) =>
      mamba1ForwardRef(u, { B: 1, L }, Object.fromEntries(params.map(([n], i) => [n, ps[i]])), d),
    { values, atol: 2e-3 },
  );
});
