/**
 * `deno run -A bench/combine.ts --dir DIR --out FILE [--torch-ssm FILE]`: one JSON of a GPU run from the
 * files bench/gpu_run.sh leaves in DIR (deno_bench.json, torch_reference.json, torch_ssm.json and, when
 * present, torch_attention.json, torch_steps_6m.json, torch_steps_1b.json, torch_matmul_f16.json,
 * deno_matmul_entries.json, deno_scan_chunks.json and method_check.json; `--torch-ssm` takes PyTorch's
 * SSM rows from an earlier run's file — its torch_ssm.json or its combined JSON — named in the output): our times, PyTorch's, the ratios
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
  tflop_per_s?: number;
  gb_per_s?: number;
  /** Host wall-clock ms per call over consecutive calls (training steps). */
  wall_ms?: number;
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

/** What PyTorch ran for a comparison, in words (the README's column). */
export function pytorchLabel(name: string): string {
  if (name.startsWith("torch_matmul_fp16")) return "cuBLAS fp16 inputs (tensor cores)";
  if (name.startsWith("matmul_")) return "cuBLAS (torch.matmul)";
  if (name.startsWith("brown_llama")) return "transformers, eager";
  if (name.startsWith("attention_torch_sdpa")) return "SDPA, memory-efficient kernel, f32";
  if (name.startsWith("attention_torch_eager")) return "eager softmax(QKᵀ)V";
  if (/_compiled$/.test(name)) return "torch.compile (SDPA attention)";
  if (/^distill_.*_eager$/.test(name)) return "eager, MambaInLlama's layer code";
  if (/^distill_.*_sdpa$/.test(name)) return "eager, SDPA attention";
  if (name.startsWith("llama_train_")) return "eager, SDPA attention";
  if (name.includes("eager_loop")) return "eager loop over L (as `selective_scan_ref`)";
  if (name.includes("official_cuda")) return "official CUDA kernel (mamba_ssm)";
  if (name.includes("official_triton")) return "official Triton kernel (mamba_ssm)";
  if (name.includes("compiled_chunked")) return "chunked, torch.compile";
  if (name.includes("eager_chunked")) return "chunked, eager";
  return name;
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
  /** When PyTorch's SSM rows come from an earlier run's file: which. */
  torch_ssm_from?: string;
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
      c.peak_kind = (rows[0].tflops ?? rows[0].tflop_per_s) !== undefined ? "fp32_flops" : "bytes_per_s";
    }
    out.push(c);
  };
  const bw = (rows: Row[], ms: number) =>
    rows.reduce((a, r) => a + (r.bytes ?? 0), 0) / (ms / 1e3) / peak!.bytes_per_s;
  const fl = (rows: Row[]) => (rows[0].tflops ?? rows[0].tflop_per_s)! * 1e12 / peak!.fp32_flops;
  for (const r of deno) {
    const mm = r.name.match(/^matmul_f32_(nn|nt)_(\d+)_tile128$/);
    if (mm) {
      add(`f32 matmul ${mm[2]}³ (${mm[1].toUpperCase()})`, [r.name], `matmul_f32_${mm[1]}_${mm[2]}`, fl);
    }
    // f16 storage, f32 accumulation (FP32 units) against cuBLAS on fp16 inputs (tensor cores).
    const mh = r.name.match(/^matmul_f16_(nn|nt)_(\d+)_main128k16$/);
    if (mh && Number(mh[2]) >= 2048) {
      add(
        `f16-storage matmul ${mh[2]}³ (${mh[1].toUpperCase()})`,
        [r.name],
        `torch_matmul_fp16_${mh[1]}_${mh[2]}`,
        fl,
      );
    }
    // Attention prefill at the 1B heads, B 8, the longer sequences: fused kernels against PyTorch f32.
    const at = r.name.match(/^attention_fused_(fwd|fwdbwd)_(B8_L(2048|4096)_Hq32_Hkv8_P64)$/);
    if (at) {
      const what = at[1] === "fwd" ? "fwd" : "fwd+bwd";
      add(`attention ${what} ${at[2]}`, [r.name], `attention_torch_sdpa_${at[1]}_${at[2]}`, fl);
    }
    // Training steps: the distillation step of performance.md's row and the 1B-shaped ones.
    const st = r.name.match(/^(distill|llama_train)_(6m|1b)_B(\d+)_T(\d+)(_mixers)?$/);
    if (st) {
      const label = st[1] === "distill" ? "distillation step" : "Llama train step";
      const work = `${label} ${st[2] === "6m" ? "brown-llama-6m" : "1B-shaped"} ${st[3]}×${st[4]}`;
      // Wall-clock per step where both sides measured it (consecutive steps, one sync at the end: what a
      // training run sees, host recording included), GPU time otherwise.
      for (const impl of ["eager", "sdpa", "sdpa_compiled"]) {
        const t = theirs.get(`${r.name}_${impl}`);
        if (!t) continue;
        const wall = typeof r.wall_ms === "number" && typeof t.wall_ms === "number";
        const ms = wall ? r.wall_ms! : r.ms;
        const tm = wall ? t.wall_ms! : t.ms;
        out.push({
          work: `${work}${wall ? " (wall clock)" : ""} vs ${impl}`,
          ours: r.name,
          ours_ms: ms,
          pytorch: t.name,
          pytorch_ms: tm,
          speedup: tm / ms,
        });
      }
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
  const flags = parseFlags("combine", Deno.args, { dir: "string", out: "string", "torch-ssm": "string" });
  const dir = required("combine", flags, "dir");
  const deno = (await readJson(`${dir}/deno_bench.json`))!;
  // torch_reference.json (matmul, device copy, the teacher's forward) may be left out of a run; the
  // device and version then come from another PyTorch file.
  const ref = await readJson(`${dir}/torch_reference.json`, true);
  const ssmFile = typeof flags["torch-ssm"] === "string" ? flags["torch-ssm"] : `${dir}/torch_ssm.json`;
  // A combined file of an earlier run (bench/results/…-bench.json) holds PyTorch's SSM rows under `pytorch`.
  const ssmJson = (await readJson(ssmFile))!;
  const ssm = ssmJson.pytorch
    ? {
      results: (ssmJson.pytorch as Row[]).filter((r) =>
        r.name.startsWith("selective_scan") || r.name.startsWith("ssd")
      ),
    }
    : ssmJson;
  const extra = await Promise.all(
    ["torch_attention", "torch_steps_6m", "torch_steps_1b", "torch_matmul_f16"].map((n) =>
      readJson(`${dir}/${n}.json`, true)
    ),
  );
  const entries = await readJson(`${dir}/deno_matmul_entries.json`, true);
  const chunks = await readJson(`${dir}/deno_scan_chunks.json`, true);
  const check = await readJson(`${dir}/method_check.json`, true);
  const adapter = deno.adapter as string;
  const peak = peakFor(adapter);
  const torch = [
    ...(ref?.results as Row[] | undefined) ?? [],
    ...ssm.results as Row[],
    ...extra.flatMap((e) => (e?.results as Row[] | undefined) ?? []),
  ];
  const copy = torch.find((r) => r.name === "device_copy_1GiB");
  const combined: Combined = {
    date: deno.date as string,
    adapter,
    torch_device: [ref, ...extra].find((e) => e?.device)?.device as string ?? ssmJson.torch_device,
    torch_version: [ref, ...extra].find((e) => e?.torch)?.torch as string ?? ssmJson.torch_version,
    peak: peak ?? null,
    copy_bytes_per_s: copy?.gb_per_s ? copy.gb_per_s * 1e9 : null,
    method: deno.method,
    ...(typeof flags["torch-ssm"] === "string" ? { torch_ssm_from: flags["torch-ssm"] } : {}),
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
