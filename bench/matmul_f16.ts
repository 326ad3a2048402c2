/**
 * `deno run -A bench/matmul_f16.ts [--json FILE] [--quick] [--sizes 1024,2048,4096] [--warm-ms N]
 * [--samples N]`: the f16-storage product (kernels/matmul_f16.wgsl: f16 A and B, f32 accumulation, f32 C)
 * on square n³ products in the NN (A·B) and NT (x·Wᵀ) layouts, in TFLOP/s, with each entry for aligned
 * operands (`main128v4`: vec4<f16> loads; `main128u32`: u32 words + unpack2x16float; `main128k16`: K
 * slices of 16, eight halves per load), beside the f32 product (`matmul`, which takes kernels/matmul.wgsl's
 * main128v4 from 1024 on) of the same inputs. Each product is checked before it is timed: 256 sampled
 * entries of C against float64 dot products of the f16-rounded inputs (relative to Σ|ab|). Timing as
 * bench/main.ts (bench/timing.ts), after ≥ 0.5 s of the product itself. `--quick`: the quick timing
 * options, n = 2048 and 4096, main128k16 and f32 only. PyTorch's side is bench/pytorch_matmul_f16.py.
 *
 * @module
 */
import { adapterName, gpu, initGpu } from "../lib/gpu/device.ts";
import { parseFlags } from "../lib/cli/args.ts";
import { matmul } from "../lib/tensor/matmul.ts";
import { F16_ALIGNED_ENTRIES, matmulF16, toF16, useF16AlignedEntry } from "../lib/tensor/matmul_f16.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { sync } from "../lib/gpu/commands.ts";
import { Rng } from "../lib/random.ts";
import { timeSustained, type Timing, TIMING_FLAGS, timingOptions } from "./timing.ts";
import { peakFor } from "./peaks.ts";

/** One row: the timing, TFLOP/s and the sampled error of the checked product. */
export type MatmulF16Result = {
  name: string;
  tflops: number;
  frac_peak_fp32: number | null;
  sampled_rel_err: number;
} & Timing;

/** Largest sampled error (relative to Σ|a·b|) a product may show; f32 sums of exact f16 products. */
const MAX_REL_ERR = 1e-5;

/**
 * Times f16 (and, for comparison, f32) n³ products, NN and NT, for each n of `sizes` (default 1024,
 * 2048, 4096; `quick`: 2048 and 4096, and of the f16 entries only the default `main128k16`). Each product
 * first runs for ≥ 0.5 s of wall time (the quick timing options' own 0.1 s warm-up read 2–2.5× slow at
 * n ≥ 2048 on the H200). Throws when a product's sampled check fails.
 */
export async function benchMatmulF16(
  time: (fn: () => void) => Promise<Timing>,
  quick: boolean,
  sizes: number[] = quick ? [2048, 4096] : [1024, 2048, 4096],
): Promise<MatmulF16Result[]> {
  const peak = peakFor(adapterName(gpu()));
  const rng = new Rng(1);
  const out: MatmulF16Result[] = [];
  for (const n of sizes) {
    const a = Float32Array.from({ length: n * n }, () => rng.uniformRange(-1, 1));
    const b = Float32Array.from({ length: n * n }, () => rng.uniformRange(-1, 1));
    const a16 = Float64Array.from(a, (v) => Math.f16round(v));
    const b16 = Float64Array.from(b, (v) => Math.f16round(v));
    using A = Tensor.from(a, [n, n]);
    using B = Tensor.from(b, [n, n]);
    using A16 = toF16(A);
    using B16 = toF16(B);
    for (const transB of [false, true]) {
      const variants = quick ? ["main128k16", "f32"] as const : [...F16_ALIGNED_ENTRIES, "f32"] as const;
      for (const variant of variants) {
        const dtype = variant === "f32" ? "f32" : "f16";
        const run = variant === "f32" ? () => matmul(A, B, { transB }) : () => {
          const prev = useF16AlignedEntry(variant);
          const c = matmulF16(A16, B16, { transB });
          useF16AlignedEntry(prev);
          return c;
        };
        // the check: the f16 product against the rounded inputs, the f32 one against the inputs as given
        const [x, y] = dtype === "f16" ? [a16, b16] : [a, b];
        using C = run();
        const got = await C.toArray();
        let worst = 0;
        for (let s = 0; s < 256; s++) {
          const m = Math.floor(rng.uniformRange(0, n)), j = Math.floor(rng.uniformRange(0, n));
          let ref = 0, mag = 0;
          for (let k = 0; k < n; k++) {
            const p = x[m * n + k] * (transB ? y[j * n + k] : y[k * n + j]);
            ref += p;
            mag += Math.abs(p);
          }
          worst = Math.max(worst, Math.abs(got[m * n + j] - ref) / (mag + 1e-30));
        }
        const name = `matmul_${dtype}_${transB ? "nt" : "nn"}_${n}${variant === "f32" ? "" : `_${variant}`}`;
        if (!(worst < MAX_REL_ERR)) throw new Error(`${name}: sampled error ${worst} (relative to Σ|ab|)`);
        const t0 = performance.now();
        while (performance.now() - t0 < 500) {
          for (let i = 0; i < 8; i++) run().dispose();
          await sync();
        }
        const t = await time(() => run().dispose());
        const flops = 2 * n ** 3 / (t.ms / 1e3);
        out.push({
          name,
          ...t,
          tflops: flops / 1e12,
          frac_peak_fp32: peak ? flops / peak.fp32_flops : null,
          sampled_rel_err: worst,
        });
        console.error(
          `${name}: ${t.ms.toFixed(4)} ms, ${(flops / 1e12).toFixed(2)} TFLOP/s (err ${
            worst.toExponential(1)
          })`,
        );
      }
    }
  }
  return out;
}

if (import.meta.main) {
  const flags = parseFlags("matmul_f16", Deno.args, { json: "string", sizes: "string", ...TIMING_FLAGS });
  const opts = timingOptions(flags);
  const ctx = await initGpu();
  if (!ctx.hasF16) throw new Error("this adapter has no shader-f16 feature");
  const sizes = typeof flags.sizes === "string" ? flags.sizes.split(",").map(Number) : undefined;
  const results = await benchMatmulF16((fn) => timeSustained(fn, opts), !!flags.quick, sizes);
  const text = JSON.stringify(
    {
      date: new Date().toISOString(),
      adapter: adapterName(ctx),
      peak: peakFor(adapterName(ctx)) ?? null,
      method: { ...opts, note: "ms: median GPU time per call after a sustained warm-up (bench/timing.ts)" },
      results,
    },
    null,
    2,
  );
  if (typeof flags.json === "string") await Deno.writeTextFile(flags.json, text);
  console.log(text);
}
