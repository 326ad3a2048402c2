/**
 * Draws a bench/scaling.ts run as one SVG (hand-written, like bench/science_report.ts, so that it shows
 * in any Markdown viewer offline): µs per token against sequence length L, both axes logarithmic, one
 * line per layer kind, two panels — prefill (forward solid, forward + backward dashed) and one-token
 * decoding after L tokens. Points the run could not measure are left out and listed under the panels
 * with their reason.
 *
 *   deno run -A bench/scaling_plot.ts RESULTS.json OUT.svg
 *
 * @module
 */
import type { LayerKind, Phase, ScalingResult } from "./scaling.ts";

/** The parts of a bench/scaling.ts JSON report the figure uses. */
export interface ScalingReport {
  /** The adapter the run used (bench/scaling.ts's `adapterName`). */
  adapter: string;
  /** ISO date of the run. */
  date: string;
  /** Every point, measured or with its error. */
  results: ScalingResult[];
  /** Where the run came from; `note` is printed under the panels. */
  source?: { note?: string };
}

/** `text` broken into lines of at most `width` characters at spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return line ? [...lines, line] : lines;
}

const KINDS: { kind: LayerKind; label: string; color: string }[] = [
  { kind: "attention", label: "attention (GQA 32/8 heads)", color: "#c44e52" },
  { kind: "mamba2", label: "Mamba-2 (converted)", color: "#4c72b0" },
  { kind: "mamba1", label: "Mamba-1 (converted)", color: "#55a868" },
];
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** Powers of ten (and 2·, 5· between them) covering [lo, hi], for log-axis ticks. */
function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo && v <= hi) out.push(v);
    }
  }
  return out;
}

const fmt = (v: number) => v >= 1000 ? `${v / 1000}k` : v >= 1 ? `${v}` : v.toPrecision(1);

/** One panel at (x0, y0): the given phases of every kind, dashed for the second phase. */
function panel(
  r: ScalingReport,
  title: string,
  phases: Phase[],
  box: { x0: number; y0: number; w: number; h: number },
): string {
  const pts = r.results.filter((p) => phases.includes(p.phase) && "us_per_token" in p) as (
    & ScalingResult
    & { us_per_token: number; ms: number; ms_min: number; ms_max: number }
  )[];
  const Ls = [...new Set(r.results.map((p) => p.L))].sort((a, b) => a - b);
  const ys = pts.flatMap((
    p,
  ) => [p.us_per_token, p.us_per_token * p.ms_max / p.ms, p.us_per_token * p.ms_min / p.ms]);
  const [ylo, yhi] = ys.length ? [Math.min(...ys) / 1.5, Math.max(...ys) * 1.5] : [1, 10];
  const [xlo, xhi] = [Ls[0] / 1.3, Ls[Ls.length - 1] * 1.3];
  const { x0, y0, w, h } = box;
  const px = (L: number) => x0 + w * Math.log(L / xlo) / Math.log(xhi / xlo);
  const py = (v: number) => y0 + h * (1 - Math.log(v / ylo) / Math.log(yhi / ylo));
  let s = `<text x="${x0 + w / 2}" y="${y0 - 10}" text-anchor="middle" font-size="14">${esc(title)}</text>`;
  s += `<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#888"/>`;
  for (const v of logTicks(ylo, yhi)) {
    s += `<line x1="${x0}" x2="${x0 + w}" y1="${py(v).toFixed(1)}" y2="${py(v).toFixed(1)}" stroke="#eee"/>` +
      `<text x="${x0 - 6}" y="${(py(v) + 4).toFixed(1)}" text-anchor="end">${fmt(v)}</text>`;
  }
  for (const L of Ls) {
    s += `<line x1="${px(L).toFixed(1)}" x2="${px(L).toFixed(1)}" y1="${y0}" y2="${y0 + h}" stroke="#eee"/>` +
      `<text x="${px(L).toFixed(1)}" y="${y0 + h + 16}" text-anchor="middle">${L}</text>`;
  }
  s += `<text x="${x0 + w / 2}" y="${y0 + h + 34}" text-anchor="middle">sequence length L (log scale)</text>`;
  s += `<text x="${x0 - 48}" y="${y0 + h / 2}" transform="rotate(-90 ${x0 - 48} ${
    y0 + h / 2
  })" text-anchor="middle">µs per token (log scale)</text>`;
  for (const k of KINDS) {
    phases.forEach((phase, j) => {
      const line = pts.filter((p) => p.kind === k.kind && p.phase === phase).sort((a, b) => a.L - b.L);
      if (!line.length) return;
      const dash = j === 1 ? ` stroke-dasharray="6,4"` : "";
      const xy = line.map((p) => `${px(p.L).toFixed(1)},${py(p.us_per_token).toFixed(1)}`);
      s += `<polyline fill="none" stroke="${k.color}" stroke-width="2"${dash} points="${xy.join(" ")}"/>`;
      // whiskers: the fastest and the slowest sample, per token
      for (const p of line) {
        if (!("ms_min" in p)) continue;
        const per = p.us_per_token / p.ms;
        const [lo, hi] = [py(p.ms_max * per), py(p.ms_min * per)];
        if (Math.abs(hi - lo) < 2) continue;
        const x = px(p.L).toFixed(1);
        s += `<line x1="${x}" x2="${x}" y1="${lo.toFixed(1)}" y2="${hi.toFixed(1)}" stroke="${k.color}"/>`;
      }
      for (const c of xy) {
        const [cx, cy] = c.split(",");
        s += `<circle cx="${cx}" cy="${cy}" r="3" fill="${k.color}"/>`;
      }
    });
  }
  return s;
}

