/**
 * The SSD mixing-matrix kernel (kernels/mixing.wgsl, with the strided matmul for C Bᵀ and the
 * gradient products): forward and backward against the float64 references, the references' backward
 * against finite differences, the tape rule through GradTape, and stability for long decays.
 */
import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { ssdMixingMatrix } from "../../lib/autograd/mixing_ops.ts";
import {
  discreteMamba2MixingRef,
  ssdMixingBackwardRef,
  ssdMixingRef,
  type SsdMixInputs,
} from "../../lib/mixing/mixing_ref.ts";
import { ssdMixingMatrixBackward, ssdMixingMatrixForward } from "../../lib/mixing/ssd_mixing.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";
import { checkOp, finiteDiff } from "../_gradcheck.ts";

await initGpu();

const TOL = { rtol: 1e-4, atol: 2e-5 };

/** Random inputs: A < 0 (a decay), dt > 0; float32-representable values. */
function randomCase(batch: number, T: number, H: number, N: number, seed: number): SsdMixInputs {
  return {
    dims: { batch, T, H, N },
    A: Float64Array.from(randomArray(batch * T * H, seed), (v) => Math.fround(-0.05 - 0.4 * Math.abs(v))),
    B: Float64Array.from(randomArray(batch * T * H * N, seed + 1)),
    C: Float64Array.from(randomArray(batch * T * H * N, seed + 2)),
    dt: Float64Array.from(randomArray(batch * T * H, seed + 3), (v) => Math.fround(0.1 + Math.abs(v))),
    D: Float64Array.from(randomArray(H, seed + 4)),
  };
}

function upload(c: SsdMixInputs, withDt = true, withD = true) {
  const { batch, T, H, N } = c.dims;
  const t = (a: ArrayLike<number>, s: number[]) => Tensor.from(Float32Array.from(a), s);
  return {
    A: t(c.A, [batch, T, H]),
    B: t(c.B, [batch, T, H, N]),
    C: t(c.C, [batch, T, H, N]),
    dt: withDt && c.dt ? t(c.dt, [batch, T, H]) : undefined,
    D: withD && c.D ? t(c.D, [H]) : undefined,
  };
}

function dispose(x: Record<string, Tensor | undefined>) {
  for (const t of Object.values(x)) t?.dispose();
}

/** NaN-filled buffers left in the pool, so that an element a kernel forgets to write shows up. */
function poisonPool(sizes: number[]): void {
  const held = sizes.flatMap((n) => [0, 1, 2].map(() => Tensor.from(new Float32Array(n).fill(NaN), [n])));
  for (const t of held) t.dispose();
}

Deno.test("ssdMixingMatrix: forward equals the float64 reference (with and without dt and D, T not a multiple of 64)", async () => {
  for (const [batch, T, H, N, dt, D] of [[2, 70, 3, 5, true, true], [1, 9, 2, 4, false, false]] as const) {
    const c = randomCase(batch, T, H, N, 3 + T);
    poisonPool([batch * H * T * T]);
    const g = upload(c, dt, D);
    using M = ssdMixingMatrixForward(g);
    const [got] = await readTensors([M]);
    const want = ssdMixingRef({ ...c, dt: dt ? c.dt : undefined, D: D ? c.D : undefined });
    assertAllclose(got, want, { ...TOL, name: `M (${batch}, ${H}, ${T}, ${T})` });
    dispose(g);
  }
});

Deno.test("ssdMixingMatrix: the reference backward equals finite differences of the reference", () => {
  const c = randomCase(1, 6, 2, 3, 11);
  const dM = randomArray(2 * 36, 12);
  const g = ssdMixingBackwardRef(c, dM);
  const keys = ["A", "B", "C", "dt", "D"] as const;
  const f = (xs: Float64Array[]) =>
    ssdMixingRef({ dims: c.dims, A: xs[0], B: xs[1], C: xs[2], dt: xs[3], D: xs[4] });
  const xs = keys.map((k) => Float64Array.from(c[k]!));
  keys.forEach((k, i) => {
    assertAllclose(g[k]!, finiteDiff(f, xs, dM, i), { rtol: 1e-6, atol: 1e-7, name: `d${k}` });
  });
});

