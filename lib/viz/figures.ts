/**
 * Figures for notebooks and reports: heatmaps of mixing matrices, line charts of curves, and a
 * displayable wrapper that Deno's Jupyter kernel renders as the last expression of a cell.
 *
 * @module
 */
import { type Figure, figureBundle } from "./plotly.ts";

/** Something Deno's Jupyter kernel displays through its `Symbol.for("Jupyter.display")` method. */
export interface Displayable {
  /** The MIME bundle. */
  [key: symbol]: () => Record<string, unknown>;
}

/** Wraps a figure so that a notebook cell ending with it shows the chart (offline Plotly bundle). */
export function show(fig: Figure, summary = "Plotly figure"): Displayable {
  return { [Symbol.for("Jupyter.display")]: () => figureBundle(fig, summary) };
}

/** Options of {@linkcode heatmap}. */
export interface HeatmapOptions {
  /** The chart's title. */
  title?: string;
  /** The x axis title; default "source s" (the mixing-matrix convention: columns are sources). */
  xTitle?: string;
  /** The y axis title; default "output t" (rows are outputs). */
  yTitle?: string;
  /** A signed, zero-centred colour scale (SSM matrices) instead of a sequential one (probabilities). */
  signed?: boolean;
  /** Lower end of a fixed colour range (shared scales across panels). */
  zmin?: number;
  /** Upper end of a fixed colour range. */
  zmax?: number;
  /** Tick labels (e.g. tokens) for both axes. */
  labels?: string[];
}

/** A T×T (or R×C) matrix as a heatmap with row 0 at the top (rows = output t, columns = source s). */
export function heatmap(
  values: ArrayLike<number>,
  rows: number,
  cols: number,
  opts: HeatmapOptions = {},
): Figure {
  const z: number[][] = [];
  for (let r = 0; r < rows; r++) z.push(Array.from({ length: cols }, (_, c) => values[r * cols + c]));
  let zmin = opts.zmin;
  let zmax = opts.zmax;
  if (opts.signed && zmin === undefined && zmax === undefined) {
    const m = Math.max(...z.flat().map(Math.abs));
    zmin = -m;
    zmax = m;
  }
  return {
    data: [{
      type: "heatmap",
      z,
      x: opts.labels,
      y: opts.labels,
      colorscale: opts.signed ? "RdBu" : "Viridis",
      reversescale: !!opts.signed,
      zmin,
      zmax,
    }],
    layout: {
      title: { text: opts.title ?? "" },
      xaxis: { title: { text: opts.xTitle ?? "source s" } },
      yaxis: { title: { text: opts.yTitle ?? "output t" }, autorange: "reversed" },
      width: 520,
      height: 480,
    },
  };
}

/** Line chart of named series over a shared x. */
export function lines(
  series: Record<string, { x: number[]; y: number[] }>,
  opts: { title?: string; xTitle?: string; yTitle?: string } = {},
): Figure {
  return {
    data: Object.entries(series).map(([name, s]) => ({
      type: "scatter",
      mode: "lines",
      name,
      x: s.x,
      y: s.y,
    })),
    layout: {
      title: { text: opts.title ?? "" },
      xaxis: { title: { text: opts.xTitle ?? "" } },
      yaxis: { title: { text: opts.yTitle ?? "" } },
    },
  };
}
