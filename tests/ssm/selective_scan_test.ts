import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import {
  SCAN_CHUNK,
  selectiveScan,
  selectiveScanBackward,
  type SelectiveScanInputs,
  selectiveStateUpdate,
  walkForwardFits,
} from "../../lib/ssm/selective_scan.ts";
import {
  type ScanDims,
  type ScanRefInputs,
  selectiveScanBackwardRef,
  selectiveScanRef,
  selectiveStateUpdateRef,
} from "../../lib/ssm/selective_scan_ref.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";
import { finiteDiff } from "../_gradcheck.ts";

await initGpu();

const FIXTURE = new URL("../fixtures/kernels/selective-scan.safetensors", import.meta.url).pathname;
const GRADS = ["u", "delta", "A", "B", "C", "D", "z", "deltaBias", "initialState"] as const;
/** f32 kernels against float64 references: 1e-4 relative, atol for values near 0. */
const TOL = { rtol: 1e-4, atol: 2e-5 };

/** Leaves NaN-filled buffers of these sizes in the pool, so that an output a kernel forgets shows up. */
function poisonPool(sizes: number[]): void {
  const held = sizes.flatMap((n) => [0, 1, 2, 3].map(() => Tensor.from(new Float32Array(n).fill(NaN), [n])));
  for (const t of held) t.dispose();
}

/** Random inputs of a scan (A < 0), optional parts included when asked. */
function randomCase(dims: ScanDims, seed: number, parts: { D?: boolean; z?: boolean; bias?: boolean } = {}) {
  const { batch, D, L, N, G } = dims;
  const inp: ScanRefInputs = {
    dims,
    u: randomArray(batch * D * L, seed + 1),
    delta: randomArray(batch * D * L, seed + 2),
    A: randomArray(D * N, seed + 3).map((v) => -0.2 - 1.5 * Math.abs(v)),
    B: randomArray(batch * G * N * L, seed + 4),
    C: randomArray(batch * G * N * L, seed + 5),
    D: parts.D ? randomArray(D, seed + 6) : undefined,
    z: parts.z ? randomArray(batch * D * L, seed + 7, 2) : undefined,
    deltaBias: parts.bias ? randomArray(D, seed + 8) : undefined,
  };
  return inp;
}

/** GPU tensors of a reference case (B, C grouped (B, G, N, L) unless `ungrouped`). */
function upload(inp: ScanRefInputs, ungrouped = false): SelectiveScanInputs & Disposable {
  const { batch, D, L, N, G } = inp.dims;
  const t = (a: ArrayLike<number> | undefined, shape: number[]) =>
    a ? Tensor.from(Float32Array.from(a), shape) : undefined;
  const bc = ungrouped ? [batch, N, L] : [batch, G, N, L];
  const out = {
    u: t(inp.u, [batch, D, L])!,
    delta: t(inp.delta, [batch, D, L])!,
    A: t(inp.A, [D, N])!,
    B: t(inp.B, bc)!,
    C: t(inp.C, bc)!,
    D: t(inp.D, [D]),
    z: t(inp.z, [batch, D, L]),
    deltaBias: t(inp.deltaBias, [D]),
  };
  return { ...out, [Symbol.dispose]: () => Object.values(out).forEach((x) => x?.dispose()) };
}

interface Expected {
  y: ArrayLike<number>;
  lastState: ArrayLike<number>;
  grads: Partial<Record<(typeof GRADS)[number], ArrayLike<number>>>;
}

