/**
 * Renders the figures of docs/results.md from a `bench/distill_science.ts` run: SVG bar charts of
 * student perplexity (by attention share and init; MOHAWK with stages left out) and SVG loss curves,
 * written beside the document so that they show in any Markdown viewer, offline.
 *
 *   deno run -A bench/science_report.ts RESULTS.json METRICS.jsonl OUTDIR
 *
 * Prints the Markdown tables to stdout.
 *
 * @module
 */
import type { StageResult } from "../lib/distill/run.ts";

/** One entry of `results.json` (see bench/distill_science.ts). */
interface RunOut {
  name: string;
  recipe: string;
  share: number;
  init: string;
  mohawkStages?: number[];
  attentionLayers: number[];
  teacherPpl: number;
  studentPpl: number;
  stages: StageResult[];
  seconds: number;
  tokensPerSecond: number;
}

const COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"];
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** Grouped bars: groups on x, one bar per series; a dashed reference line (the teacher). */
export function barChart(
  title: string,
  groups: string[],
  series: { name: string; values: number[] }[],
  reference: { name: string; value: number },
  yLabel: string,
): string {
  const W = 720, H = 360, L = 60, R = 150, T = 40, B = 60;
  const max = Math.max(reference.value, ...series.flatMap((s) => s.values)) * 1.1;
  const min = Math.min(reference.value, ...series.flatMap((s) => s.values)) * 0.9;
  const y = (v: number) => T + (H - T - B) * (1 - (v - min) / (max - min));
  const gw = (W - L - R) / groups.length;
  const bw = gw * 0.8 / series.length;
  let out =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`;
  out += `<rect width="${W}" height="${H}" fill="white"/><text x="${
    W / 2
  }" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`;
  for (let k = 0; k <= 4; k++) {
    const v = min + (max - min) * k / 4;
    out += `<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>` +
      `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(0)}</text>`;
  }
  groups.forEach((g, i) => {
    series.forEach((s, j) => {
      const x = L + i * gw + gw * 0.1 + j * bw;
      const v = s.values[i];
      if (!Number.isFinite(v)) return;
      out += `<rect x="${x}" y="${y(v)}" width="${bw - 2}" height="${y(min) - y(v)}" fill="${COLORS[j]}"/>` +
        `<text x="${x + bw / 2}" y="${y(v) - 4}" text-anchor="middle" font-size="10">${v.toFixed(1)}</text>`;
    });
    out += `<text x="${L + i * gw + gw / 2}" y="${H - B + 18}" text-anchor="middle">${esc(g)}</text>`;
  });
  out +=
    `<line x1="${L}" x2="${W - R}" y1="${y(reference.value)}" y2="${y(reference.value)}" stroke="black" ` +
    `stroke-dasharray="5,4"/>`;
  const legend = [...series.map((s, j) => ({ name: s.name, c: COLORS[j], dash: false })), {
    name: `${reference.name} (${reference.value.toFixed(2)})`,
    c: "black",
    dash: true,
  }];
  legend.forEach((e, j) => {
    const ly = T + 10 + j * 18;
    out += e.dash
      ? `<line x1="${W - R + 10}" x2="${
        W - R + 30
      }" y1="${ly}" y2="${ly}" stroke="black" stroke-dasharray="5,4"/>`
      : `<rect x="${W - R + 10}" y="${ly - 6}" width="20" height="12" fill="${e.c}"/>`;
    out += `<text x="${W - R + 36}" y="${ly + 4}">${esc(e.name)}</text>`;
  });
  out += `<text x="16" y="${(H - B + T) / 2}" transform="rotate(-90 16 ${
    (H - B + T) / 2
  })" text-anchor="middle">${esc(yLabel)}</text></svg>\n`;
  return out;
}

