/**
 * Visuals: offline Plotly figures for notebooks and HTML reports, notebook display helpers (result
 * tables, streamed tokens) and offline `nbconvert --to html` exports.
 *
 * @module
 */
export {
  type Figure,
  figureBundle,
  type FigureBundleOptions,
  inlinePlotlyHtml,
  plotlyJsPath,
  plotlyRelativePath,
  standaloneHtml,
} from "./plotly.ts";
export { type Displayable, heatmap, type HeatmapOptions, lines, show } from "./figures.ts";
export {
  DISPLAY_HOOK,
  type DisplayFn,
  jupyterDisplay,
  table,
  tableBundle,
  type TableOptions,
  type TokenStream,
  tokenStream,
  type TokenStreamOptions,
} from "./display.ts";
export { type ExportHtmlOptions, exportNotebookHtml } from "./nbconvert.ts";
export {
  type ComparisonOptions,
  type GridOptions,
  headDistanceBars,
  headDistances,
  mixingComparison,
  mixingGrid,
} from "./mixing_figures.ts";
export { expectedSpeedup, roundsFigure, type RoundsFigureOptions } from "./speculative_figures.ts";