/** Runs the GPU forward and backward and compares every output with `want`. */
async function checkGpu(
  name: string,
  inp: ScanRefInputs,
  dy: ArrayLike<number>,
  want: Expected,
  opts: {
    softplus: boolean;
    h0?: ArrayLike<number>;
    dLast?: ArrayLike<number>;
    chunk?: number;
    ungrouped?: boolean;
  },
): Promise<void> {
  const { batch, D, L, N } = inp.dims;
  using x = upload(inp, opts.ungrouped);
  using dyT = Tensor.from(Float32Array.from(dy), [batch, D, L]);
  using h0 = opts.h0 ? Tensor.from(Float32Array.from(opts.h0), [batch, D, N]) : undefined;
  using dLast = opts.dLast ? Tensor.from(Float32Array.from(opts.dLast), [batch, D, N]) : undefined;
  const o = { deltaSoftplus: opts.softplus, initialState: h0, chunkLength: opts.chunk };
  poisonPool([batch * D * L, batch * D * N, inp.B.length, D * N, D]);
  // The three passes (a chunk length given) and the default (the walk where it fits).
  const { y, lastState } = selectiveScan(x, { ...o, chunkLength: opts.chunk ?? SCAN_CHUNK });
  const walk = selectiveScan(x, { ...o, chunkLength: undefined });
  const g = selectiveScanBackward(x, dyT, { ...o, dLastState: dLast });
  const names = GRADS.filter((k) => want.grads[k] !== undefined);
  for (const k of GRADS) assert.equal(g[k] !== undefined, want.grads[k] !== undefined, `${name}: grad ${k}`);
  const outs = [y, lastState, walk.y, walk.lastState];
  const got = await readTensors([...outs, ...names.map((k) => g[k]!)]);
  const fwd = walkForwardFits(N, D, inp.dims.G) ? "walk" : "default (three passes)";
  for (const [i, what] of ["three passes", fwd].entries()) {
    assertAllclose(got[2 * i], want.y, { ...TOL, name: `${name}: ${what} y` });
    assertAllclose(got[2 * i + 1], want.lastState, { ...TOL, name: `${name}: ${what} lastState` });
  }
  names.forEach((k, i) => assertAllclose(got[4 + i], want.grads[k]!, { ...TOL, name: `${name}: grad ${k}` }));
  for (const t of [...outs, ...Object.values(g)]) t?.dispose();
}

/** The reference's forward and backward of a case. */
function reference(
  inp: ScanRefInputs,
  dy: ArrayLike<number>,
  opts: { softplus: boolean; h0?: ArrayLike<number>; dLast?: ArrayLike<number> },
): Expected {
  const o = { deltaSoftplus: opts.softplus, initialState: opts.h0 };
  const { y, lastState } = selectiveScanRef(inp, o);
  const grads = selectiveScanBackwardRef(inp, dy, { ...o, dLastState: opts.dLast });
  return { y, lastState, grads: grads as Expected["grads"] };
}

Deno.test("selective_scan.wgsl + selective_scan_bwd.wgsl: GPU and CPU reference == the official fixture, forward and backward", async () => {
  using f = await SafetensorsFile.open(FIXTURE);
  const r: Record<string, Float32Array> = {};
  for (const n of f.names()) r[n] = await f.readF32(n);
  assert.equal(f.metadata.delta_softplus, "true");
  const [batch, D, L] = f.info("u").shape;
  const N = f.info("A").shape[1];
  const inp: ScanRefInputs = {
    dims: { batch, D, L, N, G: 1 },
    ...{ u: r.u, delta: r.delta, A: r.A, B: r.B, C: r.C, D: r.D, z: r.z, deltaBias: r.delta_bias },
  };
  const want: Expected = {
    y: r.y,
    lastState: r.last_state,
    grads: {
      ...{ u: r.grad_u, delta: r.grad_delta, A: r.grad_A, B: r.grad_B, C: r.grad_C },
      ...{ D: r.grad_D, z: r.grad_z, deltaBias: r.grad_delta_bias },
    },
  };
  const cpu = reference(inp, r.dy, { softplus: true });
  assertAllclose(cpu.y, want.y, { ...TOL, name: "reference y" });
  assertAllclose(cpu.lastState, want.lastState, { ...TOL, name: "reference lastState" });
  for (const k of GRADS) {
    if (want.grads[k]) assertAllclose(cpu.grads[k]!, want.grads[k]!, { ...TOL, name: `reference grad ${k}` });
  }
  await checkGpu("fixture", inp, r.dy, want, { softplus: true, ungrouped: true });
});

