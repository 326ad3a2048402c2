/**
 * `deno task bench [--json FILE] [--quick] [--sections LIST]`: GPU timings of the toolkit's kernels, the
 * teacher's forward pass, attention prefill, f16-storage matmul, training and distillation steps, as
 * JSON. Sections (default all, in this order): matmul, forward, ssm, scan_variants, attention,
 * matmul_f16, steps, scaling. Each figure is the median GPU time per call over repeated timestamped samples
 * taken after a sustained warm-up (bench/timing.ts: ≥ 1.5 s of GPU work first, because the GPU's clocks
 * ramp up only under load); `ms_single` keeps the one-call-from-idle time beside it. Run it on the GPU
 * machine through the device recipe (README), in the same run as `bench/pytorch_reference.py` and
 * `bench/pytorch_ssm.py`; `bench/combine.ts` then puts both sides, the ratios and the fractions of the
 * GPU's peak into one JSON.
 *
 * @module
 */
import { adapterName, gpu, initGpu } from "../lib/gpu/device.ts";
import { parseFlags } from "../lib/cli/args.ts";
import { matmul, useSmallTilesOnly } from "../lib/tensor/matmul.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { LlamaModel } from "../lib/models/llama.ts";
import { DEFAULT_MODEL_DIR } from "../lib/models/default_model.ts";
import { benchSsm } from "./ssm.ts";
import { benchScanVariants } from "./scan_variants.ts";
import { benchAttention } from "./attention.ts";
import { benchMatmulF16 } from "./matmul_f16.ts";
import { benchSteps } from "./steps.ts";
import { benchScaling } from "./scaling.ts";
import { timeSustained, type Timing, TIMING_FLAGS, timingOptions } from "./timing.ts";
import { peakFor } from "./peaks.ts";
import { UsageError } from "../lib/errors.ts";

const SECTIONS = ["matmul", "forward", "ssm", "scan_variants", "attention", "matmul_f16", "steps", "scaling"];
const flags = parseFlags("bench", Deno.args, { json: "string", sections: "string", ...TIMING_FLAGS });
const opts = timingOptions(flags);
const time = (fn: () => void): Promise<Timing> => timeSustained(fn, opts);
const sections = typeof flags.sections === "string" ? flags.sections.split(",") : SECTIONS;
for (const s of sections) {
  if (!SECTIONS.includes(s)) {
    throw new UsageError("bench", `--sections: unknown section "${s}" (known: ${SECTIONS.join(", ")})`);
  }
}
const want = (s: string) => sections.includes(s);

const ctx = await initGpu();
const adapter = adapterName(ctx);
const peak = peakFor(adapter);
const results: Record<string, unknown>[] = [];
// The report as it stands; with --json it is rewritten after every row, so a run stopped by a time
// limit keeps what it measured.
const reportText = () =>
  JSON.stringify(
    {
      date: new Date().toISOString(),
      adapter,
      peak: peak ?? null,
      method: { ...opts, note: "ms: median GPU time per call after a sustained warm-up (bench/timing.ts)" },
      limits: { maxBindingBytes: gpu().maxBindingBytes },
      results,
    },
    null,
    2,
  );
const log = (r: Record<string, unknown>) => {
  results.push(r);
  if (typeof flags.json === "string") Deno.writeTextFileSync(flags.json, reportText());
  const single = typeof r.ms_single === "number"
    ? ` (single call from idle ${r.ms_single.toFixed(4)} ms)`
    : "";
  console.error(`${r.name}: ${(r.ms as number).toFixed(4)} ms${single}`);
};

// Square products in both layouts the models use: NN (A · B) and NT (x · Wᵀ, a linear layer), with
// the 64×64-tile kernel and with the 128×128-tile one that large products take.
for (const n of !want("matmul") ? [] : flags.quick ? [256] : [1024, 2048, 4096]) {
  using a = Tensor.from(new Float32Array(n * n).fill(0.5), [n, n]);
  using b = Tensor.from(new Float32Array(n * n).fill(0.25), [n, n]);
  for (const small of [true, false]) {
    useSmallTilesOnly(small);
    for (const transB of [false, true]) {
      const t = await time(() => matmul(a, b, { transB }).dispose());
      const flops = 2 * n ** 3 / (t.ms / 1e3);
      log({
        name: `matmul_f32_${transB ? "nt" : "nn"}_${n}_${small ? "tile64" : "tile128"}`,
        ...t,
        tflops: flops / 1e12,
        frac_peak_fp32: peak ? flops / peak.fp32_flops : null,
      });
    }
  }
  useSmallTilesOnly(false);
}

if (want("forward")) {
  using model = await LlamaModel.load(DEFAULT_MODEL_DIR);
  const [B, T] = flags.quick ? [2, 64] : [16, 256];
  const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % model.config.vocabSize);
  using x = Tensor.from(ids, [B, T], "i32");
  const t = await time(() => model.forward(x).logits.dispose());
  log({ name: `brown_llama_6m_forward_B${B}_T${T}`, ...t, tokens_per_s: B * T / (t.ms / 1e3) });
}

for (const r of want("ssm") ? await benchSsm(time, !!flags.quick) : []) {
  log({ ...r, frac_peak_bw: peak ? r.gb_per_s * 1e9 / peak.bytes_per_s : null });
}
// The selective scan forward: the one-pass walk (the default) beside the three passes at Q = 128 and 64 (issue #3).
if (want("scan_variants")) {
  for (const r of await benchScanVariants(time, { small: !!flags.quick, peakBytesPerS: peak?.bytes_per_s })) {
    log({ ...r });
  }
}
if (want("attention")) {
  // Prefill at B 1 and 8 (the ends of the range), then the tile sweep, decode shapes and the autograd
  // op while 45 s last.
  for (const r of await benchAttention(time, !!flags.quick, { batches: [1, 8], budgetMs: 45_000 })) {
    log({ ...r, frac_peak_fp32: peak ? r.tflop_per_s * 1e12 / peak.fp32_flops : null });
  }
}
if (want("matmul_f16")) {
  for (const r of await benchMatmulF16(time, !!flags.quick, flags.quick ? [256] : undefined)) log({ ...r });
}
// Training and distillation steps (1B-shaped ones are timed over single calls, see bench/steps.ts).
if (want("steps")) {
  for (const r of await benchSteps(time, !!flags.quick)) {
    if ("ms" in r && Number.isFinite(r.ms)) log({ ...r });
    else results.push({ ...r });
  }
}
if (want("scaling")) {
  for (const r of await benchScaling(time, !!flags.quick)) {
    if ("ms" in r) log({ ...r });
    else results.push({ ...r });
  }
}

if (typeof flags.json === "string") Deno.writeTextFileSync(flags.json, reportText());
console.log(reportText());
