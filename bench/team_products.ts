/**
 * `deno run -A bench/team_products.ts [--json FILE] [--quick] [--small]`: the decoding products alone at
 * Llama-3.2-1B's shapes (issue #7; `--small`: the bundled teacher's), for 1 to 7 token rows: a decoding step multiplies one row, a
 * verification of K drafted tokens K + 1. Each is `linear` (matmul.wgsl `matvec_team`) or
 * `swigluMatvec` (gate and up in one dispatch), checked against float64 products on sampled outputs
 * before it is timed (sustained warm-up, GPU-timestamp medians: bench/timing.ts). The figure of merit is
 * the weights' bytes over the time (a step reads each weight once, whatever its rows):
 * `bench/pytorch_team_products.py` times F.linear on the same shapes for the reference.
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { Rng } from "../lib/random.ts";
import { swigluMatvec } from "../lib/tensor/decode_fused.ts";
import { linear, teamLanes, type Weight } from "../lib/tensor/matmul.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { timeSustained, TIMING_FLAGS, timingOptions } from "./timing.ts";

const flags = parseFlags("team_products", Deno.args, { json: "string", small: "boolean", ...TIMING_FLAGS });
const opts = timingOptions(flags);
const ctx = await initGpu();
const rng = new Rng(3);
// (name, N outputs, K inputs, swiglu: two weights of N × K)
const shapes: [string, number, number, boolean][] = flags.small
  ? [
    ["q_proj / o_proj", 256, 256, false],
    ["k_proj", 128, 256, false],
    ["gate+up (swiglu)", 688, 256, true],
    ["down_proj", 256, 688, false],
    ["lm_head", 4096, 256, false],
  ]
  : [
    ["q_proj / o_proj", 2048, 2048, false],
    ["k_proj", 512, 2048, false],
    ["gate+up (swiglu)", 8192, 2048, true],
    ["down_proj", 2048, 8192, false],
    ["lm_head", 128256, 2048, false],
  ];
const rowsList = [1, 2, 4, 7];
const rows: Record<string, unknown>[] = [];
for (const [name, N, K, swiglu] of shapes) {
  // A random block of 2^20 values repeated (the values do not change the time; filling 2^28 is slow).
  const block = Float32Array.from({ length: 1 << 20 }, () => rng.uniformRange(-0.05, 0.05));
  const host = () => Float32Array.from({ length: N * K }, (_, i) => block[(i * 7 + 3) % block.length]);
  const wData = host();
  const w: Weight = { parts: [Tensor.from(wData, [N, K])], shape: [N, K] };
  const uData = swiglu ? host() : undefined;
  const u: Weight | undefined = uData ? { parts: [Tensor.from(uData, [N, K])], shape: [N, K] } : undefined;
  try {
    for (const M of rowsList) {
      const x = Float32Array.from({ length: M * K }, () => rng.uniformRange(-1, 1));
      using X = Tensor.from(x, [M, K]);
      const run = () => (u ? swigluMatvec(X, w, u) : linear(X, w));
      // Check 64 sampled outputs against float64 products first.
      using Y = run();
      const got = await Y.toArray();
      let worst = 0;
      for (let s = 0; s < 64; s++) {
        const m = Math.floor(rng.uniformRange(0, M)), n = Math.floor(rng.uniformRange(0, N));
        let g = 0, up = 0, mag = 0;
        for (let k = 0; k < K; k++) {
          g += x[m * K + k] * wData[n * K + k];
          mag += Math.abs(x[m * K + k] * wData[n * K + k]);
          if (uData) up += x[m * K + k] * uData[n * K + k];
        }
        const want = uData ? (g / (1 + Math.exp(-g))) * up : g;
        const scale = uData ? mag * (Math.abs(up) + 1) : mag;
        worst = Math.max(worst, Math.abs(got[m * N + n] - want) / (scale + 1e-30));
      }
      if (!(worst < 1e-5)) throw new Error(`${name} M=${M}: sampled error ${worst.toExponential(2)}`);
      const t = await timeSustained(() => run().dispose(), opts);
      const bytes = (u ? 2 : 1) * N * K * 4;
      const row = {
        product: name,
        M,
        N,
        K,
        lanes: teamLanes(K),
        ms: t.ms,
        ms_single: t.ms_single,
        weight_gb_per_s: bytes / (t.ms * 1e-3) / 1e9,
        max_rel_err: worst,
      };
      rows.push(row);
      console.error(
        `${name} M=${M}: ${(t.ms * 1e3).toFixed(1)} µs, ${row.weight_gb_per_s.toFixed(0)} GB/s of weights`,
      );
    }
  } finally {
    w.parts[0].dispose();
    u?.parts[0].dispose();
  }
}
const out = { date: new Date().toISOString(), adapter: adapterName(ctx), rows };
const json = JSON.stringify(out, null, 2) + "\n";
if (typeof flags.json === "string") await Deno.writeTextFile(flags.json, json);
else console.log(json);
