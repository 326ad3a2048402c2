/**
 * Visuals: offline Plotly figures for notebooks and HTML reports.
 *
 * @module
 */
export { type Figure, figureBundle, plotlyJsPath, standaloneHtml } from "./plotly.ts";
export { type Displayable, heatmap, type HeatmapOptions, lines, show } from "./figures.ts";