Deno.test("selective scan: CPU reference backward == central finite differences (grouped, h0, dLast)", () => {
  const dims: ScanDims = { batch: 1, D: 4, L: 6, N: 3, G: 2 };
  const inp = randomCase(dims, 40, { D: true, z: true, bias: true });
  const h0 = Float64Array.from(randomArray(dims.D * dims.N, 50));
  const dy = randomArray(dims.D * dims.L, 51);
  const dLast = randomArray(dims.D * dims.N, 52);
  // Every input is a float64 vector of xs; f returns (out, lastState), weighted by (dy, dLast).
  const keys = ["u", "delta", "A", "B", "C", "D", "z", "deltaBias"] as const;
  const xs = [...keys.map((k) => Float64Array.from(inp[k]!)), h0];
  const f = (v: Float64Array[]) => {
    const cur = { ...inp };
    keys.forEach((k, i) => cur[k] = v[i]);
    const { y, lastState } = selectiveScanRef(cur, { deltaSoftplus: true, initialState: v[keys.length] });
    return [...y, ...lastState];
  };
  const g = selectiveScanBackwardRef(inp, dy, { deltaSoftplus: true, initialState: h0, dLastState: dLast });
  const weights = [...dy, ...dLast];
  [...keys, "initialState" as const].forEach((k, i) => {
    assertAllclose(g[k]!, finiteDiff(f, xs, weights, i), { atol: 1e-7, rtol: 1e-6, name: `d/d ${k}` });
  });
});

Deno.test("selective scan: grouped B, C (G = 2, D = 8) with h0 and dLast, GPU == reference", async () => {
  const dims: ScanDims = { batch: 2, D: 8, L: 37, N: 4, G: 2 };
  const inp = randomCase(dims, 100, { D: true, z: true, bias: true });
  (inp.delta as Float32Array)[5] = 25; // above the softplus threshold
  const dy = randomArray(2 * 8 * 37, 110);
  const h0 = randomArray(2 * 8 * 4, 111);
  const dLast = randomArray(2 * 8 * 4, 112);
  const want = reference(inp, dy, { softplus: true, h0, dLast });
  await checkGpu("grouped Q=16", inp, dy, want, { softplus: true, h0, dLast, chunk: 16 });
});

Deno.test("selective scan: L not a multiple of Q, L below one chunk, chunk lengths agree", async () => {
  // L % 4 = 0 with Q % 4 = 0 takes the kernels' vec4 path (36: a last chunk of 4 steps; 64 with Q = 12:
  // sub-blocks start at multiples of 4), the others the element-wise one.
  const cases = [[37, [16, 64]], [5, [64, 3]], [70, [32, 64]], [36, [16, 8]], [64, [12, 6]]] as const;
  for (const [L, chunks] of cases) {
    const dims: ScanDims = { batch: 1, D: 16, L, N: 16, G: 1 };
    const inp = randomCase(dims, L, { D: true, z: true, bias: true });
    const dy = randomArray(16 * L, L + 20);
    const want = reference(inp, dy, { softplus: true });
    for (const chunk of chunks) {
      await checkGpu(`L=${L} Q=${chunk}`, inp, dy, want, { softplus: true, chunk, ungrouped: true });
    }
  }
});

Deno.test("selective scan: N above 16 (2, 4 state blocks), groups narrower than a block", async () => {
  for (
    const [i, dims] of [{ batch: 1, D: 8, L: 21, N: 20, G: 4 }, { batch: 2, D: 6, L: 13, N: 40, G: 3 }]
      .entries()
  ) {
    const inp = randomCase(dims, 200 + 10 * i, { D: true, z: true, bias: true });
    const dy = randomArray(dims.batch * dims.D * dims.L, 220 + i);
    const h0 = randomArray(dims.batch * dims.D * dims.N, 230 + i);
    const want = reference(inp, dy, { softplus: true, h0 });
    await checkGpu(`N=${dims.N} G=${dims.G}`, inp, dy, want, { softplus: true, h0, chunk: 8 });
  }
});

