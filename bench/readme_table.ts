/**
 * `deno run -A bench/readme_table.ts FILE`: prints the README's performance table (markdown) from a
 * combined results JSON of bench/combine.ts: for each comparison our time, PyTorch's, the speedup
 * (PyTorch's time over ours) and the fraction of the GPU's datasheet peak our kernel reaches.
 * `--only REGEX` keeps the comparisons whose work matches (a table per section of the README).
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { UsageError } from "../lib/errors.ts";
import { type Combined, type Comparison, pytorchLabel } from "./combine.ts";

/** Milliseconds with three significant digits (at least two decimals below 10 ms). */
function fmtMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3);
}

/** The markdown table of a combined results file (the comparisons whose work matches `only`, if given). */
export function readmeTable(c: Combined, only?: RegExp): string {
  const rows = [
    "| Work | This toolkit | PyTorch, same GPU | PyTorch ÷ toolkit | Toolkit, fraction of peak |",
    "| --- | --- | --- | --- | --- |",
  ];
  // Bandwidth-bound rows also as a fraction of the device copy PyTorch measured in the same run.
  const ofCopy = (x: Comparison) =>
    c.copy_bytes_per_s && x.frac_peak !== undefined
      ? ` (${
        (100 * x.frac_peak * c.peak!.bytes_per_s / c.copy_bytes_per_s).toFixed(1)
      }% of the measured copy)`
      : "";
  const peakWord = (x: Comparison) =>
    x.frac_peak === undefined
      ? "—"
      : x.peak_kind === "fp32_flops"
      ? `${(100 * x.frac_peak).toFixed(1)}% of ${(c.peak!.fp32_flops / 1e12).toFixed(1)} TFLOP/s FP32`
      : `${(100 * x.frac_peak).toFixed(1)}% of ${(c.peak!.bytes_per_s / 1e12).toFixed(2)} TB/s${ofCopy(x)}`;
  for (const x of c.comparisons) {
    if (only && !only.test(x.work)) continue;
    const work = x.work.replace(/ vs \w+$/, "");
    rows.push(
      `| ${work} | ${fmtMs(x.ours_ms)} ms | ${fmtMs(x.pytorch_ms)} ms, ${pytorchLabel(x.pytorch)} | ${
        x.speedup.toFixed(2)
      }× | ${peakWord(x)} |`,
    );
  }
  return rows.join("\n");
}

/** The script's work; bad input is a UsageError, printed as one `error: …` line (exit code 2). */
async function main(): Promise<void> {
  const [file, ...rest] = Deno.args;
  const flags = parseFlags("readme_table", rest, { only: "string" });
  if (!file) {
    throw new UsageError("readme_table", "usage: deno run -A bench/readme_table.ts FILE [--only REGEX]");
  }
  let only: RegExp | undefined;
  try {
    only = typeof flags.only === "string" ? new RegExp(flags.only) : undefined;
  } catch (e) {
    throw new UsageError("readme_table", `--only: ${(e as Error).message}`);
  }
  let c: Combined;
  try {
    c = JSON.parse(await Deno.readTextFile(file));
  } catch (e) {
    throw new UsageError("readme_table", `cannot read ${file}: ${(e as Error).message}`);
  }
  const copy = c.copy_bytes_per_s
    ? `; device copy (PyTorch) ${(c.copy_bytes_per_s / 1e12).toFixed(2)} TB/s`
    : "";
  const m = c.method as { warmMs?: number } | undefined;
  const warm = m?.warmMs !== undefined ? `${(m.warmMs / 1000).toFixed(1)} s` : "1.5 s";
  const hasSsm = c.comparisons.some((x) => /^(selective scan|SSD)/.test(x.work));
  const ssmFrom = c.torch_ssm_from && hasSsm
    ? ` PyTorch's selective-scan and SSD rows are from ${c.torch_ssm_from}.`
    : "";
  console.log(
    `${c.adapter}, ${
      c.date.slice(0, 10)
    }; PyTorch ${c.torch_version}${copy}. Medians of GPU timestamps after ` +
      `≥ ${warm} of sustained load per row (\`bench/timing.ts\`, \`bench/torch_timing.py\`); f32, TF32 off; ` +
      `training steps: host wall clock per step where both sides measured it.${ssmFrom}\n`,
  );
  console.log(readmeTable(c, only));
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`error: ${e.message}`);
    Deno.exit(2);
  }
}
