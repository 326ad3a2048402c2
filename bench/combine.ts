/**
 * `deno run -A bench/combine.ts --dir DIR --out FILE`: one JSON of a GPU run from the files
 * bench/gpu_run.sh leaves in DIR (deno_bench.json, torch_reference.json, torch_ssm.json and, when
 * present, deno_matmul_entries.json, deno_scan_chunks.json and method_check.json): our times, PyTorch's, the ratios
 * (PyTorch's time over ours: > 1 means the toolkit is faster), the adapter and the fraction of the
 * GPU's datasheet peak each kernel reaches. bench/readme_table.ts prints the README's table from it.
 *
 * @module
 */
import { parseFlags, required } from "../lib/cli/args.ts";
import { UsageError } from "../lib/errors.ts";
import { peakFor } from "./peaks.ts";

/** A timed row of any of the inputs (the fields this script reads). */
export interface Row {
  name: string;
  ms: number;
  ms_single?: number | null;
  tflops?: number;
  gb_per_s?: number;
  bytes?: number;
  error?: string;
}

/** One comparison of the combined JSON. */
export interface Comparison {
  /** What is compared, in words. */
  work: string;
  /** Our row (or rows, summed: forward + backward) and its time. */
  ours: string;
  ours_ms: number;
  /** PyTorch's row and its time. */
  pytorch: string;
  pytorch_ms: number;
  /** pytorch_ms / ours_ms: > 1 means the toolkit is faster. */
  speedup: number;
  /** Our throughput as a fraction of the datasheet peak (bandwidth or FP32 FLOP/s), when it applies. */
  frac_peak?: number;
  /** Which peak frac_peak refers to. */
  peak_kind?: "bytes_per_s" | "fp32_flops";
}

/** The combined JSON. */
export interface Combined {
  date: string;
  adapter: string;
  torch_device: string;
  torch_version: string;
  peak: ReturnType<typeof peakFor> | null;
  /** Measured device-copy bandwidth (PyTorch, read + write), bytes/s. */
  copy_bytes_per_s: number | null;
  method: unknown;
  comparisons: Comparison[];
  deno: Row[];
  pytorch: Row[];
  matmul_entries?: Row[];
  scan_chunks?: Row[];
  method_check?: unknown;
}

async function readJson(path: string, optional = false): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (optional && e instanceof Deno.errors.NotFound) return undefined;
    throw new UsageError("combine", `cannot read ${path}: ${(e as Error).message}`);
  }
}

/** Builds the comparisons from our rows and PyTorch's. */
export function compare(deno: Row[], torch: Row[], peak: ReturnType<typeof peakFor>): Comparison[] {
  const ours = new Map(deno.map((r) => [r.name, r]));
  const theirs = new Map(torch.filter((r) => !r.error).map((r) => [r.name, r]));
  const out: Comparison[] = [];
  const add = (work: string, our: string[], their: string, frac?: (o: Row[], ms: number) => number) => {
    const o = our.map((n) => ours.get(n));
    const t = theirs.get(their);
    if (o.some((r) => !r) || !t) return;
    const rows = o as Row[];
    const ms = rows.reduce((a, r) => a + r.ms, 0);
    const c: Comparison = {
      work,
      ours: our.join(" + "),
      ours_ms: ms,
      pytorch: their,
      pytorch_ms: t.ms,
      speedup: t.ms / ms,
    };
    if (frac && peak) {
      c.frac_peak = frac(rows, ms);
      c.peak_kind = rows[0].tflops !== undefined ? "fp32_flops" : "bytes_per_s";
    }
    out.push(c);
  };
  const bw = (rows: Row[], ms: number) =>
    rows.reduce((a, r) => a + (r.bytes ?? 0), 0) / (ms / 1e3) / peak!.bytes_per_s;
  const fl = (rows: Row[]) => rows[0].tflops! * 1e12 / peak!.fp32_flops;
  for (const r of deno) {
    const mm = r.name.match(/^matmul_f32_(nn|nt)_(\d+)_tile128$/);
    if (mm) {
      add(`f32 matmul ${mm[2]}³ (${mm[1].toUpperCase()})`, [r.name], `matmul_f32_${mm[1]}_${mm[2]}`, fl);
    }
    if (r.name.startsWith("brown_llama_6m_forward_")) {
      add(`brown-llama-6m forward ${r.name.split("_").slice(-2).join(" ")}`, [r.name], r.name);
    }
    const ss = r.name.match(/^selective_scan_fwd_(.*)$/);
    if (ss) {
      const bwd = `selective_scan_bwd_${ss[1]}`;
      for (const impl of ["eager_loop", "official_cuda"]) {
        add(`selective scan fwd ${ss[1]} vs ${impl}`, [r.name], `selective_scan_fwd_${impl}_${ss[1]}`, bw);
        add(
          `selective scan fwd+bwd ${ss[1]} vs ${impl}`,
          [r.name, bwd],
          `selective_scan_fwdbwd_${impl}_${ss[1]}`,
          bw,
        );
      }
    }
    const sd = r.name.match(/^ssd_fwd_(.*)_Q64$/);
    if (sd) {
      const bwd = `ssd_bwd_${sd[1]}_Q64`;
      for (const impl of ["eager_chunked", "compiled_chunked", "official_triton"]) {
        add(`SSD fwd ${sd[1]} vs ${impl}`, [r.name], `ssd_fwd_${impl}_${sd[1]}`, bw);
        add(`SSD fwd+bwd ${sd[1]} vs ${impl}`, [r.name, bwd], `ssd_fwdbwd_${impl}_${sd[1]}`, bw);
      }
    }
  }
  return out;
}

/** The script's work; bad input is a UsageError, printed as one `error: …` line (exit code 2). */
async function main(): Promise<void> {
  const flags = parseFlags("combine", Deno.args, { dir: "string", out: "string" });
  const dir = required("combine", flags, "dir");
  const deno = (await readJson(`${dir}/deno_bench.json`))!;
  const ref = (await readJson(`${dir}/torch_reference.json`))!;
  const ssm = (await readJson(`${dir}/torch_ssm.json`))!;
  const entries = await readJson(`${dir}/deno_matmul_entries.json`, true);
  const chunks = await readJson(`${dir}/deno_scan_chunks.json`, true);
  const check = await readJson(`${dir}/method_check.json`, true);
  const adapter = deno.adapter as string;
  const peak = peakFor(adapter);
  const torch = [...ref.results as Row[], ...ssm.results as Row[]];
  const copy = torch.find((r) => r.name === "device_copy_1GiB");
  const combined: Combined = {
    date: deno.date as string,
    adapter,
    torch_device: ref.device as string,
    torch_version: ref.torch as string,
    peak: peak ?? null,
    copy_bytes_per_s: copy?.gb_per_s ? copy.gb_per_s * 1e9 : null,
    method: deno.method,
    comparisons: compare(deno.results as Row[], torch, peak),
    deno: deno.results as Row[],
    pytorch: torch,
    ...(entries ? { matmul_entries: entries.results as Row[] } : {}),
    ...(chunks ? { scan_chunks: chunks.results as Row[] } : {}),
    ...(check ? { method_check: check.results } : {}),
  };
  const text = JSON.stringify(combined, null, 2) + "\n";
  if (typeof flags.out === "string") await Deno.writeTextFile(flags.out, text);
  else console.log(text);
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
