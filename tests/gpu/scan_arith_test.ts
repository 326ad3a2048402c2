// The benchmark-only kernel of kernels/scan_arith.wgsl: every mode's sink equals the float64 twin in
// bench/scan_arith.ts (two workgroups, so that the staged modes read other invocations' entries).
import { ARITH_MODES, ARITH_WG, arithRef, runArith } from "../../bench/scan_arith.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose } from "../_assert.ts";

Deno.test("scan_arith.wgsl: each mode == its float64 twin", async () => {
  await initGpu();
  const [groups, steps] = [2, 48];
  for (const mode of ARITH_MODES) {
    using sink = Tensor.from(new Float32Array(groups * ARITH_WG).fill(NaN), [groups * ARITH_WG]);
    runArith(mode, groups, steps, sink);
    const [got] = await readTensors([sink]);
    assertAllclose(got, arithRef(mode, groups, steps), { rtol: 1e-4, atol: 1e-4, name: `mode ${mode}` });
  }
});
