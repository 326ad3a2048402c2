/**
 * `deno run -A bench/scan_patterns.ts [--json FILE] [--batch B] [--quick] [--warm-ms MS] [--samples N]`:
 * the memory floor of the selective scan forward's access patterns at research size (B·D = 4 · 2048
 * rows of L = 2048 steps, issue #3), from the benchmark-only kernels of `kernels/access_patterns.wgsl`
 * (`bench/access_patterns.ts`): each invocation owns 128 steps of a row and only adds them up, with the
 * loads of the shipped scan's chunk passes (`rows_*`), lanes over chunks instead of rows (`chunks_*`),
 * or coalesced (`flat_*`); `_state` reads u and δ (chunk_state's traffic), `_out` also reads z and
 * writes y (chunk_out's). Prints JSON: per entry the GPU time (sustained, timestamp medians) and bytes
 * per second.
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { PATTERN_ENTRIES, patternBytes, patternGrid, runPattern } from "./access_patterns.ts";
import { timeSustained, TIMING_FLAGS, timingOptions } from "./timing.ts";

const flags = parseFlags("scan_patterns", Deno.args, { json: "string", batch: "number", ...TIMING_FLAGS });
const opts = timingOptions(flags);
const ctx = await initGpu();
const [rows, L] = [((flags.batch as number | undefined) ?? 4) * 2048, 2048];
// Uninitialised (pooled) buffers: their contents do not matter to the timing.
using u = Tensor.empty([rows, L]);
using delta = Tensor.empty([rows, L]);
using z = Tensor.empty([rows, L]);
using y = Tensor.empty([rows, L]);
const sinkLen = Math.max(...PATTERN_ENTRIES.map((e) => patternGrid(e, rows, L).sink));
using sink = Tensor.empty([sinkLen]);
const entries = [];
for (const entry of PATTERN_ENTRIES) {
  const t = await timeSustained(() => runPattern(entry, rows, L, { u, delta, z, y, sink }), opts);
  const bytes = patternBytes(entry, rows, L);
  entries.push({ entry, us: +(t.ms * 1000).toFixed(1), tb_per_s: +(bytes / t.ms / 1e9).toFixed(2), bytes });
}
const json = JSON.stringify({ adapter: adapterName(ctx), rows, L, entries }, null, 2) + "\n";
if (typeof flags.json === "string") await Deno.writeTextFile(flags.json, json);
else console.log(json);
