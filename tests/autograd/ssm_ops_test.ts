/**
 * The tape rules of the Mamba ops route each kernel's backward to the right inputs: gradients from
 * GradTape.backward equal the kernels' backward called directly (which tests/ssm checks against the
 * official reference's gradients and finite differences).
 */
import { causalConv1d, gatedRmsNorm, selectiveScan, ssd } from "../../lib/autograd/ssm_ops.ts";
import { GradTape } from "../../lib/autograd/tape.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { causalConv1dBackward } from "../../lib/ssm/conv1d.ts";
import { gatedRmsNormBackward } from "../../lib/ssm/gated_norm.ts";
import { selectiveScanBackward } from "../../lib/ssm/selective_scan.ts";
import { ssdBackward } from "../../lib/ssm/ssd.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();

let seed = 1;
const param = (shape: number[], lo = -1, hi = 1) => {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = Tensor.from(randomArray(n, seed++).map((v) => lo + (v + 1) / 2 * (hi - lo)), shape);
  t.requiresGrad = true;
  return t;
};

async function compare(inputs: Tensor[], direct: (Tensor | undefined)[], name: string) {
  const got = await readTensors(inputs.map((t) => t.grad!));
  const want = await readTensors(direct.map((t) => t!));
  got.forEach((g, i) => assertAllclose(g, want[i], { atol: 1e-6, rtol: 1e-5, name: `${name} input ${i}` }));
  for (const t of [...inputs, ...direct]) t?.dispose();
}

Deno.test("autograd: conv1d, gated norm, SSD and selective scan tape rules equal their kernels' backward", async () => {
  {
    const [x, w, b] = [param([2, 9, 6]), param([6, 1, 4]), param([6])];
    using r = Tensor.from(randomArray(2 * 9 * 6, 50), [2, 9, 6]);
    using tape = new GradTape();
    const y = tape.run(() => causalConv1d(x, w, { bias: b, activation: "silu" }));
    tape.backward(y, r);
    y.dispose();
    const d = causalConv1dBackward(x, w, r, { bias: b, activation: "silu" });
    await compare([x, w, b], [d.x, d.weight, d.bias], "conv1d");
  }
  {
    const [x, z, w] = [param([3, 8]), param([3, 8]), param([8])];
    using r = Tensor.from(randomArray(24, 51), [3, 8]);
    using tape = new GradTape();
    const y = tape.run(() => gatedRmsNorm(x, z, w, { eps: 1e-5, groupSize: 4 }));
    tape.backward(y, r);
    y.dispose();
    const d = gatedRmsNormBackward(x, z, w, r, { eps: 1e-5, groupSize: 4 });
    await compare([x, z, w], [d.x, d.z, d.weight], "gated norm");
  }
  {
    const [X, A, B, C] = [
      param([1, 20, 2, 4]),
      param([1, 20, 2], -0.5, 0),
      param([1, 20, 2, 3]),
      param([1, 20, 2, 3]),
    ];
    using r = Tensor.from(randomArray(1 * 20 * 2 * 4, 52), [1, 20, 2, 4]);
    using tape = new GradTape();
    const y = tape.run(() => ssd({ X, A, B, C }, { blockLen: 8 }));
    tape.backward(y, r);
    y.dispose();
    const d = ssdBackward({ X, A, B, C }, r, { blockLen: 8 });
    await compare([X, A, B, C], [d.X, d.A, d.B, d.C], "ssd");
  }
  {
    const inp = {
      u: param([1, 4, 10]),
      delta: param([1, 4, 10]),
      A: param([4, 3], -1.5, -0.5),
      B: param([1, 3, 10]),
      C: param([1, 3, 10]),
      D: param([4]),
      z: param([1, 4, 10]),
      deltaBias: param([4]),
    };
    using r = Tensor.from(randomArray(40, 53), [1, 4, 10]);
    using tape = new GradTape();
    const y = tape.run(() => selectiveScan(inp, { deltaSoftplus: true }));
    tape.backward(y, r);
    y.dispose();
    const d = selectiveScanBackward(inp, r, { deltaSoftplus: true });
    const keys = ["u", "delta", "A", "B", "C", "D", "z", "deltaBias"] as const;
    await compare(keys.map((k) => inp[k]), keys.map((k) => d[k]), "selective scan");
  }
});
