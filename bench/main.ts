/**
 * `deno task bench [--json FILE] [--quick]`: GPU timings of the toolkit's kernels and the teacher's
 * forward pass, as JSON (medians of GPU timestamps after warm-up). Run it on the GPU machine through
 * the device recipe (README), next to `bench/pytorch_reference.py` for PyTorch's figures.
 *
 * This is the foundation's benchmark (matmul, a Llama forward, evaluation throughput); the Mamba
 * kernels and the distillation step join it with their issues.
 *
 * @module
 */
import { adapterName, gpu, initGpu } from "../lib/gpu/device.ts";
import { timeGpu } from "../lib/gpu/timing.ts";
import { parseFlags } from "../lib/cli/args.ts";
import { matmul, useSmallTilesOnly } from "../lib/tensor/matmul.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { LlamaModel } from "../lib/models/llama.ts";
import { DEFAULT_MODEL_DIR } from "../lib/models/default_model.ts";
import { benchSsm } from "./ssm.ts";

const flags = parseFlags("bench", Deno.args, { json: "string", quick: "boolean" });
const reps = flags.quick ? 3 : 10;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timeMedian(fn: () => void): Promise<number> {
  await timeGpu(fn); // warm-up: pipelines, pool
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) ts.push(await timeGpu(fn));
  return median(ts);
}

const ctx = await initGpu();
const results: Record<string, unknown>[] = [];

// Square products in both layouts the models use: NN (A · B) and NT (x · Wᵀ, a linear layer), with
// the 64×64-tile kernel and with the 128×128-tile one that large products take.
for (const n of flags.quick ? [256] : [1024, 2048, 4096]) {
  using a = Tensor.from(new Float32Array(n * n).fill(0.5), [n, n]);
  using b = Tensor.from(new Float32Array(n * n).fill(0.25), [n, n]);
  for (const small of [true, false]) {
    useSmallTilesOnly(small);
    for (const transB of [false, true]) {
      const ms = await timeMedian(() => matmul(a, b, { transB }).dispose());
      const layout = transB ? "nt" : "nn";
      results.push({
        name: `matmul_f32_${layout}_${n}_${small ? "tile64" : "tile128"}`,
        ms,
        tflops: 2 * n ** 3 / (ms / 1e3) / 1e12,
      });
    }
  }
  useSmallTilesOnly(false);
}

{
  using model = await LlamaModel.load(DEFAULT_MODEL_DIR);
  const [B, T] = flags.quick ? [2, 64] : [16, 256];
  const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % model.config.vocabSize);
  using x = Tensor.from(ids, [B, T], "i32");
  const ms = await timeMedian(() => model.forward(x).logits.dispose());
  results.push({ name: `brown_llama_6m_forward_B${B}_T${T}`, ms, tokens_per_s: B * T / (ms / 1e3) });
}

results.push(...await benchSsm(timeMedian, !!flags.quick));

const report = {
  date: new Date().toISOString(),
  adapter: adapterName(ctx),
  limits: { maxBindingBytes: gpu().maxBindingBytes },
  results,
};
const text = JSON.stringify(report, null, 2);
if (typeof flags.json === "string") await Deno.writeTextFile(flags.json, text);
console.log(text);
