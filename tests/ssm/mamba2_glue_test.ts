/**
 * The Mamba-2 glue kernels (mamba2_glue.wgsl, mamba2_glue_bwd.wgsl) against their float64 references,
 * and the references' backward against finite differences of their forward.
 */
import {
  addSkip,
  addSkipBackward,
  scatterColumns,
  sliceColumns,
  ssdInputs,
  ssdInputsBackward,
} from "../../lib/ssm/mamba2_glue.ts";
import {
  addSkipBackwardRef,
  addSkipRef,
  type GlueRefDims,
  sliceColumnsRef,
  ssdInputsBackwardRef,
  ssdInputsRef,
} from "../../lib/ssm/mamba2_glue_ref.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";
import { finiteDiff } from "../_gradcheck.ts";

await initGpu();

// 3 heads over 2 kv heads: head 0 and 1 read kv head 0, head 2 kv head 1 (⌊h·2/3⌋), an uneven split.
const dims: GlueRefDims = { H: 3, Hkv: 2, P: 4, N: 4 };
const R = 10;
const W = 2 * dims.Hkv * dims.P + dims.H * dims.N;
const f64 = (a: ArrayLike<number>) => Float64Array.from(a);
const tol = { atol: 2e-5, rtol: 1e-4 };

function inputs() {
  return {
    xbc: randomArray(R * W, 1),
    // dt_raw + dt_bias spans the softplus threshold (some rows above 20).
    dtRaw: randomArray(R * dims.H, 2, 3).map((v, i) => (i % 7 === 0 ? v + 22 : v)),
    dtBias: randomArray(dims.H, 3, 0.5),
    aLog: randomArray(dims.H, 4),
    D: randomArray(dims.H, 5),
  };
}

Deno.test("mamba2_glue.wgsl slice_cols and mamba2_glue_bwd.wgsl scatter_cols: columns out and back", async () => {
  const cols = 11;
  const src = randomArray(R * cols, 9);
  using s = Tensor.from(src, [2, 5, cols]);
  using a = sliceColumns(s, 3, 5);
  using into = Tensor.from(new Float32Array(R * cols).fill(NaN), [R, cols]);
  scatterColumns(a, into, 3, 5);
  scatterColumns(null, into, 0, 3);
  scatterColumns(null, into, 8, 3);
  const [got, back] = await readTensors([a, into]);
  assertAllclose(got, sliceColumnsRef(src, cols, 3, 5), { atol: 0, name: "slice" });
  const want = new Float64Array(R * cols);
  for (let r = 0; r < R; r++) for (let j = 3; j < 8; j++) want[r * cols + j] = src[r * cols + j];
  assertAllclose(back, want, { atol: 0, name: "scatter (zeros elsewhere)" });
});

Deno.test("mamba2_glue.wgsl ssd_inputs and mamba2_glue_bwd.wgsl ssd_inputs_dxbc/ddt: forward and gradients match the float64 reference", async () => {
  const v = inputs();
  const { H, P, N } = dims;
  using xbc = Tensor.from(v.xbc, [2, 5, W]);
  using dtRaw = Tensor.from(v.dtRaw, [2, 5, H]);
  using dtBias = Tensor.from(v.dtBias, [H]);
  using aLog = Tensor.from(v.aLog, [H]);
  const out = ssdInputs(xbc, { dtRaw, dtBias, aLog }, dims);
  const want = ssdInputsRef(v.xbc, v.dtRaw, v.dtBias, v.aLog, dims);
  const [X, A, B, C] = await readTensors([out.X, out.A, out.B, out.C]);
  assertAllclose(X, want.X, { ...tol, name: "X" });
  assertAllclose(A, want.A, { ...tol, name: "A" });
  assertAllclose(B, want.B, { atol: 0, name: "B" });
  assertAllclose(C, want.C, { atol: 0, name: "C" });
  for (const t of Object.values(out)) t.dispose();

  // dt_raw read from columns 2… of wider rows gives the same X and A.
  const wide = new Float32Array(R * (H + 3));
  for (let r = 0; r < R; r++) for (let h = 0; h < H; h++) wide[r * (H + 3) + 2 + h] = v.dtRaw[r * H + h];
  using wideT = Tensor.from(wide, [R, H + 3]);
  const out2 = ssdInputs(xbc, { dtRaw: wideT, dtColumn: 2, dtBias, aLog }, dims);
  const [X2, A2] = await readTensors([out2.X, out2.A]);
  assertAllclose(X2, want.X, { ...tol, name: "X (dt columns of wider rows)" });
  assertAllclose(A2, want.A, { ...tol, name: "A (dt columns of wider rows)" });
  for (const t of Object.values(out2)) t.dispose();

  const g = {
    X: randomArray(R * H * P, 11),
    A: randomArray(R * H, 12),
    B: randomArray(R * H * N, 13),
    C: randomArray(R * H * N, 14),
  };
  using gX = Tensor.from(g.X, [R, H, P]);
  using gA = Tensor.from(g.A, [R, H]);
  using gB = Tensor.from(g.B, [R, H, N]);
  using gC = Tensor.from(g.C, [R, H, N]);
  const d = ssdInputsBackward(xbc, { dtRaw, dtBias, aLog }, { X: gX, A: gA, B: gB, C: gC }, dims);
  const dr = ssdInputsBackwardRef(v.xbc, v.dtRaw, v.dtBias, v.aLog, g, dims);
  const [dx, dt, db, da] = await readTensors([d.xbc, d.dtRaw, d.dtBias, d.aLog]);
  assertAllclose(dx, dr.xbc, { ...tol, name: "d xBC" });
  assertAllclose(dt, dr.dtRaw, { ...tol, name: "d dt_raw" });
  assertAllclose(db, dr.dtBias, { atol: 1e-4, rtol: 1e-4, name: "d dt_bias" });
  assertAllclose(da, dr.aLog, { atol: 1e-4, rtol: 1e-4, name: "d A_log" });
  for (const t of Object.values(d)) t.dispose();

  // A missing output gradient counts as zero.
  const d0 = ssdInputsBackward(xbc, { dtRaw, dtBias, aLog }, { X: gX }, dims);
  const zero = (n: number) => new Float64Array(n);
  const dr0 = ssdInputsBackwardRef(
    v.xbc,
    v.dtRaw,
    v.dtBias,
    v.aLog,
    { X: g.X, A: zero(R * H), B: zero(R * H * N), C: zero(R * H * N) },
    dims,
  );
  const [dx0, da0] = await readTensors([d0.xbc, d0.aLog]);
  assertAllclose(dx0, dr0.xbc, { ...tol, name: "d xBC (dX only)" });
  assertAllclose(da0, new Float64Array(H), { atol: 0, name: "d A_log (no dA)" });
  for (const t of Object.values(d0)) t.dispose();
});