Deno.test("ssdMixingMatrix: backward kernels equal the reference backward", async () => {
  for (const [batch, T, H, N, withDt] of [[2, 67, 2, 4, true], [1, 12, 3, 8, false]] as const) {
    const c = randomCase(batch, T, H, N, 20 + T);
    const dM = randomArray(batch * H * T * T, 21);
    const g = upload(c, withDt, true);
    using dMt = Tensor.from(dM, [batch, H, T, T]);
    poisonPool([batch * T * H, batch * T * H * N, batch * H * T * T]);
    const d = ssdMixingMatrixBackward(g, dMt);
    const names = ["A", "B", "C", "dt", "D"] as const;
    const present = names.filter((k) => d[k]);
    assert.deepEqual(present, withDt ? names : ["A", "B", "C", "D"]);
    const got = await readTensors(present.map((k) => d[k]!));
    const want = ssdMixingBackwardRef({ ...c, dt: withDt ? c.dt : undefined }, dM);
    present.forEach((k, i) =>
      assertAllclose(got[i], want[k]!, { rtol: 2e-4, atol: 1e-4, name: `d${k} T=${T}` })
    );
    dispose(d as unknown as Record<string, Tensor>);
    dispose(g);
  }
});

Deno.test("ssdMixingMatrix: the tape rule's gradients match finite differences (GradTape)", async () => {
  const [batch, T, H, N] = [1, 5, 2, 3];
  const c = randomCase(batch, T, H, N, 30);
  const keys = ["A", "B", "C", "dt", "D"] as const;
  await checkOp(
    "ssdMixingMatrix",
    [[batch, T, H], [batch, T, H, N], [batch, T, H, N], [batch, T, H], [H]],
    [0, 1, 2, 3, 4],
    ([A, B, C, dt, D]) => ssdMixingMatrix({ A, B, C, dt, D }),
    (xs) => ssdMixingRef({ dims: c.dims, A: xs[0], B: xs[1], C: xs[2], dt: xs[3], D: xs[4] }),
    { values: keys.map((k) => Float64Array.from(c[k]!)) },
  );
});

Deno.test("ssdMixingMatrix: long strong decays stay exact (a direct sum per entry, not cumsum differences)", async () => {
  // T = 512 steps of log-decay −2.5 to −3.5: cumulative sums reach −1500, where f32 spacing is 1.2e-4, so
  // exp(cum[t] − cum[s]) would be off by up to 4.5e-4 relative (measured in plain TS with Math.fround);
  // the running sum per column keeps every entry within 2e-5.
  const [batch, T, H, N] = [1, 512, 1, 1]; // N = 1: C·B has no cancellation, errors are the decay's
  const c = randomCase(batch, T, H, N, 40);
  c.A = Float64Array.from(randomArray(T, 41), (v) => Math.fround(-3 + 0.5 * v));
  const g = upload(c, true, false);
  using M = ssdMixingMatrixForward(g);
  const [got] = await readTensors([M]);
  const want = ssdMixingRef({ ...c, D: undefined });
  assertAllclose(got, want, { rtol: 2e-5, atol: 1e-30, name: "M with long decays" });
  assert.ok(
    want[(T - 1) * T + T - 2] !== 0 && want[(T - 1) * T] === 0,
    "the test spans nonzero and underflowed entries",
  );
  dispose(g);
});

Deno.test("ssdMixingMatrix: MOHAWK's discrete Mamba-2 matrix is the kernel with A = −softplus(Â), no dt, D on the diagonal", async () => {
  const [batch, T, H, N] = [2, 19, 3, 4];
  const c = randomCase(batch, T, H, N, 50);
  const Ahat = Float64Array.from(randomArray(batch * T * H, 51, 3));
  const A = Float32Array.from(Ahat, (a) => -Math.log1p(Math.exp(a)));
  const g = upload({ ...c, A }, false, true);
  using M = ssdMixingMatrixForward(g);
  const [got] = await readTensors([M]);
  assertAllclose(got, discreteMamba2MixingRef(Ahat, c.B, c.C, c.dims, c.D), {
    ...TOL,
    name: "discrete Mamba-2 M",
  });
  dispose(g);
});

Deno.test("ssdMixingMatrix: mismatched shapes are ShapeErrors naming both", () => {
  using A = Tensor.zeros([1, 4, 2]);
  using B = Tensor.zeros([1, 4, 2, 3]);
  using C = Tensor.zeros([1, 4, 2, 2]);
  assert.throws(
    () => ssdMixingMatrixForward({ A, B, C }),
    (e) => e instanceof ShapeError && /C \(B, T, H, N\)/.test(e.message),
  );
  using dt = Tensor.zeros([1, 3, 2]);
  assert.throws(() => ssdMixingMatrixForward({ A, B, C: B, dt }), /dt \(B, T, H\)/);
});
