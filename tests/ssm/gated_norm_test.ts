import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { gatedRmsNorm, gatedRmsNormBackward } from "../../lib/ssm/gated_norm.ts";
import { gatedRmsNormBackwardRef, gatedRmsNormRef } from "../../lib/ssm/gated_norm_ref.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";
import { finiteDiff } from "../_gradcheck.ts";

await initGpu();

const FIXTURE = new URL("../fixtures/tiny-hybrid-mamba2/model.safetensors", import.meta.url).pathname;
/** f32 kernels against float64 references: 1e-4 relative, atol for values near 0. */
const TOL = { rtol: 1e-4, atol: 2e-5 };

/** Leaves NaN-filled buffers of these sizes in the pool, so that an output a kernel forgets shows up. */
function poisonPool(sizes: number[]): void {
  const held = sizes.flatMap((n) => [0, 1, 2, 3].map(() => Tensor.from(new Float32Array(n).fill(NaN), [n])));
  for (const t of held) t.dispose();
}

/** Runs forward and backward on the GPU for x, z (shape), w (D) and dy; checks all against the reference. */
async function checkGpu(
  label: string,
  shape: number[],
  v: { x: Float32Array; z: Float32Array; w: Float32Array; dy: Float32Array },
  o: { eps: number; groupSize?: number },
) {
  const D = shape[shape.length - 1];
  const want = gatedRmsNormRef(v.x, v.z, v.w, D, o);
  const wantG = gatedRmsNormBackwardRef(v.x, v.z, v.w, v.dy, D, o);
  poisonPool([v.x.length, D]);
  using x = Tensor.from(v.x, shape);
  using z = Tensor.from(v.z, shape);
  using w = Tensor.from(v.w, [D]);
  using dy = Tensor.from(v.dy, shape);
  using y = gatedRmsNorm(x, z, w, o);
  const g = gatedRmsNormBackward(x, z, w, dy, o);
  assert.deepEqual(y.shape, shape);
  assert.deepEqual(g.weight.shape, [D]);
  const [yv, dx, dz, dw] = await readTensors([y, g.x, g.z, g.weight]);
  assertAllclose(yv, want, { ...TOL, name: `${label}: y` });
  assertAllclose(dx, wantG.x, { ...TOL, name: `${label}: dx` });
  assertAllclose(dz, wantG.z, { ...TOL, name: `${label}: dz` });
  // dweight sums all rows: compared at 1e-4 of its scale.
  assertAllclose(dw, wantG.weight, { rtol: 1e-4, atol: 1e-4, name: `${label}: dweight` });
  for (const t of [g.x, g.z, g.weight]) t.dispose();
}

Deno.test("gated norm reference: backward == central differences (one group and groups of D/4)", () => {
  const R = 3;
  const D = 8;
  for (const groupSize of [D, D / 4]) {
    const o = { eps: 1e-5, groupSize };
    const xs = [randomArray(R * D, 1, 2), randomArray(R * D, 2, 2), randomArray(D, 3)].map((a) =>
      Float64Array.from(a)
    );
    const r = randomArray(R * D, 4);
    const f = (v: Float64Array[]) => gatedRmsNormRef(v[0], v[1], v[2], D, o);
    const got = gatedRmsNormBackwardRef(xs[0], xs[1], xs[2], r, D, o);
    (["x", "z", "weight"] as const).forEach((name, i) => {
      assertAllclose(got[name], finiteDiff(f, xs, r, i), {
        rtol: 1e-6,
        atol: 1e-7,
        name: `groupSize ${groupSize}: d${name}`,
      });
    });
  }
});

Deno.test("gated_norm.wgsl: forward and backward == reference (groupSize D, D/4; small and wide groups)", async () => {
  const cases: [number[], number | undefined][] = [
    [[2, 33, 64], undefined], // one group of 64
    [[2, 33, 64], 16], // D/4
    [[5, 600], 600], // a group wider than the workgroup
    [[5, 600], 150], // D/4, 150 channels over 256 lanes
    [[70, 12], 3], // 4 lanes per group, 64 groups per workgroup
  ];
  for (const [i, [shape, groupSize]] of cases.entries()) {
    const n = shape.reduce((a, b) => a * b, 1);
    const D = shape[shape.length - 1];
    const v = {
      x: randomArray(n, 10 * i + 1, 2),
      z: randomArray(n, 10 * i + 2, 3),
      w: randomArray(D, 10 * i + 3),
      dy: randomArray(n, 10 * i + 4),
    };
    await checkGpu(`${shape.join("×")} groupSize ${groupSize ?? "D"}`, shape, v, { eps: 1e-5, groupSize });
  }
});

Deno.test("gated norm: the checkpoint's norm.weight (64) with groups of d_inner / ngroups", async () => {
  using f = await SafetensorsFile.open(FIXTURE);
  const name = "model.layers.0.mamba.norm.weight";
  assert.deepEqual(f.info(name).shape, [64]);
  const w = await f.readF32(name);
  const shape = [2, 9, 64];
  const v = {
    x: randomArray(2 * 9 * 64, 5, 2),
    z: randomArray(2 * 9 * 64, 6, 2),
    w,
    dy: randomArray(2 * 9 * 64, 7),
  };
  await checkGpu("checkpoint norm, groups of 16", shape, v, { eps: 1e-5, groupSize: 64 / 4 });
  await checkGpu("checkpoint norm, one group", shape, v, { eps: 1e-5 });
});

Deno.test("gated norm: wrong shapes throw ShapeError naming both shapes", () => {
  using x = Tensor.zeros([2, 3, 8]);
  using z = Tensor.zeros([2, 3, 8]);
  using zBad = Tensor.zeros([2, 8, 3]);
  using w = Tensor.zeros([8]);
  using wBad = Tensor.zeros([4]);
  assert.throws(() => gatedRmsNorm(x, zBad, w, { eps: 1e-5 }), /\(2, 3, 8\), got \(2, 8, 3\)/);
  assert.throws(() => gatedRmsNorm(x, z, wBad, { eps: 1e-5 }), ShapeError);
  assert.throws(
    () => gatedRmsNorm(x, z, w, { eps: 1e-5, groupSize: 3 }),
    /groupSize 3 does not divide D = 8/,
  );
  assert.throws(() => gatedRmsNormBackward(x, z, w, zBad, { eps: 1e-5 }), ShapeError);
});
