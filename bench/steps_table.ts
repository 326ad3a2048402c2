/**
 * A Markdown table of the training-step benchmarks: bench/steps.ts's JSON beside bench/pytorch_steps.py's
 * (rows paired by name: PyTorch's carry an attention suffix `_sdpa`, `_eager` or `_sdpa_compiled`).
 *
 *   deno run -A bench/steps_table.ts OURS.json [OURS2.json …] --torch TORCH.json [--torch TORCH2.json]
 *
 * Columns: our GPU ms per step and wall-clock ms per step (host recording included), tokens/s from the
 * slower of the two, PyTorch's ms per step (SDPA attention, eager attention, torch.compile) and the
 * speed-up over PyTorch eager with SDPA (its ms ÷ our wall-clock ms, or GPU ms where no wall time was taken).
 *
 * @module
 */

/** One result row of either side (the fields this table reads). */
export interface StepRow {
  name: string;
  ms?: number;
  wall_ms?: number;
  peak_bytes?: number;
  batch?: number;
  seq?: number;
  error?: string;
}

const fmt = (x: number | undefined, d = 1) => x === undefined || !Number.isFinite(x) ? "—" : x.toFixed(d);

/** Our row's name for a PyTorch row's name, and which PyTorch variant it is. */
export function pairName(torchName: string): { name: string; variant: "sdpa" | "eager" | "compiled" } | null {
  const m = /^(.*)_(sdpa_compiled|sdpa|eager)$/.exec(torchName);
  if (!m) return null;
  return { name: m[1], variant: m[2] === "sdpa_compiled" ? "compiled" : m[2] as "sdpa" | "eager" };
}

/** The Markdown table for our rows and PyTorch's. */
export function stepsTable(ours: StepRow[], torch: StepRow[]): string {
  const t = new Map<string, Partial<Record<"sdpa" | "eager" | "compiled", StepRow>>>();
  for (const r of torch) {
    const p = pairName(r.name);
    if (!p) continue;
    t.set(p.name, { ...t.get(p.name), [p.variant]: r });
  }
  const lines = [
    "| step | ours GPU ms | ours wall ms | tokens/s | peak GiB | PyTorch sdpa ms | eager-attn ms | compiled ms | speed-up vs PyTorch sdpa |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of ours) {
    if (r.error) {
      lines.push(`| ${r.name} | failed: ${r.error.slice(0, 80)} | | | | | | | |`);
      continue;
    }
    const pt = t.get(r.name) ?? t.get(r.name.replace(/_head-full$/, ""));
    const ms = Math.max(r.ms ?? NaN, r.wall_ms ?? 0);
    const tokens = (r.batch ?? 0) * (r.seq ?? 0);
    const ref = pt?.sdpa?.ms;
    lines.push(
      `| ${r.name} | ${fmt(r.ms, 2)} | ${fmt(r.wall_ms, 2)} | ${fmt(tokens / (ms / 1e3), 0)} | ${
        fmt((r.peak_bytes ?? NaN) / 2 ** 30, 2)
      } | ${pt?.sdpa?.error ? "failed" : fmt(ref, 2)} | ${fmt(pt?.eager?.ms, 2)} | ${
        fmt(pt?.compiled?.ms, 2)
      } | ${ref ? fmt(ref / ms, 2) + "×" : "—"} |`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const ours: StepRow[] = [];
  const torch: StepRow[] = [];
  for (let i = 0; i < Deno.args.length; i++) {
    const a = Deno.args[i];
    const into = a === "--torch" ? torch : ours;
    const file = a === "--torch" ? Deno.args[++i] : a;
    into.push(...(JSON.parse(await Deno.readTextFile(file)).results as StepRow[]));
  }
  console.log(stepsTable(ours, torch));
}
