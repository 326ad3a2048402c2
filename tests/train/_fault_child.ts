/**
 * A tiny training run for the fault tests, importable (the run's model, data and settings) and
 * runnable as a child process that the test kills with SIGKILL in the middle of a checkpoint write.
 *
 * `deno run -A tests/train/_fault_child.ts DIR` trains {@linkcode FAULT_OPTS} with checkpoints in DIR.
 * With `FAULT_SAVE=k` and `FAULT_POINT=head|data|synced`, the k-th checkpoint write stops inside
 * `writeSafetensors` (after the header, after part of the tensors, or after the temporary file was
 * complete and fsynced, before the rename), prints `PAUSED <temp file> <bytes written>` and waits to
 * be killed. Every completed checkpoint is copied to `DIR/good-<step>.safetensors` (before the run goes
 * on) and announced as `SAVED <step>`; every logged step is printed as `LOSS <step> <loss>`.
 *
 * The pause is made by wrapping `Deno.open` / `FsFile.prototype.write` / `FsFile.prototype.sync` in
 * this process only, so the library's write path runs unchanged up to the pause.
 *
 * With `FAULT_MODE=save-loop` the child does not train: it saves checkpoints of the model with steps
 * 1, 2, 3, … back to back (each with other weights, and a 4 MiB extra tensor so that the file write
 * is a large part of each save), printing `SAVED <step>` after each, until it is killed at a random
 * moment.
 *
 * @module
 */
import { initGpu } from "../../lib/gpu/device.ts";
import { parseLlamaConfig } from "../../lib/io/config.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { Rng } from "../../lib/random.ts";
import { CHECKPOINT_FILE, saveCheckpoint } from "../../lib/train/checkpoint.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { languageModelTask } from "../../lib/train/lm_task.ts";
import { train, type TrainOptions, type TrainTask } from "../../lib/train/loop.ts";

/** The fault tests' model: a one-layer micro Llama (vocab 64, width 32, 4 heads over 2 kv heads). */
export function faultModel(seed: number): LlamaModel {
  const config = parseLlamaConfig({
    vocab_size: 64,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 64,
    hidden_act: "silu",
  }, "micro");
  return LlamaModel.random(config, seed, 0.1);
}

/** A learnable token stream: a noisy cyclic pattern over 64 symbols. */
export const FAULT_IDS: Int32Array = (() => {
  const rng = new Rng(5);
  return Int32Array.from({ length: 4096 }, (_, i) => rng.uniform() < 0.9 ? (i * 7) % 64 : rng.int(64));
})();

/** 12 steps, losses read every 2, checkpoints after steps 4 and 8 and at the end (12). */
export const FAULT_OPTS: TrainOptions = {
  steps: 12,
  lr: { peak: 3e-3, warmup: 2 },
  logEvery: 2,
  checkpointEvery: 4,
  adamw: { maxGradNorm: 1 },
  seed: 3,
};

/** The task of the fault tests on `model` (batches of 2 × 16 tokens). */
export function faultTask(model: LlamaModel): TrainTask {
  return languageModelTask(model, FAULT_IDS, { batch: 2, seqLen: 16 });
}

/** Where the k-th checkpoint write stops. */
type PausePoint = "head" | "data" | "synced";

/** Wraps the file calls of `writeSafetensors` so that the `save`-th checkpoint write stops at `point`. */
function pauseInsideWrite(save: number, point: PausePoint): void {
  let saves = 0;
  let target: Deno.FsFile | null = null;
  let targetPath = "";
  let writes = 0;
  let bytes = 0;
  const hang = (): Promise<never> => {
    console.log(`PAUSED ${targetPath} ${bytes}`);
    // A live timer keeps the process (and the half-written file) until the test kills it.
    return new Promise<never>(() => setInterval(() => {}, 1000));
  };
  const open = Deno.open;
  Deno.open = async (path: string | URL, options?: Deno.OpenOptions) => {
    const file = await open(path, options);
    if (String(path).includes(`${CHECKPOINT_FILE}.tmp-`) && ++saves === save) {
      target = file;
      targetPath = String(path);
    }
    return file;
  };
  const proto = Deno.FsFile.prototype;
  const write = proto.write;
  proto.write = async function (this: Deno.FsFile, p: Uint8Array): Promise<number> {
    const n = await write.call(this, p);
    if (this === target) {
      writes++;
      bytes += n;
      // The header is the first write; "data" stops after the header and four tensors.
      if ((point === "head" && writes === 1) || (point === "data" && writes === 5)) return hang();
    }
    return n;
  };
  const sync = proto.sync;
  proto.sync = async function (this: Deno.FsFile): Promise<void> {
    await sync.call(this);
    if (this === target && point === "synced") return hang();
  };
}

/** Elements of the save loop's extra tensor, which makes the file write a large part of each save. */
export const FILLER_SIZE = 1 << 20;

/**
 * Saves checkpoints of `model` and a 4 MiB `filler` tensor with steps 1, 2, 3, … until killed; step k
 * holds the weights scaled by k and a filler of k everywhere.
 */
async function saveForever(dir: string, model: LlamaModel): Promise<never> {
  const params = model.namedParameters();
  const base = await readTensors(params.map(([, t]) => t));
  using filler = Tensor.empty([FILLER_SIZE]);
  for (let step = 1;; step++) {
    params.forEach(([, t], i) => t.write((base[i] as Float32Array).map((x) => x * step)));
    filler.write(new Float32Array(FILLER_SIZE).fill(step));
    await saveCheckpoint(dir, [...params, ["filler", filler]], {
      step,
      optimizerStep: step,
      rng: [1, 2, 3, 4],
    });
    console.log(`SAVED ${step}`);
  }
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (Deno.env.get("FAULT_MODE") === "save-loop") {
    await initGpu();
    await saveForever(dir, faultModel(1));
  }
  const save = Number(Deno.env.get("FAULT_SAVE") ?? "0");
  const point = (Deno.env.get("FAULT_POINT") ?? "data") as PausePoint;
  if (save > 0) pauseInsideWrite(save, point);
  await initGpu();
  using model = faultModel(1);
  await train(faultTask(model), { ...FAULT_OPTS, checkpointDir: dir }, [{
    log(events) {
      for (const e of events) console.log(`LOSS ${e.step} ${e.loss}`);
    },
    async checkpoint(step, path) {
      await Deno.copyFile(path, `${dir}/good-${step}.safetensors`);
      console.log(`SAVED ${step}`);
    },
  }]);
  console.log("DONE");
}
