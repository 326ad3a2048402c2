/**
 * `deno run -A bench/scan_chunks.ts [--json FILE] [--quick] [--warm-ms N] [--samples N]`:
 * the selective scan forward at research size (B4 L2048 D2048 N16) for several chunk lengths Q: Q sets how many workgroups share the time axis
 * (L / Q chunks per channel block), so it trades occupancy against the cross-chunk carry. Each Q's
 * output is compared with Q = 128's before it is timed (sustained warm-up, GPU-timestamp medians).
 *
 * @module
 */
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { parseFlags } from "../lib/cli/args.ts";
import { selectiveScan } from "../lib/ssm/selective_scan.ts";
import { Rng } from "../lib/random.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { timeSustained, TIMING_FLAGS, timingOptions } from "./timing.ts";
import { peakFor } from "./peaks.ts";

const flags = parseFlags("scan_chunks", Deno.args, { json: "string", ...TIMING_FLAGS });
const ctx = await initGpu();
const adapter = adapterName(ctx);
const peak = peakFor(adapter);
const [B, L, D, N] = flags.quick ? [1, 256, 256, 16] : [4, 2048, 2048, 16];
const rng = new Rng(0);
const rand = (shape: number[], lo = -1, hi = 1) =>
  Tensor.from(
    Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => rng.uniformRange(lo, hi)),
    shape,
  );
using u = rand([B, D, L]);
using delta = rand([B, D, L]);
using z = rand([B, D, L]);
using A = rand([D, N], -1.5, -0.5);
using Bm = rand([B, N, L]);
using Cm = rand([B, N, L]);
using Dv = rand([D]);
using bias = rand([D]);
const inp = { u, delta, A, B: Bm, C: Cm, D: Dv, z, deltaBias: bias };
const bytes = (4 * B * D * L + 2 * B * N * L) * 4;
const results = [];
let ref: Float32Array | undefined;
for (const q of [128, 32, 64, 256, 512]) {
  const r = selectiveScan(inp, { deltaSoftplus: true, chunkLength: q });
  const y = (await r.y.toArray()) as Float32Array;
  r.y.dispose();
  r.lastState.dispose();
  let diff = 0, mag = 0;
  ref ??= y;
  for (let i = 0; i < y.length; i++) {
    diff = Math.max(diff, Math.abs(y[i] - ref[i]));
    mag = Math.max(mag, Math.abs(ref[i]));
  }
  const t = await timeSustained(() => {
    const o = selectiveScan(inp, { deltaSoftplus: true, chunkLength: q });
    o.y.dispose();
    o.lastState.dispose();
  }, timingOptions(flags));
  const bw = bytes / (t.ms / 1e3);
  results.push({
    name: `selective_scan_fwd_B${B}_L${L}_D${D}_N${N}_Q${q}`,
    ...t,
    bytes,
    gb_per_s: bw / 1e9,
    frac_peak_bw: peak ? bw / peak.bytes_per_s : null,
    max_abs_diff_vs_q128: diff,
    max_abs_y: mag,
  });
  console.error(
    `Q=${q}: ${t.ms.toFixed(4)} ms, ${(bw / 1e9).toFixed(0)} GB/s (max |Δy| vs Q=128: ${
      diff.toExponential(1)
    })`,
  );
}
const text = JSON.stringify(
  { date: new Date().toISOString(), adapter, peak: peak ?? null, results },
  null,
  2,
);
if (typeof flags.json === "string") await Deno.writeTextFile(flags.json, text);
console.log(text);
