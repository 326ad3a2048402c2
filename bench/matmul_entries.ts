/**
 * `deno run -A bench/matmul_entries.ts [--json FILE] [--quick] [--warm-ms N] [--samples N]`:
 * the large-tile matmul entry points of kernels/matmul.wgsl side by side, in the NN and NT layouts, each
 * checked before it is timed: 256 sampled entries of C against float64 dot products on the CPU, and the
 * whole of C against the first entry (`main128v4`); the 64×64-tile kernel beside them.
 * Timing as in bench/main.ts (sustained warm-up, GPU-timestamp medians).
 *
 * @module
 */
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { parseFlags } from "../lib/cli/args.ts";
import {
  LARGE_TILE_ENTRIES,
  matmul,
  setLargeTileMin,
  useLargeTileEntry,
  useSmallTilesOnly,
} from "../lib/tensor/matmul.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { Rng } from "../lib/random.ts";
import { timeSustained, TIMING_FLAGS, timingOptions } from "./timing.ts";
import { peakFor } from "./peaks.ts";

const flags = parseFlags("matmul_entries", Deno.args, { json: "string", ...TIMING_FLAGS });
const opts = timingOptions(flags);
const ctx = await initGpu();
const adapter = adapterName(ctx);
const peak = peakFor(adapter);
const rng = new Rng(1);
const results: Record<string, unknown>[] = [];
// (M, N, K); the quick case is ragged. Every size takes each large-tile entry (the tile-count threshold
// is lifted) and the 64×64-tile kernel, so the threshold itself can be checked.
const sizes = flags.quick ? [[2052, 2048, 44]] : [[1024, 1024, 1024], [2048, 2048, 2048], [4096, 4096, 4096]];
const entries = [...LARGE_TILE_ENTRIES, "tile64"] as const;
setLargeTileMin(1);
for (const [M, N, K] of sizes) {
  const a = Float32Array.from({ length: M * K }, () => rng.uniformRange(-1, 1));
  const b = Float32Array.from({ length: K * N }, () => rng.uniformRange(-1, 1));
  using A = Tensor.from(a, [M, K]);
  for (const transB of [false, true]) {
    // B as (K, N), or for NT its transpose stored (N, K)
    const bt = transB
      ? Float32Array.from({ length: K * N }, (_, i) => b[(i % K) * N + Math.floor(i / K)])
      : b;
    using Bm = Tensor.from(bt, transB ? [N, K] : [K, N]);
    let base: Float32Array | undefined;
    for (const entry of entries) {
      const prev = entry === "tile64" ? undefined : useLargeTileEntry(entry);
      useSmallTilesOnly(entry === "tile64");
      using C = matmul(A, Bm, { transB });
      const got = (await C.toArray()) as Float32Array;
      let worst = 0;
      for (let s = 0; s < 256; s++) {
        const m = Math.floor(rng.uniformRange(0, M)), n = Math.floor(rng.uniformRange(0, N));
        let ref = 0, mag = 0;
        for (let k = 0; k < K; k++) {
          ref += a[m * K + k] * b[k * N + n];
          mag += Math.abs(a[m * K + k] * b[k * N + n]);
        }
        worst = Math.max(worst, Math.abs(got[m * N + n] - ref) / (mag + 1e-30));
      }
      let vsBase = 0;
      if (base) {
        for (let i = 0; i < got.length; i++) vsBase = Math.max(vsBase, Math.abs(got[i] - base[i]));
      } else base = got;
      if (!(worst < 1e-5)) {
        throw new Error(`${entry} ${M}x${N}x${K}: sampled error ${worst} (relative to Σ|ab|)`);
      }
      const t = await timeSustained(() => matmul(A, Bm, { transB }).dispose(), opts);
      if (prev) useLargeTileEntry(prev);
      useSmallTilesOnly(false);
      const flops = 2 * M * N * K / (t.ms / 1e3);
      const r = {
        name: `matmul_f32_${transB ? "nt" : "nn"}_${M}x${N}x${K}_${entry}`,
        ...t,
        tflops: flops / 1e12,
        frac_peak_fp32: peak ? flops / peak.fp32_flops : null,
        sampled_rel_err: worst,
        max_abs_diff_vs_first_entry: vsBase,
      };
      results.push(r);
      console.error(
        `${r.name}: ${t.ms.toFixed(4)} ms, ${r.tflops.toFixed(2)} TFLOP/s (err ${worst.toExponential(1)})`,
      );
    }
  }
}
const text = JSON.stringify(
  { date: new Date().toISOString(), adapter, peak: peak ?? null, results },
  null,
  2,
);
if (typeof flags.json === "string") await Deno.writeTextFile(flags.json, text);
console.log(text);
