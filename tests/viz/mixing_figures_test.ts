import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { show } from "../../lib/viz/figures.ts";
import {
  headDistanceBars,
  headDistances,
  mixingComparison,
  mixingGrid,
} from "../../lib/viz/mixing_figures.ts";
import { plotlyJsPath, standaloneHtml } from "../../lib/viz/plotly.ts";
import { randomArray } from "../_assert.ts";

type Trace = { type: string; z: number[][]; coloraxis: string; xaxis: string; yaxis: string; y?: number[] };

Deno.test("mixingComparison: two T×T panels on one shared scale, and a signed difference panel", () => {
  const T = 5;
  const teacher = Float64Array.from({ length: T * T }, (_, i) => (i % T <= Math.floor(i / T) ? 0.2 : 0));
  const student = Float64Array.from(randomArray(T * T, 1), (v) => 0.5 * v);
  const fig = mixingComparison(teacher, student, T, { difference: true, names: ["attention", "Mamba-2"] });
  const data = fig.data as unknown as Trace[];
  assert.equal(data.length, 3);
  for (const d of data) {
    assert.equal(d.type, "heatmap");
    assert.equal(d.z.length, T);
    assert.ok(d.z.every((r) => r.length === T));
  }
  assert.deepEqual(data.map((d) => d.coloraxis), ["coloraxis", "coloraxis", "coloraxis2"]);
  assert.deepEqual(data.map((d) => d.xaxis), ["x", "x2", "x3"]);
  assert.equal(data[1].z[2][3], student[2 * T + 3], "row t, column s");
  assert.ok(
    Math.abs(data[2].z[4][0] - (student[20] - teacher[20])) < 1e-12,
    "difference = student − teacher",
  );
  const L = fig.layout as Record<string, { cmin: number; cmax: number; colorscale: string }>;
  // the student has negative entries, so the shared scale is diverging and symmetric, covering both
  assert.equal(L.coloraxis.colorscale, "RdBu");
  assert.equal(L.coloraxis.cmin, -L.coloraxis.cmax);
  const maxAbs = Math.max(...[...teacher, ...student].map(Math.abs));
  assert.ok(Math.abs(L.coloraxis.cmax - maxAbs) < 1e-12);
  assert.equal(L.coloraxis2.cmin, -L.coloraxis2.cmax);
  // probabilities alone get a sequential scale from 0
  const probs = mixingComparison(teacher, teacher, T);
  const pl = probs.layout as Record<string, { cmin: number; cmax: number; colorscale: string }>;
  assert.equal(probs.data.length, 2);
  assert.deepEqual([pl.coloraxis.colorscale, pl.coloraxis.cmin, pl.coloraxis.cmax], ["Viridis", 0, 0.2]);
  assert.throws(() => mixingComparison(teacher, student.subarray(1), T), ShapeError);
});

Deno.test("headDistanceBars: one bar per head with ‖teacher_h − student_h‖_F", () => {
  const [H, T] = [3, 4];
  const a = randomArray(H * T * T, 2);
  const b = randomArray(H * T * T, 3);
  const d = headDistances(a, b, H, T);
  let s = 0;
  for (let i = T * T; i < 2 * T * T; i++) s += (a[i] - b[i]) ** 2;
  assert.ok(Math.abs(d[1] - Math.sqrt(s)) < 1e-6);
  assert.deepEqual(headDistances(a, a, H, T), [0, 0, 0]);
  const fig = headDistanceBars(a, b, H, T);
  const bar = fig.data[0] as unknown as { type: string; x: string[]; y: number[] };
  assert.equal(bar.type, "bar");
  assert.deepEqual(bar.x, ["head 0", "head 1", "head 2"]);
  assert.deepEqual(bar.y, d);
});

Deno.test("mixingGrid: layers × heads small heatmaps, each on its own axes, one colour scale", () => {
  const [H, T] = [4, 3];
  const rows = [randomArray(H * T * T, 4), randomArray(H * T * T, 5)];
  const fig = mixingGrid(rows, H, T, { rowNames: ["teacher L1", "student L1"] });
  const data = fig.data as unknown as Trace[];
  assert.equal(data.length, 2 * H);
  assert.equal(new Set(data.map((d) => d.xaxis)).size, 2 * H);
  assert.ok(data.every((d) => d.coloraxis === "coloraxis" && d.z.length === T && d.z[0].length === T));
  assert.equal(data[H + 2].z[1][2], rows[1][2 * T * T + 1 * T + 2], "row 1, head 2, entry (1, 2)");
  const L = fig.layout as Record<string, { domain: number[] }>;
  for (let n = 1; n <= 2 * H; n++) {
    const k = n === 1 ? "" : String(n);
    for (const ax of [L[`xaxis${k}`], L[`yaxis${k}`]]) {
      assert.ok(ax.domain[0] >= 0 && ax.domain[1] <= 1 && ax.domain[0] < ax.domain[1], `axis ${n} domain`);
    }
  }
  const named = mixingGrid(rows, H, T, { colNames: ["a", "b", "c", "d"] });
  const texts = (named.layout!.annotations as { text: string }[]).map((a) => a.text);
  assert.deepEqual(texts, ["layer 0", "layer 1", "a", "b", "c", "d"]);
  assert.throws(() => mixingGrid([rows[0].subarray(1)], H, T), /row 0 \(H, T, T\)/);
});

Deno.test("mixing figures render inline (Plotly mimetype + HTML fallback) and as offline HTML with plotly.js inlined", async () => {
  const T = 4;
  const fig = mixingComparison(randomArray(T * T, 6), randomArray(T * T, 7), T, { title: "</script> & co" });
  const bundle = show(fig, "comparison")[Symbol.for("Jupyter.display")]() as Record<string, unknown>;
  const plotly = bundle["application/vnd.plotly.v1+json"] as { data: unknown[] };
  assert.equal(plotly.data.length, 2);
  assert.match(String(bundle["text/html"]), /Plotly\.react/);
  assert.equal(bundle["text/plain"], "comparison");
  const html = await standaloneHtml("mixing", [{ title: "pair", fig }, {
    fig: mixingGrid([randomArray(2 * T * T, 8)], 2, T),
  }]);
  const js = await Deno.readTextFile(plotlyJsPath());
  const inlined = js.replace(/<\/script/gi, "<\\/script");
  assert.ok(html.includes(inlined), "plotly.js is inlined verbatim");
  const rest = html.replace(inlined, "");
  assert.doesNotMatch(rest, /<script[^>]+src=/i, "no external script");
  assert.doesNotMatch(rest, /https?:\/\/|cdn\./i, "no URL outside the inlined library");
  assert.equal((rest.match(/Plotly\.newPlot\(/g) ?? []).length, 2);
  assert.doesNotMatch(rest, /<\/script> & co/, "titles cannot close the script");
});