/** The whole figure: prefill and decode panels, the legend and the list of points that did not run. */
export function scalingSvg(r: ScalingReport): string {
  const W = 1060, PW = 360, PH = 300, T = 70;
  const failed = r.results.filter((p) => "error" in p) as (ScalingResult & { error: string })[];
  const notes = [
    ...wrap(r.source?.note ?? "", 150).map((t) => ({ t, color: "#555" })),
    ...failed.map((p) => ({
      t: `not measured: ${p.kind} ${p.phase} L=${p.L}: ${p.error.slice(0, 110)}`,
      color: "#a33",
    })),
  ];
  const H = T + PH + 150 + 16 * notes.length;
  let s =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`;
  s += `<rect width="${W}" height="${H}" fill="white"/>`;
  s += `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">One layer's sequence mixer, batch 1, ` +
    `d_model 2048: time per token against sequence length</text>`;
  s += `<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(r.adapter)}, ${
    esc(r.date.slice(0, 10))
  } (bench/scaling.ts; GPU timestamps, median after warm-up)</text>`;
  s += panel(r, "prefill: forward (solid), forward + backward (dashed)", ["prefill_fwd", "prefill_fwdbwd"], {
    x0: 80,
    y0: T,
    w: PW,
    h: PH,
  });
  s += panel(r, "decoding: one token after L tokens", ["decode"], { x0: 80 + PW + 100, y0: T, w: PW, h: PH });
  KINDS.forEach((k, j) => {
    const y = T + 20 + j * 20;
    s += `<rect x="${W - 140}" y="${y - 6}" width="20" height="4" fill="${k.color}"/>` +
      `<text x="${W - 114}" y="${y}">${esc(k.label.split(" (")[0])}</text>`;
  });
  const y1 = T + PH + 60;
  s += `<text x="80" y="${y1}" fill="#555">attention: 32 query / 8 key-value heads of 64, a KV cache of L ` +
    `positions when decoding; Mamba-2 (converted): d_inner 2048, 32 heads, d_state 64;</text>` +
    `<text x="80" y="${y1 + 16}" fill="#555">Mamba-1 (converted): d_inner 2048, d_state 16 per channel; ` +
    `both Mamba layers decode from a fixed-size state. Points: median sample; bars: fastest to slowest.</text>`;
  notes.forEach((n, j) => {
    s += `<text x="80" y="${y1 + 38 + 16 * j}" fill="${n.color}">${esc(n.t)}</text>`;
  });
  return s + "</svg>\n";
}

if (import.meta.main) {
  const [input, output] = Deno.args;
  if (!input || !output) {
    console.error("usage: deno run -A bench/scaling_plot.ts RESULTS.json OUT.svg");
    Deno.exit(2);
  }
  const r = JSON.parse(await Deno.readTextFile(input)) as ScalingReport;
  await Deno.writeTextFile(output, scalingSvg(r));
  console.error(`wrote ${output} (${r.results.length} points)`);
}
