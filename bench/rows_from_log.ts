/**
 * `deno run -A bench/rows_from_log.ts LOGS.txt OUT.json [--torch OUT_TORCH.json]`: recovers the timed
 * rows of a bench/gpu_run.sh run that hit its time limit before `deno task bench` wrote its JSON (it
 * prints each row to stderr as it is measured, and gpu_run.sh keeps stderr in logs.txt). Reads the
 * lines `NAME: MS ms (single call from idle MS ms)` (kernels), `NAME: MS ms GPU, MS ms wall, N tokens/s`
 * (training steps) and PyTorch's `NAME: MS ms, N tokens/s`; attention rows get their FLOP/s back from
 * {@linkcode attentionFlops}. Every row carries `recovered_from` so the JSON says where it came from.
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { attentionFlops } from "./attention.ts";

/** One recovered row. */
export type RecoveredRow = Record<string, string | number>;

/** The rows of a logs.txt, split into ours (deno_bench) and PyTorch's (between `== torch_*` markers). */
export function rowsFromLog(text: string, source: string): { deno: RecoveredRow[]; torch: RecoveredRow[] } {
  const deno: RecoveredRow[] = [];
  const torch: RecoveredRow[] = [];
  let section = "";
  for (const line of text.split("\n")) {
    const sec = line.match(/^== (\S+)/);
    if (sec) {
      section = sec[1];
      continue;
    }
    const kernel = line.match(/^(\w+): ([\d.]+) ms \(single call from idle ([\d.]+) ms\)$/);
    const step = line.match(/^(\w+): ([\d.]+) ms GPU, ([\d.]+) ms wall, (\d+) tokens\/s$/);
    const theirs = line.match(/^(\w+): ([\d.]+) ms, (\d+) tokens\/s$/);
    const row: RecoveredRow = { recovered_from: source };
    if (kernel && section.startsWith("deno")) {
      Object.assign(row, { name: kernel[1], ms: Number(kernel[2]), ms_single: Number(kernel[3]) });
      const a = kernel[1].match(
        /^attention_(fused|materialised)_(fwd|fwdbwd)_B(\d+)_L(\d+)_Hq(\d+)_Hkv\d+_P(\d+)$/,
      );
      if (a) {
        const flops = attentionFlops(+a[3], +a[4], +a[5], +a[6]) * (a[2] === "fwd" ? 1 : 3.5);
        Object.assign(row, { flops, tflop_per_s: flops / (Number(kernel[2]) / 1e3) / 1e12 });
      }
      deno.push(row);
    } else if (step && section.startsWith("deno")) {
      const [ms, wall] = [Number(step[2]), Number(step[3])];
      Object.assign(row, { name: step[1], ms, wall_ms: wall, tokens_per_s: Number(step[4]) });
      deno.push(row);
    } else if (theirs && section.startsWith("torch")) {
      Object.assign(row, { name: theirs[1], ms: Number(theirs[2]), tokens_per_s: Number(theirs[3]) });
      torch.push(row);
    }
  }
  return { deno, torch };
}

if (import.meta.main) {
  const [logPath, outPath, ...rest] = Deno.args;
  if (!logPath || !outPath) throw new Error("usage: rows_from_log.ts LOGS.txt OUT.json [--torch FILE]");
  const flags = parseFlags("rows_from_log", rest, { torch: "string", adapter: "string", date: "string" });
  const { deno, torch } = rowsFromLog(await Deno.readTextFile(logPath), logPath.split("/").at(-1)!);
  const header = { date: flags.date ?? new Date().toISOString(), adapter: flags.adapter ?? "unknown" };
  await Deno.writeTextFile(outPath, JSON.stringify({ ...header, results: deno }, null, 2) + "\n");
  if (typeof flags.torch === "string") {
    await Deno.writeTextFile(flags.torch, JSON.stringify({ ...header, results: torch }, null, 2) + "\n");
  }
  console.error(`${deno.length} rows of ours, ${torch.length} of PyTorch's`);
}
