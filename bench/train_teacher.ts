/**
 * Retrains a brown-llama-6m-shaped Llama from scratch on Brown (the fixture's recipe: 1,400 steps ×
 * 32 × 256 tokens, AdamW, lr 2e-3 cosine) and reports validation loss and tokens/s as JSON, for
 * comparison with the fixture's 4.276 and with `bench/train_teacher.py` (PyTorch, same batches).
 *
 *   deno run -A bench/train_teacher.ts --data brown.safetensors [--steps N] [--json FILE]
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { parseLlamaConfig, readJsonFile } from "../lib/io/config.ts";
import { SafetensorsFile } from "../lib/io/safetensors.ts";
import { evaluateLoss } from "../lib/models/evaluate.ts";
import { LlamaModel } from "../lib/models/llama.ts";
import { DEFAULT_MODEL_DIR } from "../lib/models/default_model.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { train, type TrainTask } from "../lib/train/loop.ts";
import { nextTokenBackward } from "../lib/train/next_token.ts";
import { selectTrainable } from "../lib/train/optim.ts";

const f = parseFlags("train_teacher", Deno.args, {
  data: "string",
  steps: "number",
  json: "string",
  seed: "number",
  "val-windows": "number",
});
using data = await SafetensorsFile.open(String(f.data));
const ids = (await data.read("train")).data as Int32Array;
const val = (await data.read("validation")).data as Int32Array;
const startsT = await data.read("starts");
const starts = startsT.data as Int32Array;
const [maxSteps, B] = startsT.shape;
const T = Number(data.metadata.seq ?? 256);
const steps = Math.min((f.steps as number) ?? maxSteps, maxSteps);
const ctx = await initGpu();
const config = parseLlamaConfig(await readJsonFile(`${DEFAULT_MODEL_DIR}/config.json`), "config.json");
using model = LlamaModel.random(config, (f.seed as number) ?? 0, 0.02);
const state = model.namedParameters();
const task: TrainTask = {
  params: selectTrainable(state),
  state,
  step(i) {
    const x = new Int32Array(B * T);
    const y = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const s = starts[i * B + b];
      x.set(ids.subarray(s, s + T), b * T);
      y.set(ids.subarray(s + 1, s + T + 1), b * T);
    }
    using xt = Tensor.from(x, [B, T], "i32");
    using yt = Tensor.from(y, [B * T], "i32");
    return { loss: nextTokenBackward(model, xt, yt), tokens: B * T };
  },
};
const t0 = performance.now();
const run = await train(task, {
  steps,
  lr: { peak: 2e-3, warmup: 100, min: 2e-4 },
  adamw: { betas: [0.9, 0.95], weightDecay: 0.1, maxGradNorm: 1 },
  logEvery: 50,
});
const seconds = (performance.now() - t0) / 1000;
const valWindows = f["val-windows"] as number | undefined;
const ev = await evaluateLoss(model, valWindows ? val.subarray(0, valWindows * 256 + 1) : val, {
  seqLen: 256,
});
const tps = run.events.slice(50).map((e) => e.tokensPerSecond).sort((a, b) => a - b);
const report = {
  adapter: adapterName(ctx),
  steps,
  batch: B,
  seq: T,
  seconds,
  tokens_per_s_median: tps[Math.floor(tps.length / 2)] ?? run.events.at(-1)?.tokensPerSecond,
  ms_per_step: seconds * 1000 / steps,
  final_train_loss: run.lastLoss,
  val_loss: ev.loss,
  val_ppl: ev.ppl,
  fixture_val_loss: 4.27595,
  curve: run.events.filter((e) => e.step % 100 === 0).map((e) => ({ step: e.step, loss: e.loss })),
};
const text = JSON.stringify(report, null, 2);
if (typeof f.json === "string") await Deno.writeTextFile(f.json, text);
console.log(text);