Deno.test("selective_scan_walk.wgsl (the default forward): N = 4 … 32, groups, ragged L, h0, a partial last block, == reference", async () => {
  // N = 4, 8: one state per invocation (4, 8 per channel); 16: two; 32: four. L = 45 ends in a ragged
  // stage of 5 steps, L = 24 on a whole one. D = 40 with G = 1 leaves the last block of 16 channels
  // (N = 16) or 32 (N = 4) part-filled; G = 2 with D/G = 32 keeps every block in one group.
  const cases: [ScanDims, boolean][] = [
    [{ batch: 2, D: 64, L: 45, N: 16, G: 2 }, true],
    [{ batch: 1, D: 40, L: 24, N: 16, G: 1 }, false],
    [{ batch: 2, D: 64, L: 45, N: 8, G: 2 }, true],
    [{ batch: 1, D: 40, L: 45, N: 4, G: 1 }, true],
    [{ batch: 1, D: 32, L: 24, N: 32, G: 2 }, true],
  ];
  for (const [i, [dims, withH0]] of cases.entries()) {
    assert.ok(walkForwardFits(dims.N, dims.D, dims.G), JSON.stringify(dims));
    const inp = randomCase(dims, 700 + i, { D: true, z: true, bias: true });
    (inp.delta as Float32Array)[3] = 25; // above the softplus threshold
    const h0 = withH0 ? randomArray(dims.batch * dims.D * dims.N, 710 + i) : undefined;
    const want = selectiveScanRef(inp, { deltaSoftplus: true, initialState: h0 });
    using x = upload(inp);
    using h0T = h0 ? Tensor.from(h0, [dims.batch, dims.D, dims.N]) : undefined;
    const out = selectiveScan(x, { deltaSoftplus: true, initialState: h0T });
    const [y, last] = await readTensors([out.y, out.lastState]);
    assertAllclose(y, want.y, { ...TOL, name: `${JSON.stringify(dims)}: y` });
    assertAllclose(last, want.lastState, { ...TOL, name: `${JSON.stringify(dims)}: lastState` });
    out.y.dispose();
    out.lastState.dispose();
  }
  // A launch asked for (bench/scan_walk.ts) runs as asked, or throws when the sizes do not fit it.
  {
    const dims: ScanDims = { batch: 1, D: 64, L: 45, N: 16, G: 2 };
    const inp = randomCase(dims, 720, { D: true, z: true, bias: true });
    const want = selectiveScanRef(inp, { deltaSoftplus: true });
    using x = upload(inp);
    for (const t of [{ walkStates: 4, walkSteps: 8 }, { walkStates: 1, walkSteps: 16 }] as const) {
      assert.ok(walkForwardFits(16, 64, 2, t), JSON.stringify(t));
      const out = selectiveScan(x, { deltaSoftplus: true }, t);
      const [y, last] = await readTensors([out.y, out.lastState]);
      assertAllclose(y, want.y, { ...TOL, name: `${JSON.stringify(t)}: y` });
      assertAllclose(last, want.lastState, { ...TOL, name: `${JSON.stringify(t)}: lastState` });
      out.y.dispose();
      out.lastState.dispose();
    }
    // S = 4, T = 16 at N = 16: 32 channels × 16 steps = 512 stage elements on 128 invocations (at most 256).
    assert.equal(walkForwardFits(16, 64, 2, { walkStates: 4, walkSteps: 16 }), false);
    assert.throws(
      () => selectiveScan(x, { deltaSoftplus: true }, { walkStates: 4, walkSteps: 16 }),
      ShapeError,
    );
  }
  // Sizes it does not take fall back to the three passes.
  assert.equal(walkForwardFits(12, 64, 1), false);
  assert.equal(walkForwardFits(64, 64, 1), false);
  assert.equal(walkForwardFits(16, 48, 2), false); // D/G = 24: a block of 16 would span two groups
});

Deno.test("selective scan: delta_softplus false, no optional inputs", async () => {
  const dims: ScanDims = { batch: 2, D: 6, L: 19, N: 5, G: 3 };
  const inp = randomCase(dims, 300);
  inp.delta = Float32Array.from(inp.delta, (v) => 0.05 + 0.5 * Math.abs(v)); // raw δ used as is: keep it > 0
  const dy = randomArray(2 * 6 * 19, 310);
  await checkGpu("no softplus", inp, dy, reference(inp, dy, { softplus: false }), {
    softplus: false,
    chunk: 8,
  });
});