Deno.test("mamba2_glue_ref: the ssd-inputs and skip backward references equal finite differences of their forward", () => {
  const v = inputs();
  const { H, P, N } = dims;
  // Keep dt_raw + dt_bias away from the softplus threshold, where finite differences straddle a kink.
  const dtRaw = f64(randomArray(R * H, 21, 3));
  const g = {
    X: randomArray(R * H * P, 11),
    A: randomArray(R * H, 12),
    B: randomArray(R * H * N, 13),
    C: randomArray(R * H * N, 14),
  };
  const flat = (o: { X: Float64Array; A: Float64Array; B: Float64Array; C: Float64Array }) =>
    Float64Array.from([...o.X, ...o.A, ...o.B, ...o.C]);
  const r = Float64Array.from([...g.X, ...g.A, ...g.B, ...g.C]);
  const f = (xs: Float64Array[]) => flat(ssdInputsRef(xs[0], xs[1], xs[2], xs[3], dims));
  const xs = [f64(v.xbc), dtRaw, f64(v.dtBias), f64(v.aLog)];
  const an = ssdInputsBackwardRef(xs[0], xs[1], xs[2], xs[3], g, dims);
  [an.xbc, an.dtRaw, an.dtBias, an.aLog].forEach((want, k) =>
    assertAllclose(want, finiteDiff(f, xs, r, k), {
      atol: 1e-6,
      rtol: 1e-6,
      name: `ssd inputs d/d input ${k}`,
    })
  );
  const Y = f64(randomArray(R * H * P, 31));
  const dY = randomArray(R * H * P, 32);
  const fs = (ys: Float64Array[]) => addSkipRef(Y, ys[0], ys[1], dims);
  const ys = [f64(v.xbc), f64(v.D)];
  const sk = addSkipBackwardRef(ys[0], ys[1], dY, dims);
  assertAllclose(sk.xbc, finiteDiff(fs, ys, dY, 0), { atol: 1e-6, rtol: 1e-6, name: "skip d xBC" });
  assertAllclose(sk.D, finiteDiff(fs, ys, dY, 1), { atol: 1e-6, rtol: 1e-6, name: "skip d D" });
});

Deno.test("mamba2_glue.wgsl add_skip(_out) and mamba2_glue_bwd.wgsl skip_dxbc/skip_dd match the float64 reference", async () => {
  const v = inputs();
  const { H, P } = dims;
  const Yv = randomArray(R * H * P, 41);
  using xbc = Tensor.from(v.xbc, [R, W]);
  using D = Tensor.from(v.D, [H]);
  using Y = Tensor.from(Yv, [R, H, P]);
  using y = addSkip(Y, xbc, D, dims);
  const want = addSkipRef(Yv, v.xbc, v.D, dims);
  const [got, kept] = await readTensors([y, Y]);
  assertAllclose(got, want, { ...tol, name: "y (new tensor)" });
  assertAllclose(kept, Yv, { atol: 0, name: "Y unchanged" });
  addSkip(Y, xbc, D, dims, true);
  assertAllclose((await Y.toArray()) as Float32Array, want, { ...tol, name: "y (in place)" });
  const gv = randomArray(R * H * P, 42);
  using dY = Tensor.from(gv, [R, H, P]);
  const d = addSkipBackward(xbc, D, dY, dims);
  const dr = addSkipBackwardRef(v.xbc, v.D, gv, dims);
  const [dx, dD] = await readTensors([d.xbc, d.D]);
  assertAllclose(dx, dr.xbc, { ...tol, name: "d xBC" });
  assertAllclose(dD, dr.D, { atol: 1e-4, rtol: 1e-4, name: "d D" });
  d.xbc.dispose();
  d.D.dispose();
});
