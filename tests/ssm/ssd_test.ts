import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { ssdBackward, ssdChunked, type SsdInputs, ssdStateUpdate } from "../../lib/ssm/ssd.ts";
import {
  ssdBackwardRef,
  ssdChunkedRef,
  type SsdDims,
  ssdMixingMatrixRef,
  ssdRecurrentRef,
  type SsdRefInputs,
  ssdStateUpdateRef,
} from "../../lib/ssm/ssd_ref.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";
import { finiteDiff } from "../_gradcheck.ts";

await initGpu();

const FIXTURE = new URL("../fixtures/kernels/ssd.safetensors", import.meta.url).pathname;
/** f32 kernels against float64 references: 1e-4 relative, atol for values near 0. */
const TOL = { rtol: 1e-4, atol: 2e-5 };

/** Leaves NaN-filled buffers of these sizes in the pool, so that an output a kernel forgets shows up. */
function poisonPool(sizes: number[]): void {
  const held = sizes.flatMap((n) => [0, 1, 2, 3].map(() => Tensor.from(new Float32Array(n).fill(NaN), [n])));
  for (const t of held) t.dispose();
}

/** Random inputs (A < 0, as A·dt is), with an initial state when asked. */
function randomCase(dims: SsdDims, seed: number, init = false): SsdRefInputs {
  const { batch, L, H, P, N } = dims;
  return {
    dims,
    X: randomArray(batch * L * H * P, seed + 1),
    A: randomArray(batch * L * H, seed + 2).map((v) => -0.05 - 0.5 * Math.abs(v)),
    B: randomArray(batch * L * H * N, seed + 3),
    C: randomArray(batch * L * H * N, seed + 4),
    initialState: init ? randomArray(batch * H * P * N, seed + 5) : undefined,
  };
}

function upload(inp: SsdRefInputs): SsdInputs & Disposable {
  const { batch, L, H, P, N } = inp.dims;
  const t = (a: ArrayLike<number>, shape: number[]) => Tensor.from(Float32Array.from(a), shape);
  const out = {
    X: t(inp.X, [batch, L, H, P]),
    A: t(inp.A, [batch, L, H]),
    B: t(inp.B, [batch, L, H, N]),
    C: t(inp.C, [batch, L, H, N]),
    initialState: inp.initialState ? t(inp.initialState, [batch, H, P, N]) : undefined,
  };
  return {
    ...out,
    [Symbol.dispose]() {
      for (const v of Object.values(out)) v?.dispose();
    },
  };
}

async function loadFixture() {
  using f = await SafetensorsFile.open(FIXTURE);
  const r: Record<string, Float32Array> = {};
  for (const n of f.names()) r[n] = await f.readF32(n);
  const [batch, L, H, P] = f.info("X").shape;
  const dims: SsdDims = { batch, L, H, P, N: f.info("B").shape[3] };
  return { r, dims, Q: Number(f.metadata.block_len), inp: { dims, X: r.X, A: r.A, B: r.B, C: r.C } };
}

Deno.test("ssd_ref: recurrence == chunked (several Q, ragged, L < Q) == mixing matrix · X", () => {
  const dims = { batch: 2, L: 50, H: 2, P: 3, N: 4 };
  const inp = randomCase(dims, 10, true);
  const rec = ssdRecurrentRef(inp);
  for (const Q of [16, 7, 64, 1]) {
    const ch = ssdChunkedRef(inp, Q);
    assertAllclose(ch.Y, rec.Y, { rtol: 1e-10, atol: 1e-12, name: `Y Q=${Q}` });
    assertAllclose(ch.finalState, rec.finalState, { rtol: 1e-10, atol: 1e-12, name: `state Q=${Q}` });
  }
  // Y = M X per (b, h, p), without the initial state.
  const noInit = { ...inp, initialState: undefined };
  const { Y } = ssdRecurrentRef(noInit);
  const M = ssdMixingMatrixRef(inp.A, inp.B, inp.C, dims);
  const { batch, L, H, P } = dims;
  const MX = new Float64Array(Y.length);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < L; t++) {
        for (let s = 0; s <= t; s++) {
          const m = M[((b * H + h) * L + t) * L + s];
          for (let p = 0; p < P; p++) {
            MX[((b * L + t) * H + h) * P + p] += m * noInit.X[((b * L + s) * H + h) * P + p];
          }
        }
        for (let s = t + 1; s < L; s++) assert.equal(M[((b * H + h) * L + t) * L + s], 0);
      }
    }
  }
  assertAllclose(MX, Y, { rtol: 1e-10, atol: 1e-12, name: "M·X" });
});

