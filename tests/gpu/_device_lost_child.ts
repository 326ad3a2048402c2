/**
 * Loses the process's GPU device on purpose (`device.destroy()`), then makes the next GPU calls and
 * prints, one JSON line each, what they threw: `{"call", "error", "message"}`. Run by
 * `faults_test.ts` in a subprocess, because the device is a per-process singleton.
 *
 * `deno run -A tests/gpu/_device_lost_child.ts MODE`, MODE one of:
 * - `in-flight`: a readback is waiting when the device is lost;
 * - `immediate`: a readback is started right after the loss (before `device.lost` has settled);
 * - `later`: the next op (allocation, dispatch, upload, sync) after the loss has been reported;
 * - `train DIR`: a training run with checkpoints in DIR (every 4 steps) loses the device after step 6;
 *   what `train` threw is reported as call `train`.
 *
 * @module
 */
import { initGpu } from "../../lib/gpu/device.ts";
import { sync } from "../../lib/gpu/commands.ts";
import { scale } from "../../lib/tensor/elementwise.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { train } from "../../lib/train/loop.ts";
import { FAULT_OPTS, faultModel, faultTask } from "../train/_fault_child.ts";

/** Runs `f` and prints what it threw (or `"none"`). */
async function report(call: string, f: () => unknown): Promise<void> {
  try {
    await f();
    console.log(JSON.stringify({ call, error: "none" }));
  } catch (e) {
    console.log(
      JSON.stringify({ call, error: (e as Error).constructor.name, message: (e as Error).message }),
    );
  }
}

const ctx = await initGpu();
using a = Tensor.from(new Float32Array([1, 2, 3, 4]), [4]);
using b = scale(a, 2);
const mode = Deno.args[0];
await report("before", async () => {
  if ((await b.toArray()).join() !== "2,4,6,8") throw new Error("wrong values before the loss");
});
if (mode === "in-flight") {
  using c = scale(b, 2);
  const pending = c.toArray();
  ctx.device.destroy();
  await report("readback", () => pending);
} else if (mode === "immediate") {
  ctx.device.destroy();
  await report("readback", () => a.toArray());
} else if (mode === "train") {
  using m = faultModel(1);
  await report("train", () =>
    train(faultTask(m), { ...FAULT_OPTS, checkpointDir: Deno.args[1] }, [{
      log: (events) => void (events.at(-1)!.step === 6 && ctx.device.destroy()),
    }]));
} else {
  ctx.device.destroy();
  await new Promise((r) => setTimeout(r, 50));
  await report("empty", () => Tensor.empty([4]));
  await report("dispatch", () => scale(a, 3));
  await report("write", () => a.write(new Float32Array(4)));
  await report("sync", () => sync());
  await report("readback", () => a.toArray());
}
