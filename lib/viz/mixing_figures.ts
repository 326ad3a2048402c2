/**
 * Figures that compare mixing matrices (rows = output t, columns = source s; method.md §1): a teacher
 * and a student side by side on one colour scale (with an optional signed difference panel), the
 * per-head Frobenius distances as bars, and a layer × head grid of small heatmaps. Each is a plain
 * Plotly {@linkcode Figure}: `show(fig)` renders it inline in a notebook, `standaloneHtml` writes it
 * as an offline page with plotly.js inlined.
 *
 * Colour scales: attention rows are probabilities (≥ 0) and SSM matrices are signed, so a shared scale
 * is sequential (Viridis) when every value is ≥ 0 and a zero-centred diverging one (RdBu) otherwise;
 * differences are always diverging and symmetric.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import type { Figure } from "./plotly.ts";

/** Rows of a row-major (T, T) block starting at `offset`, as Plotly's z. */
function rowsOf(values: ArrayLike<number>, T: number, offset = 0): number[][] {
  return Array.from({ length: T }, (_, t) => Array.from({ length: T }, (_, s) => values[offset + t * T + s]));
}

function range(arrays: ArrayLike<number>[]): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      if (!Number.isFinite(a[i])) continue;
      min = Math.min(min, a[i]);
      max = Math.max(max, a[i]);
    }
  }
  return min > max ? { min: 0, max: 1 } : { min, max };
}

/** A colour axis covering `arrays`: sequential from 0 when all are ≥ 0, else symmetric diverging. */
function colorAxis(arrays: ArrayLike<number>[], signed?: boolean, x = 1.02): Record<string, unknown> {
  const { min, max } = range(arrays);
  if (signed || min < 0) {
    const m = Math.max(Math.abs(min), Math.abs(max)) || 1;
    return { colorscale: "RdBu", reversescale: true, cmin: -m, cmax: m, colorbar: { x, len: 0.9 } };
  }
  return { colorscale: "Viridis", cmin: 0, cmax: max || 1, colorbar: { x, len: 0.9 } };
}

function checkSize(op: string, name: string, a: ArrayLike<number>, n: number): void {
  if (a.length !== n) throw new ShapeError(op, `expected ${name} of ${n} values, got ${a.length}`);
}

/** Options of {@linkcode mixingComparison}. */
export interface ComparisonOptions {
  /** Figure title. */
  title?: string;
  /** Panel titles (default "teacher", "student"). */
  names?: [string, string];
  /** Add a third panel with student − teacher on a symmetric diverging scale. */
  difference?: boolean;
  /** Force the shared scale to be signed (diverging around 0). */
  signed?: boolean;
  /** Tick labels (tokens) for both axes. */
  labels?: string[];
}

/**
 * Teacher and student (T, T) matrices side by side on one shared colour scale, optionally with their
 * difference (student − teacher) on its own signed scale.
 */
export function mixingComparison(
  teacher: ArrayLike<number>,
  student: ArrayLike<number>,
  T: number,
  opts: ComparisonOptions = {},
): Figure {
  checkSize("mixingComparison", "teacher (T, T)", teacher, T * T);
  checkSize("mixingComparison", "student (T, T)", student, T * T);
  const [nameA, nameB] = opts.names ?? ["teacher", "student"];
  const panels: { name: string; z: number[][]; axis: string }[] = [
    { name: nameA, z: rowsOf(teacher, T), axis: "coloraxis" },
    { name: nameB, z: rowsOf(student, T), axis: "coloraxis" },
  ];
  const diff = opts.difference
    ? Float64Array.from({ length: T * T }, (_, i) => student[i] - teacher[i])
    : null;
  if (diff) panels.push({ name: `${nameB} − ${nameA}`, z: rowsOf(diff, T), axis: "coloraxis2" });
  const n = panels.length;
  // Panels side by side; the shared colour bar sits right of the second panel, the difference's
  // right of the third. Only the first panel carries y tick labels (the rows are the same).
  const gap = n === 3 ? 0.1 : 0.06;
  const w = (1 - gap * (n - 1) - (n === 3 ? 0.04 : 0)) / n;
  const left = (i: number) => i * (w + gap);
  const layout: Record<string, unknown> = {
    title: { text: opts.title ?? "" },
    coloraxis: colorAxis([teacher, student], opts.signed, left(1) + w + 0.01),
    height: 440,
    width: n === 3 ? 1240 : 860,
    margin: { l: opts.labels ? 100 : 60, b: opts.labels ? 100 : 60 },
    annotations: [] as unknown[],
  };
  if (diff) layout.coloraxis2 = colorAxis([diff], true, left(2) + w + 0.01);
  const data = panels.map((p, i) => {
    const k = i === 0 ? "" : String(i + 1);
    layout[`xaxis${k}`] = { domain: [left(i), left(i) + w], title: { text: "source s" } };
    layout[`yaxis${k}`] = {
      autorange: "reversed",
      anchor: `x${k}`,
      title: { text: i === 0 ? "output t" : "" },
      showticklabels: i === 0,
    };
    (layout.annotations as unknown[]).push({
      text: p.name,
      showarrow: false,
      xref: "paper",
      yref: "paper",
      x: left(i) + w / 2,
      y: 1.06,
    });
    return {
      type: "heatmap",
      name: p.name,
      z: p.z,
      x: opts.labels,
      y: opts.labels,
      coloraxis: p.axis,
      xaxis: `x${k}`,
      yaxis: `y${k}`,
    };
  });
  return { data, layout };
}