Deno.test("ssd_ref: equals the fixture (ssd_minimal_discrete), forward and gradients", async () => {
  const { r, Q, inp } = await loadFixture();
  const rec = ssdRecurrentRef(inp);
  const ch = ssdChunkedRef(inp, Q);
  assertAllclose(rec.Y, r.Y, { ...TOL, name: "recurrent Y" });
  assertAllclose(ch.Y, r.Y, { ...TOL, name: "chunked Y" });
  assertAllclose(ch.finalState, r.final_state, { ...TOL, name: "final state" });
  for (const q of [Q, 64, 5]) {
    const g = ssdBackwardRef(inp, r.dY, { blockLen: q });
    for (const k of ["X", "A", "B", "C"] as const) {
      assertAllclose(g[k], r[`grad_${k}`], { ...TOL, name: `grad_${k} Q=${q}` });
    }
  }
});

Deno.test("ssd_ref: backward == finite differences (initial state, dFinalState, ragged chunks)", () => {
  const dims = { batch: 1, L: 7, H: 2, P: 3, N: 2 };
  const inp = randomCase(dims, 20, true);
  const xs = [inp.X, inp.A, inp.B, inp.C, inp.initialState!].map((a) => Float64Array.from(a));
  const f = (v: Float64Array[]) => {
    const o = ssdChunkedRef({ dims, X: v[0], A: v[1], B: v[2], C: v[3], initialState: v[4] }, 3);
    return [...o.Y, ...o.finalState];
  };
  const dY = randomArray(7 * 2 * 3, 21);
  const dFinal = randomArray(2 * 3 * 2, 22);
  const r = [...dY, ...dFinal];
  const g = ssdBackwardRef({ dims, X: xs[0], A: xs[1], B: xs[2], C: xs[3], initialState: xs[4] }, dY, {
    blockLen: 3,
    dFinalState: dFinal,
  });
  const got = [g.X, g.A, g.B, g.C, g.initialState!];
  ["X", "A", "B", "C", "initialState"].forEach((name, k) => {
    assertAllclose(got[k], finiteDiff(f, xs, r, k), { rtol: 1e-6, atol: 1e-8, name: `d${name}` });
  });
});

Deno.test("ssd.wgsl + ssd_state.wgsl: forward and backward equal the fixture for Q = 16, 32, 64", async () => {
  const { r, dims, inp } = await loadFixture();
  using t = upload(inp);
  using dY = Tensor.from(r.dY, [dims.batch, dims.L, dims.H, dims.P]);
  for (const Q of [16, 32, 64]) {
    poisonPool([r.Y.length, r.final_state.length, r.A.length, r.B.length]);
    const { Y, finalState } = ssdChunked(t, { blockLen: Q });
    const g = ssdBackward(t, dY, { blockLen: Q });
    const [y, fs, gX, gA, gB, gC] = await readTensors([Y, finalState, g.X, g.A, g.B, g.C]);
    assertAllclose(y, r.Y, { ...TOL, name: `Y Q=${Q}` });
    assertAllclose(fs, r.final_state, { ...TOL, name: `final state Q=${Q}` });
    assertAllclose(gX, r.grad_X, { ...TOL, name: `grad_X Q=${Q}` });
    assertAllclose(gA, r.grad_A, { ...TOL, name: `grad_A Q=${Q}` });
    assertAllclose(gB, r.grad_B, { ...TOL, name: `grad_B Q=${Q}` });
    assertAllclose(gC, r.grad_C, { ...TOL, name: `grad_C Q=${Q}` });
    for (const x of [Y, finalState, g.X, g.A, g.B, g.C]) x.dispose();
  }
});

