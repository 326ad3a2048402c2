/**
 * `deno run -A bench/scan_passes.ts [--chunk Q] [--batch B] [--quick]`: GPU time of each pass of the three-pass
 * selective scan forward at research size (B4 L2048 D2048 N16, or another batch B; z, D skip, δ bias, softplus): the whole
 * forward, then `chunk_state`, `chunk_carry` and `chunk_out` each replayed alone from one capture under
 * sustained load (bench/timing.ts `kernelBreakdown`). Prints one JSON line (ms).
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { initGpu } from "../lib/gpu/device.ts";
import { selectiveScan } from "../lib/ssm/selective_scan.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { kernelBreakdown, timeSustained } from "./timing.ts";
import { randomArray } from "../tests/_assert.ts";

const flags = parseFlags("scan_passes", Deno.args, { chunk: "number", quick: "boolean", batch: "number" });
await initGpu();
const q = (flags.chunk as number | undefined) ?? 128;
const [B, L, D, N] = flags.quick
  ? [1, 256, 256, 16]
  : [(flags.batch as number | undefined) ?? 4, 2048, 2048, 16];
// u, δ, z, B, C, D, δ bias uniform in [−1, 1); A in (−1.5, −0.5] (decaying states).
let seed = 0;
const rand = (...shape: number[]) => Tensor.from(randomArray(shape.reduce((a, b) => a * b), ++seed), shape);
const inp = {
  u: rand(B, D, L),
  delta: rand(B, D, L),
  z: rand(B, D, L),
  A: Tensor.from(randomArray(D * N, 99, 0.5).map((v) => v - 1), [D, N]),
  B: rand(B, N, L),
  C: rand(B, N, L),
  D: rand(D),
  deltaBias: rand(D),
};
const opts = { warmMs: 300, sampleMs: 10, samples: 5, singles: 1 };
const { total_us, kernels } = await kernelBreakdown(() => {
  const r = selectiveScan(inp, { deltaSoftplus: true, chunkLength: q });
  r.y.dispose();
  r.lastState.dispose();
}, (fn) => timeSustained(fn, opts));
const row: Record<string, number | string> = {
  shape: `B${B}_L${L}_D${D}_N${N}`,
  q,
  forward: total_us / 1000,
};
for (const k of kernels) row[k.kernel] = k.us / 1000;
console.log(JSON.stringify(row));