/** ‖teacher_h − student_h‖_F for each head h of (H, T, T) stacks (MOHAWK stage 1's per-head distance). */
export function headDistances(
  teacher: ArrayLike<number>,
  student: ArrayLike<number>,
  H: number,
  T: number,
): number[] {
  checkSize("headDistances", "teacher (H, T, T)", teacher, H * T * T);
  checkSize("headDistances", "student (H, T, T)", student, H * T * T);
  return Array.from({ length: H }, (_, h) => {
    let s = 0;
    for (let i = h * T * T; i < (h + 1) * T * T; i++) s += (teacher[i] - student[i]) ** 2;
    return Math.sqrt(s);
  });
}

/** A bar chart of per-head distances ‖M_teacher − M_student‖_F ({@linkcode headDistances}). */
export function headDistanceBars(
  teacher: ArrayLike<number>,
  student: ArrayLike<number>,
  H: number,
  T: number,
  opts: { title?: string } = {},
): Figure {
  const d = headDistances(teacher, student, H, T);
  return {
    data: [{ type: "bar", x: d.map((_, h) => `head ${h}`), y: d, name: "‖teacher − student‖_F" }],
    layout: {
      title: { text: opts.title ?? "Per-head Frobenius distance" },
      xaxis: { title: { text: "head" } },
      yaxis: { title: { text: "‖M_teacher − M_student‖_F" }, rangemode: "tozero" },
      width: 560,
      height: 360,
    },
  };
}

/** Options of {@linkcode mixingGrid}. */
export interface GridOptions {
  /** Figure title. */
  title?: string;
  /** Row labels (default "layer i"). */
  rowNames?: string[];
  /** Column labels (default "head h"). */
  colNames?: string[];
  /** Force a signed (diverging) shared scale. */
  signed?: boolean;
  /** Pixel size of one cell (default 150). */
  cell?: number;
}

/**
 * A grid of small heatmaps: row i is `rows[i]`, an (H, T, T) stack (one layer's heads), column h its
 * head h; one shared colour scale. Rows may mix teacher and student layers (name them in `rowNames`).
 */
export function mixingGrid(rows: ArrayLike<number>[], H: number, T: number, opts: GridOptions = {}): Figure {
  rows.forEach((r, i) => checkSize("mixingGrid", `row ${i} (H, T, T)`, r, H * T * T));
  const nr = rows.length;
  const gap = 0.02;
  const cw = (1 - gap * (H - 1)) / H;
  const ch = nr > 0 ? (1 - gap * (nr - 1)) / nr : 1;
  const layout: Record<string, unknown> = {
    title: { text: opts.title ?? "" },
    coloraxis: colorAxis(rows, opts.signed),
    width: 190 + H * (opts.cell ?? 150),
    height: 100 + nr * (opts.cell ?? 150),
    annotations: [] as unknown[],
    margin: { l: 90, t: 70, b: 30, r: 100 },
  };
  const data: Record<string, unknown>[] = [];
  rows.forEach((r, i) => {
    for (let h = 0; h < H; h++) {
      const n = i * H + h + 1;
      const k = n === 1 ? "" : String(n);
      const y0 = 1 - (i + 1) * ch - i * gap;
      layout[`xaxis${k}`] = {
        domain: [h * (cw + gap), h * (cw + gap) + cw],
        showticklabels: false,
        anchor: `y${k}`,
      };
      layout[`yaxis${k}`] = {
        domain: [y0, y0 + ch],
        autorange: "reversed",
        showticklabels: false,
        anchor: `x${k}`,
      };
      data.push({
        type: "heatmap",
        name: `${opts.rowNames?.[i] ?? `layer ${i}`}, head ${h}`,
        z: rowsOf(r, T, h * T * T),
        coloraxis: "coloraxis",
        xaxis: `x${k}`,
        yaxis: `y${k}`,
      });
    }
    (layout.annotations as unknown[]).push({
      text: opts.rowNames?.[i] ?? `layer ${i}`,
      showarrow: false,
      xref: "paper",
      yref: "paper",
      x: -0.01,
      xanchor: "right",
      y: 1 - i * (ch + gap) - ch / 2,
    });
  });
  for (let h = 0; h < H; h++) {
    (layout.annotations as unknown[]).push({
      text: opts.colNames?.[h] ?? `head ${h}`,
      showarrow: false,
      xref: "paper",
      yref: "paper",
      x: h * (cw + gap) + cw / 2,
      y: 1.02,
      yanchor: "bottom",
    });
  }
  return { data, layout };
}