/** GPU forward and backward (with an initial state and dFinalState) against the float64 references. */
async function checkCase(dims: SsdDims, Q: number, seed: number) {
  const inp = randomCase(dims, seed, true);
  const { batch, L, H, P, N } = dims;
  const dYh = randomArray(batch * L * H * P, seed + 6);
  const dFh = randomArray(batch * H * P * N, seed + 7);
  const want = ssdRecurrentRef(inp);
  const wantG = ssdBackwardRef(inp, dYh, { blockLen: Q, dFinalState: dFh });
  using t = upload(inp);
  using dY = Tensor.from(dYh, [batch, L, H, P]);
  using dF = Tensor.from(dFh, [batch, H, P, N]);
  poisonPool([dYh.length, dFh.length, batch * L * H, batch * L * H * N]);
  const { Y, finalState } = ssdChunked(t, { blockLen: Q });
  const g = ssdBackward(t, dY, { blockLen: Q, dFinalState: dF });
  const outs = [Y, finalState, g.X, g.A, g.B, g.C, g.initialState!];
  const [y, fs, gX, gA, gB, gC, gI] = await readTensors(outs);
  const tag = `L=${L} Q=${Q} P=${P} N=${N}`;
  assertAllclose(y, want.Y, { ...TOL, name: `Y ${tag}` });
  assertAllclose(fs, want.finalState, { ...TOL, name: `final state ${tag}` });
  assertAllclose(gX, wantG.X, { ...TOL, name: `dX ${tag}` });
  assertAllclose(gA, wantG.A, { ...TOL, name: `dA ${tag}` });
  assertAllclose(gB, wantG.B, { ...TOL, name: `dB ${tag}` });
  assertAllclose(gC, wantG.C, { ...TOL, name: `dC ${tag}` });
  assertAllclose(gI, wantG.initialState!, { ...TOL, name: `d initial state ${tag}` });
  for (const x of outs) x.dispose();
}

Deno.test("ssd.wgsl: ragged last chunk (L = 50, Q = 16) and L < Q, with initial state", async () => {
  await checkCase({ batch: 2, L: 50, H: 3, P: 8, N: 4 }, 16, 30);
  await checkCase({ batch: 1, L: 10, H: 2, P: 5, N: 3 }, 64, 40);
  await checkCase({ batch: 1, L: 10, H: 2, P: 5, N: 3 }, 7, 50);
});

Deno.test("ssd.wgsl: huge log-decays next to tiny ones (the decays are sums that never cancel)", async () => {
  // With cumsum differences, exp(cum_l − cum_s) after a step of −1e4 has an f32 error of ~1e-3 in the
  // exponent; the kernels sum the steps between s and l directly.
  const dims = { batch: 1, L: 40, H: 2, P: 4, N: 3 };
  const inp = randomCase(dims, 90, true);
  inp.A = Float32Array.from(inp.A, (v, i) => (i % 23 === 5 ? -1e4 : v * 0.01));
  const want = ssdRecurrentRef(inp);
  const dYh = randomArray(40 * 2 * 4, 91);
  const wantG = ssdBackwardRef(inp, dYh, { blockLen: 32 });
  using t = upload(inp);
  using dY = Tensor.from(dYh, [1, 40, 2, 4]);
  const { Y, finalState } = ssdChunked(t, { blockLen: 32 });
  const g = ssdBackward(t, dY, { blockLen: 32 });
  const [y, fs, gA, gX] = await readTensors([Y, finalState, g.A, g.X]);
  assertAllclose(y, want.Y, { ...TOL, name: "Y" });
  assertAllclose(fs, want.finalState, { ...TOL, name: "final state" });
  assertAllclose(gA, wantG.A, { ...TOL, name: "dA" });
  assertAllclose(gX, wantG.X, { ...TOL, name: "dX" });
  for (const x of [Y, finalState, g.X, g.A, g.B, g.C, g.initialState!]) x.dispose();
});

Deno.test("ssd.wgsl: P and N wider than one 64-tile", async () => {
  await checkCase({ batch: 1, L: 20, H: 1, P: 70, N: 66 }, 16, 60);
});

