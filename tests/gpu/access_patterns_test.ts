// The benchmark-only kernels of kernels/access_patterns.wgsl: every entry's y and sink equal the
// float64 twin in bench/access_patterns.ts (rows not a multiple of a workgroup, two chunks per row).
import assert from "node:assert/strict";
import {
  PATTERN_ENTRIES,
  PATTERN_STEPS,
  patternGrid,
  patternRef,
  runPattern,
} from "../../bench/access_patterns.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

Deno.test("access_patterns.wgsl: each entry == its float64 twin", async () => {
  await initGpu();
  const [rows, L] = [130, 256];
  const u = randomArray(rows * L, 1);
  const d = randomArray(rows * L, 2);
  const z = randomArray(rows * L, 3);
  using uT = Tensor.from(u, [rows, L]);
  using dT = Tensor.from(d, [rows, L]);
  using zT = Tensor.from(z, [rows, L]);
  for (const entry of PATTERN_ENTRIES) {
    const { sink: n } = patternGrid(entry, rows, L);
    using y = Tensor.from(new Float32Array(rows * L).fill(NaN), [rows, L]);
    using sink = Tensor.from(new Float32Array(n).fill(NaN), [n]);
    runPattern(entry, rows, L, { u: uT, delta: dT, z: zT, y, sink });
    const [gy, gs] = await readTensors([y, sink]);
    const want = patternRef(entry, rows, L, u, d, z);
    let written = 0;
    for (let i = 0; i < want.sink.length; i++) {
      assert.equal(Number.isNaN(gs[i]), Number.isNaN(want.sink[i]), `${entry}: sink[${i}] written or not`);
      if (!Number.isNaN(want.sink[i])) written++;
    }
    assert.equal(written, rows * (L / PATTERN_STEPS), `${entry}: one sink value per (row, chunk)`);
    const keep = (a: ArrayLike<number>) => Array.from(a).map((v) => (Number.isNaN(v) ? 0 : v));
    assertAllclose(keep(gs), keep(want.sink), { rtol: 1e-4, atol: 1e-4, name: `${entry} sink` });
    if (entry.includes("out")) assertAllclose(gy, want.y, { rtol: 1e-4, atol: 1e-5, name: `${entry} y` });
    else assert.ok(Array.from(gy).every(Number.isNaN), `${entry}: y untouched`);
  }
});
