/**
 * `deno run -A bench/scan_variants.ts [--json FILE] [--quick] [--warm-ms N] [--samples N] [--small]`:
 * the Mamba-1 selective scan forward at research size (B4 L2048 D2048 N16, z, D skip, δ bias, softplus; the shapes of bench/ssm.ts;
 * `--small`: B1 L256 D256): the three-pass forward at Q = 128 and 64 and the one-pass walk (the default
 * of `selectiveScan` at these sizes; bench/scan_walk.ts sweeps its launch choices). Each variant's y and
 * last state are first compared with the three-pass output (Q = 128) on the GPU (max |Δ| over max |y|, and the largest element-wise relative difference with a floor
 * of 1e-3 · max |y|), then timed under sustained load (bench/timing.ts; `--quick`: its short settings).
 *
 * @module
 */
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { parseFlags } from "../lib/cli/args.ts";
import { selectiveScan } from "../lib/ssm/selective_scan.ts";
import { Rng } from "../lib/random.ts";
import { readTensors, Tensor } from "../lib/tensor/tensor.ts";
import { timeSustained, type Timing, TIMING_FLAGS, timingOptions } from "./timing.ts";
import { peakFor } from "./peaks.ts";

/** One row: a variant's timing, bandwidth and its difference from the three-pass forward. */
export type ScanVariantResult = {
  name: string;
  bytes: number;
  gb_per_s: number;
  frac_peak_bw: number | null;
  /** max |y − y₃| / max |y₃| and max_i |y_i − y₃_i| / max(|y₃_i|, 1e-3 max |y₃|); the same for the state. */
  max_rel_diff_y: number;
  max_elem_rel_diff_y: number;
  max_rel_diff_last_state: number;
} & Timing;

function diff(a: Float32Array, ref: Float32Array): { norm: number; elem: number } {
  let mag = 0;
  for (let i = 0; i < ref.length; i++) mag = Math.max(mag, Math.abs(ref[i]));
  let d = 0, e = 0;
  for (let i = 0; i < ref.length; i++) {
    const x = Math.abs(a[i] - ref[i]);
    d = Math.max(d, x);
    e = Math.max(e, x / Math.max(Math.abs(ref[i]), 1e-3 * mag));
  }
  return { norm: d / mag, elem: e };
}

/**
 * Times the three-pass forward and the one-pass walk at research size (or B1 L256 D256 when `small`)
 * and checks each against the three-pass output.
 */
export async function benchScanVariants(
  time: (fn: () => void) => Promise<Timing>,
  opts: { small?: boolean; peakBytesPerS?: number } = {},
): Promise<ScanVariantResult[]> {
  const { small = false, peakBytesPerS } = opts;
  const [B, L, D, N] = small ? [1, 256, 256, 16] : [4, 2048, 2048, 16];
  const rng = new Rng(0);
  const stack = new DisposableStack();
  const rand = (shape: number[], lo = -1, hi = 1) =>
    stack.use(Tensor.from(
      Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => rng.uniformRange(lo, hi)),
      shape,
    ));
  const [u, delta, z] = [rand([B, D, L]), rand([B, D, L]), rand([B, D, L])];
  const inp = {
    u,
    delta,
    z,
    A: rand([D, N], -1.5, -0.5),
    B: rand([B, N, L]),
    C: rand([B, N, L]),
    D: rand([D]),
    deltaBias: rand([D]),
  };
  using _ = stack;
  const scan = { deltaSoftplus: true };
  // reads u, δ, z (B, D, L) and B, C (B, N, L); writes y (B, D, L) (as bench/ssm.ts)
  const bytes = (4 * B * D * L + 2 * B * N * L) * 4;
  const variants: { name: string; run: () => { y: Tensor; lastState: Tensor } }[] = [
    { name: "three_pass_Q128", run: () => selectiveScan(inp, { ...scan, chunkLength: 128 }) },
    { name: "three_pass_Q64", run: () => selectiveScan(inp, { ...scan, chunkLength: 64 }) },
    { name: "walk", run: () => selectiveScan(inp, scan) },
  ];
  let ref: Float32Array[] | undefined;
  const out: ScanVariantResult[] = [];
  for (const v of variants) {
    const r = v.run();
    const got = (await readTensors([r.y, r.lastState])) as Float32Array[];
    r.y.dispose();
    r.lastState.dispose();
    ref ??= got;
    const dy = diff(got[0], ref[0]);
    const ds = diff(got[1], ref[1]);
    const t = await time(() => {
      const x = v.run();
      x.y.dispose();
      x.lastState.dispose();
    });
    const bw = bytes / (t.ms / 1e3);
    out.push({
      name: `selective_scan_fwd_B${B}_L${L}_D${D}_N${N}_${v.name}`,
      bytes,
      gb_per_s: bw / 1e9,
      frac_peak_bw: peakBytesPerS ? bw / peakBytesPerS : null,
      max_rel_diff_y: dy.norm,
      max_elem_rel_diff_y: dy.elem,
      max_rel_diff_last_state: ds.norm,
      ...t,
    });
    console.error(
      `${v.name}: ${t.ms.toFixed(4)} ms (min ${t.ms_min.toFixed(4)}), ${(bw / 1e9).toFixed(0)} GB/s` +
        `${peakBytesPerS ? ` = ${(100 * bw / peakBytesPerS).toFixed(1)}% of peak` : ""}; vs three-pass: ` +
        `y ${dy.norm.toExponential(2)} (elem ${dy.elem.toExponential(2)}), state ${ds.norm.toExponential(2)}`,
    );
  }
  return out;
}

if (import.meta.main) {
  const flags = parseFlags("scan_variants", Deno.args, {
    json: "string",
    small: "boolean",
    ...TIMING_FLAGS,
  });
  const ctx = await initGpu();
  const adapter = adapterName(ctx);
  const peak = peakFor(adapter);
  const o = timingOptions(flags);
  const results = await benchScanVariants((fn) => timeSustained(fn, o), {
    small: !!flags.small,
    peakBytesPerS: peak?.bytes_per_s,
  });
  const text = JSON.stringify(
    { date: new Date().toISOString(), adapter, peak: peak ?? null, results },
    null,
    2,
  );
  if (typeof flags.json === "string") await Deno.writeTextFile(flags.json, text);
  console.log(text);
}
