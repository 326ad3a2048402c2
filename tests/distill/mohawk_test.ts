/**
 * MOHAWK's stages (lib/distill/matrix_task.ts, tasks.ts): the differentiable mixing matrix of a
 * Mamba-2 layer equals the one `lab mixing` materialises from the layer's operands, its gradients
 * match finite differences, and a whole MOHAWK run (matrix orientation, hidden-state alignment,
 * KD) lowers each stage's loss on tiny-llama.
 */
import assert from "node:assert/strict";
import { rmsNorm } from "../../lib/autograd/ops.ts";
import { GradTape } from "../../lib/autograd/tape.ts";
import { concatColumns, mamba2MixingMatrix } from "../../lib/distill/matrix_task.ts";
import { runDistillation } from "../../lib/distill/run.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { layerMixing } from "../../lib/mixing/layer_mixing.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();
const HYBRID = new URL("../fixtures/tiny-hybrid-mamba2", import.meta.url).pathname;
const TEACHER = new URL("../fixtures/tiny-llama", import.meta.url).pathname;

Deno.test("mohawk: concatColumns places blocks side by side and slices the gradient back", async () => {
  const a = Tensor.from(Float32Array.from([1, 2, 3, 4]), [2, 2]);
  const b = Tensor.from(Float32Array.from([5, 6]), [2, 1]);
  a.requiresGrad = b.requiresGrad = true;
  using tape = new GradTape();
  const y = tape.run(() => concatColumns([a, b, a]));
  assert.deepEqual([...await y.toArray()], [1, 2, 5, 1, 2, 3, 4, 6, 3, 4]);
  using g = Tensor.from(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), [2, 5]);
  tape.backward(y, g);
  y.dispose();
  assert.deepEqual([...await a.grad!.toArray()], [1 + 4, 2 + 5, 6 + 9, 7 + 10]); // a appears twice
  assert.deepEqual([...await b.grad!.toArray()], [3, 8]);
  a.dispose();
  b.dispose();
});

Deno.test("mohawk: the taped Mamba-2 mixing matrix equals lab mixing's, with gradients matching finite differences", async () => {
  using model = await LlamaModel.load(HYBRID);
  const T = 12;
  const ids = Int32Array.from({ length: 2 * T }, (_, i) => (i * 37 + 11) % 4096);
  using x = Tensor.from(ids, [2, T], "i32");
  const ref = await layerMixing(model, x, 0);
  const out = model.forward(x, { hidden: true });
  out.logits.dispose();
  using xn = rmsNorm(out.hidden![0], model.layers[0].inputNorm, model.config.rmsNormEps);
  for (const h of out.hidden!) h.dispose();
  {
    using M = mamba2MixingMatrix(model, 0, xn);
    const [got, want] = await readTensors([M, ref.M]);
    assertAllclose(got, want, { atol: 1e-5, rtol: 1e-4, name: "M" });
  }
  ref.M.dispose();
  // d(Σ M · R) / d{dt_bias, A_log, D, conv bias} against central differences of the GPU forward
  const w = model.layers[0].mamba!;
  const checked = { dtBias: w.dtBias, aLog: w.aLog, D: w.D, convBias: w.convBias };
  for (const t of Object.values(checked)) t.requiresGrad = true;
  const n = 2 * 4 * T * T;
  using R = Tensor.from(randomArray(n, 5), [2, 4, T, T]);
  const r = await R.toArray();
  {
    using tape = new GradTape();
    const M = tape.run(() => mamba2MixingMatrix(model, 0, xn));
    tape.backward(M, R);
    M.dispose();
  }
  const dot = async () => {
    using M = mamba2MixingMatrix(model, 0, xn);
    const m = await M.toArray();
    let s = 0;
    for (let i = 0; i < n; i++) s += m[i] * r[i];
    return s;
  };
  for (const [name, t] of Object.entries(checked)) {
    const grad = await t.grad!.toArray();
    const base = Float32Array.from(await t.toArray());
    for (const j of [0, t.size - 1]) {
      const h = 1e-2;
      const at = (v: number) => {
        const p = Float32Array.from(base);
        p[j] = v;
        t.write(p);
      };
      at(base[j] + h);
      const up = await dot();
      at(base[j] - h);
      const down = await dot();
      at(base[j]);
      const fd = (up - down) / (2 * h);
      assert.ok(
        Math.abs(grad[j] - fd) <= 2e-2 * Math.abs(fd) + 2e-3,
        `${name}[${j}]: tape ${grad[j]} vs finite difference ${fd}`,
      );
    }
  }
});

Deno.test("mohawk: a run of stages 1 and 2 on tiny-llama lowers the matrix and hidden-state losses", async () => {
  const out = await Deno.makeTempDir();
  const r = await runDistillation({
    teacherDir: TEACHER,
    outDir: out,
    recipe: "mohawk",
    attentionLayers: [1],
    tokens: 12 * 64, // stage 1: 4 steps, stage 2: 8 (stage 3 is the KD task of run_test.ts)
    mohawkStages: [1, 2],
    batch: 2,
    seqLen: 32,
    evalWindows: 1,
    logEvery: 2,
  });
  assert.equal(r.reason, "done");
  assert.deepEqual(r.stages.map((s) => s.name), ["mohawk-1-matrix", "mohawk-2-hidden"]);
  const m = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
  for (const stage of ["mohawk-1-matrix", "mohawk-2-hidden"]) {
    const losses = m.filter((e) => e.stage === stage).map((e) => e.loss as number);
    assert.ok(losses.length >= 4, `${stage} logged ${losses.length} steps`);
    assert.ok(losses.at(-1)! < losses[0], `${stage}: ${losses[0]} → ${losses.at(-1)}`);
  }
  assert.match(await Deno.readTextFile(`${out}/report.html`), /Mixing matrices at layer 0/);
  await Deno.remove(out, { recursive: true });
});