Deno.test("selective scan: prefill then selectiveStateUpdate steps == the full sequence", async () => {
  const dims: ScanDims = { batch: 2, D: 8, L: 20, N: 16, G: 2 };
  const { batch, D, L, N, G } = dims;
  const P = 13; // prefill length
  const inp = randomCase(dims, 500, { D: true, z: true, bias: true });
  const full = selectiveScanRef(inp, { deltaSoftplus: true });
  // Column slices of (…, L) arrays: positions [t0, t1).
  const cols = (a: ArrayLike<number>, t0: number, t1: number) => {
    const out = new Float32Array((a.length / L) * (t1 - t0));
    for (let r = 0; r < a.length / L; r++) {
      for (let t = t0; t < t1; t++) out[r * (t1 - t0) + t - t0] = a[r * L + t];
    }
    return out;
  };
  const pre: ScanRefInputs = { ...inp, dims: { ...dims, L: P } };
  for (const k of ["u", "delta", "B", "C", "z"] as const) pre[k] = cols(inp[k]!, 0, P);
  using x = upload(pre);
  const { y, lastState: state } = selectiveScan(x, { deltaSoftplus: true });
  const ys: Tensor[] = [y];
  for (let t = P; t < L; t++) {
    const col = (k: "u" | "delta" | "z" | "B" | "C", shape: number[]) =>
      Tensor.from(cols(inp[k]!, t, t + 1), shape);
    using xt = col("u", [batch, D]);
    using dt = col("delta", [batch, D]);
    using zt = col("z", [batch, D]);
    using bt = col("B", [batch, G, N]);
    using ct = col("C", [batch, G, N]);
    ys.push(
      selectiveStateUpdate(state, xt, dt, x.A, bt, ct, {
        D: x.D,
        z: zt,
        dtBias: x.deltaBias,
        dtSoftplus: true,
      }),
    );
  }
  const got = await readTensors([...ys, state]);
  assertAllclose(got[0], cols(full.y, 0, P), { ...TOL, name: "prefill y" });
  for (let t = P; t < L; t++) {
    assertAllclose(got[t - P + 1], cols(full.y, t, t + 1), { ...TOL, name: `step y ${t}` });
  }
  assertAllclose(got[got.length - 1], full.lastState, { ...TOL, name: "final state" });
  for (const t of ys) t.dispose();
  state.dispose();
});

Deno.test("selective_scan_step.wgsl: selectiveStateUpdate == selectiveStateUpdateRef (ungrouped, no softplus)", async () => {
  const batch = 3, D = 10, N = 6;
  const r = (n: number, s: number) => randomArray(n, 700 + s);
  const ref = { dims: { batch, D, N, G: 1 }, state: r(batch * D * N, 1), x: r(batch * D, 2), A: r(D * N, 3) };
  const inp = {
    ...ref,
    dt: r(batch * D, 4).map((v) => 0.1 + Math.abs(v)),
    B: r(batch * N, 5),
    C: r(batch * N, 6),
  };
  const want = selectiveStateUpdateRef(inp);
  using state = Tensor.from(inp.state, [batch, D, N]);
  const T = (a: Float32Array, shape: number[]) => Tensor.from(a, shape);
  using y = selectiveStateUpdate(
    state,
    T(inp.x, [batch, D]),
    T(inp.dt, [batch, D]),
    T(inp.A, [D, N]),
    T(inp.B, [batch, N]),
    T(inp.C, [batch, N]),
  );
  const [gy, gs] = await readTensors([y, state]);
  assertAllclose(gy, want.y, { ...TOL, name: "y" });
  assertAllclose(gs, want.state, { ...TOL, name: "state" });
});

Deno.test("selective scan: wrong shapes throw ShapeError naming both shapes", () => {
  using x = upload(randomCase({ batch: 2, D: 8, L: 33, N: 4, G: 1 }, 900), true);
  using bad = Tensor.zeros([2, 33, 8]);
  assert.throws(
    () => selectiveScan({ ...x, delta: bad }),
    (e: Error) =>
      e instanceof ShapeError &&
      /expected delta \(B, D, L\) = \(2, 8, 33\), got \(2, 33, 8\)/.test(e.message),
  );
  using badA = Tensor.zeros([8, 100]);
  assert.throws(() => selectiveScan({ ...x, A: badA }), ShapeError);
  using g3 = Tensor.zeros([2, 3, 4, 33]);
  assert.throws(() => selectiveScan({ ...x, B: g3, C: g3 }), /multiple of the groups/);
});