/** Loss curves (log scale) of named series over steps. */
export function lineChart(title: string, series: { name: string; x: number[]; y: number[] }[]): string {
  const W = 720, H = 360, L = 60, R = 200, T = 40, B = 50;
  const xs = series.flatMap((s) => s.x), ys = series.flatMap((s) => s.y).filter((v) => v > 0);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [l0, l1] = [Math.log10(Math.min(...ys)), Math.log10(Math.max(...ys))];
  const px = (x: number) => L + (W - L - R) * (x - x0) / (x1 - x0 || 1);
  const py = (v: number) => T + (H - T - B) * (1 - (Math.log10(v) - l0) / (l1 - l0 || 1));
  let out =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`;
  out += `<rect width="${W}" height="${H}" fill="white"/><text x="${
    W / 2
  }" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`;
  for (let e = Math.ceil(l0 * 2) / 2; e <= l1; e += 0.5) {
    const v = 10 ** e;
    out += `<line x1="${L}" x2="${W - R}" y1="${py(v)}" y2="${py(v)}" stroke="#eee"/>` +
      `<text x="${L - 6}" y="${py(v) + 4}" text-anchor="end">${v < 10 ? v.toFixed(1) : v.toFixed(0)}</text>`;
  }
  out += `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">step</text>`;
  series.forEach((s, j) => {
    const pts = s.x.map((x, i) => `${px(x).toFixed(1)},${py(s.y[i]).toFixed(1)}`).join(" ");
    out +=
      `<polyline fill="none" stroke="${COLORS[j % COLORS.length]}" stroke-width="1.5" points="${pts}"/>` +
      `<rect x="${W - R + 10}" y="${T + 4 + j * 18}" width="20" height="3" fill="${
        COLORS[j % COLORS.length]
      }"/>` +
      `<text x="${W - R + 36}" y="${T + 10 + j * 18}">${esc(s.name)}</text>`;
  });
  return out + "</svg>\n";
}

if (import.meta.main) {
  const [resultsPath, metricsPath, outDir] = Deno.args;
  const r = JSON.parse(await Deno.readTextFile(resultsPath)) as { results: RunOut[]; adapter: string };
  const runs = new Map(r.results.map((x) => [x.name, x]));
  const teacher = r.results[0].teacherPpl;
  const shares = [0.5, 0.25, 0.125, 0];
  const kd = (share: number, init: string) => runs.get(`kd-${share * 100}pct-${init}`)?.studentPpl ?? NaN;
  const label = (s: number) =>
    `${runs.get(`kd-${s * 100}pct-attention`)?.attentionLayers.length ?? "?"} of 6`;
  await Deno.mkdir(outDir, { recursive: true });
  await Deno.writeTextFile(
    `${outDir}/results-kd-shares.svg`,
    barChart(
      "KD students: validation perplexity by attention layers kept",
      shares.map(label),
      ["attention", "random"].map((init) => ({
        name: `${init} init`,
        values: shares.map((s) => kd(s, init)),
      })),
      { name: "teacher", value: teacher },
      "perplexity",
    ),
  );
  const mohawk = ["123", "23", "13", "12"].map((s) => runs.get(`mohawk-0pct-stages${s}`));
  await Deno.writeTextFile(
    `${outDir}/results-mohawk-ablation.svg`,
    barChart(
      "MOHAWK, pure Mamba-2 student: stages left out",
      ["all stages", "without 1", "without 2", "without 3"],
      [{ name: "MOHAWK", values: mohawk.map((m) => m?.studentPpl ?? NaN) }],
      { name: "teacher", value: teacher },
      "perplexity",
    ),
  );
  const curves = new Map<string, { x: number[]; y: number[] }>();
  for (const line of (await Deno.readTextFile(metricsPath)).split("\n")) {
    if (!line.trim()) continue;
    const e = JSON.parse(line);
    const key = `${e.run}`;
    const c = curves.get(key) ?? curves.set(key, { x: [], y: [] }).get(key)!;
    c.x.push(e.step);
    c.y.push(e.loss);
  }
  const pick = (names: string[]) =>
    names.filter((n) => curves.has(n)).map((n) => ({ name: n, ...curves.get(n)! }));
  await Deno.writeTextFile(
    `${outDir}/results-kd-curves.svg`,
    lineChart(
      "KD loss (CE + KL) per step",
      pick(shares.flatMap((s) => [`kd-${s * 100}pct-attention`, `kd-${s * 100}pct-random`])),
    ),
  );
  await Deno.writeTextFile(
    `${outDir}/results-mohawk-curves.svg`,
    lineChart(
      "MOHAWK loss per step (each stage its own loss)",
      pick(mohawk.flatMap((m) => m ? [m.name] : [])),
    ),
  );
  const rows = shares.map((s) =>
    `| ${label(s)} | ${kd(s, "attention").toFixed(2)} | ${kd(s, "random").toFixed(2)} |`
  );
  console.log(`| attention layers kept | attention init | random init |\n|---|---|---|\n${rows.join("\n")}`);
  console.log();
  console.log("| MOHAWK stages | student ppl | per stage (ppl after it) |\n|---|---|---|");
  for (const m of mohawk) {
    if (!m) continue;
    const per = m.stages.map((s) => `${s.name}: ${s.steps} steps, ${s.ppl.toFixed(1)}`).join("; ");
    console.log(`| ${m.mohawkStages?.join(", ")} | ${m.studentPpl.toFixed(2)} | ${per} |`);
  }
  console.log(
    `\nadapter ${r.adapter}; tokens/s ${r.results.map((x) => Math.round(x.tokensPerSecond)).join(", ")}`,
  );
}
