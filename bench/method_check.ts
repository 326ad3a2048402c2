/**
 * `deno run -A bench/method_check.ts [--json FILE] [--quick]`: settles whether the warm-up explains the
 * gap between the Mamba kernels' figures in the earlier bench (one warm-up call, then the median of 10
 * calls each followed by a readback) and the kernel authors' (after seconds of sustained load). Run it
 * first in a fresh process on an idle GPU: for each SSM workload it takes the earlier method's median
 * cold, then bench/timing.ts's sustained median, then the earlier method again, warm.
 *
 * @module
 */
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { timeGpu } from "../lib/gpu/timing.ts";
import { parseFlags } from "../lib/cli/args.ts";
import { ssmWorkloads } from "./ssm.ts";
import { FULL, QUICK, timeSustained } from "./timing.ts";

const flags = parseFlags("method_check", Deno.args, { json: "string", quick: "boolean" });
const ctx = await initGpu();

/** The earlier bench's method: one untimed-for-the-result call, then the median of 10 single calls. */
async function earlier(fn: () => void): Promise<{ ms: number; first_ms: number; all_ms: number[] }> {
  const first = await timeGpu(fn);
  const ts: number[] = [];
  for (let i = 0; i < 10; i++) ts.push(await timeGpu(fn));
  const s = [...ts].sort((a, b) => a - b);
  return { ms: s[5], first_ms: first, all_ms: ts };
}

const { workloads, inputs } = ssmWorkloads(!!flags.quick);
const results = [];
for (const w of workloads.filter((w) => w.name.includes("_fwd_"))) {
  const cold = await earlier(w.run);
  const sustained = await timeSustained(w.run, flags.quick ? QUICK : FULL);
  const warm = await earlier(w.run);
  results.push({ name: w.name, earlier_cold: cold, sustained, earlier_after_warmup: warm });
  console.error(
    `${w.name}: earlier method cold ${cold.ms.toFixed(4)} ms (first call ${
      cold.first_ms.toFixed(4)
    }), sustained ${sustained.ms.toFixed(4)} ms, earlier method after warm-up ${warm.ms.toFixed(4)} ms`,
  );
}
inputs.dispose();
const text = JSON.stringify({ date: new Date().toISOString(), adapter: adapterName(ctx), results }, null, 2);
if (typeof flags.json === "string") await Deno.writeTextFile(flags.json, text);
console.log(text);