Deno.test("ssd_state.wgsl step: prefill (ssdChunked) then ssdStateUpdate steps == the full sequence", async () => {
  const dims = { batch: 2, L: 24, H: 3, P: 8, N: 4 };
  const { batch, L, H, P, N } = dims;
  const inp = randomCase(dims, 70, true);
  const full = ssdRecurrentRef(inp);
  const L0 = 17;
  const rows = (a: ArrayLike<number>, w: number, t0: number, t1: number) => {
    const out: number[] = [];
    for (let b = 0; b < batch; b++) {
      for (let t = t0; t < t1; t++) for (let i = 0; i < H * w; i++) out.push(a[(b * L + t) * H * w + i]);
    }
    return Float32Array.from(out);
  };
  const part = (t0: number, t1: number): SsdRefInputs => ({
    dims: { ...dims, L: t1 - t0 },
    X: rows(inp.X, P, t0, t1),
    A: rows(inp.A, 1, t0, t1),
    B: rows(inp.B, N, t0, t1),
    C: rows(inp.C, N, t0, t1),
    initialState: inp.initialState,
  });
  // CPU: the chunked prefix then reference steps.
  const pre = ssdChunkedRef(part(0, L0), 8);
  const stateRef = Float64Array.from(pre.finalState);
  const yRef: Float64Array[] = [];
  for (let t = L0; t < L; t++) {
    const s = part(t, t + 1);
    yRef.push(ssdStateUpdateRef(stateRef, s.X, s.A, s.B, s.C, dims));
  }
  assertAllclose(stateRef, full.finalState, { rtol: 1e-10, atol: 1e-12, name: "ref state" });
  // GPU: ssdChunked on the prefix, then one ssdStateUpdate per token.
  using t = upload(part(0, L0));
  const { Y, finalState } = ssdChunked(t, { blockLen: 8 });
  const ys: Tensor[] = [];
  for (let k = L0; k < L; k++) {
    const s = part(k, k + 1);
    using x = Tensor.from(s.X, [batch, H, P]);
    using a = Tensor.from(s.A, [batch, H]);
    using b = Tensor.from(s.B, [batch, H, N]);
    using c = Tensor.from(s.C, [batch, H, N]);
    ys.push(ssdStateUpdate(finalState, x, a, b, c));
  }
  const [y0, st, ...yk] = await readTensors([Y, finalState, ...ys]);
  assertAllclose(y0, rows(full.Y, P, 0, L0), { ...TOL, name: "prefill Y" });
  yk.forEach((y, i) => {
    assertAllclose(y, rows(full.Y, P, L0 + i, L0 + i + 1), { ...TOL, name: `step ${L0 + i}` });
    assertAllclose(y, yRef[i], { ...TOL, name: `step ref ${L0 + i}` });
  });
  assertAllclose(st, full.finalState, { ...TOL, name: "final state after steps" });
  for (const x of [Y, finalState, ...ys]) x.dispose();
});

Deno.test("ssd: shape errors name both shapes", () => {
  using t = upload(randomCase({ batch: 1, L: 5, H: 2, P: 3, N: 4 }, 80));
  using bad = Tensor.zeros([1, 2, 5]);
  assert.throws(() => ssdChunked({ ...t, A: bad }), (e: Error) => {
    assert.ok(e instanceof ShapeError);
    assert.match(e.message, /expected A \(B, L, H\) \(1, 5, 2\), got \(1, 2, 5\)/);
    return true;
  });
  using dY = Tensor.zeros([1, 5, 2, 4]);
  assert.throws(() => ssdBackward(t, dY), ShapeError);
  assert.throws(() => ssdChunked(t, { blockLen: 0 }), ShapeError);
  using st = Tensor.zeros([1, 2, 3, 4]);
  using x = Tensor.zeros([1, 2, 3]);
  using a = Tensor.zeros([1, 2]);
  using bc = Tensor.zeros([1, 2, 3]);
  assert.throws(
    () => ssdStateUpdate(st, x, a, bc, bc),
    /expected B \(B, H, N\) \(1, 2, 4\), got \(1, 2, 3\)/,
  );
});
