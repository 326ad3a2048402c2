/**
 * Plotly figures for notebooks and reports, fully offline.
 *
 * A figure is shown as a MIME bundle: `application/vnd.plotly.v1+json` (VS Code, JupyterLab with the
 * plotly extension), a small `text/html` fallback that draws with `window.Plotly` when the page has it
 * (nbconvert HTML exports get plotly.js inlined by `inlinePlotlyHtml`), and a `text/plain` summary.
 * plotly.js comes from the npm package `plotly.js-dist`, never a CDN.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** A Plotly figure: traces, layout and config, as plotly.js takes them. */
export interface Figure {
  data: Record<string, unknown>[];
  layout?: Record<string, unknown>;
  config?: Record<string, unknown>;
}

let counter = 0;

/** The MIME bundle of a figure (see the module doc); `summary` becomes the text/plain fallback. */
export function figureBundle(fig: Figure, summary = "Plotly figure"): Record<string, unknown> {
  const id = `mdl-plot-${Date.now().toString(36)}-${counter++}`;
  const json = JSON.stringify({ data: fig.data, layout: fig.layout ?? {}, config: fig.config ?? {} })
    .replace(/</g, "\\u003c");
  return {
    "application/vnd.plotly.v1+json": { data: fig.data, layout: fig.layout ?? {}, config: fig.config ?? {} },
    "text/html": `<div id="${id}" style="min-height:320px"></div><script>(function(){var f=${json};` +
      `function draw(){window.Plotly.react("${id}",f.data,f.layout,f.config);}` +
      `if(window.Plotly){draw();}else{var n=0,t=setInterval(function(){if(window.Plotly){clearInterval(t);draw();}` +
      `else if(++n>100){clearInterval(t);}},100);}})();</script>`,
    "text/plain": summary,
  };
}

/** Path of plotly.js from the installed npm package `plotly.js-dist`. */
export function plotlyJsPath(): string {
  return fileURLToPath(import.meta.resolve("plotly.js-dist/plotly.js"));
}

/** A self-contained HTML page showing the figures (plotly.js inlined: works offline). */
export async function standaloneHtml(
  title: string,
  figures: { title?: string; fig: Figure }[],
): Promise<string> {
  const js = await Deno.readTextFile(plotlyJsPath());
  const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const body = figures.map(({ title, fig }, i) =>
    `${title ? `<h2>${esc(title)}</h2>` : ""}<div id="fig${i}" style="min-height:360px"></div>` +
    `<script>Plotly.newPlot("fig${i}",${JSON.stringify(fig.data).replace(/</g, "\\u003c")},` +
    `${JSON.stringify(fig.layout ?? {}).replace(/</g, "\\u003c")},${
      JSON.stringify(fig.config ?? {})
    });</script>`
  ).join("\n");
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title>` +
    `<script>${js.replace(/<\/script/gi, "<\\/script")}</script></head><body><h1>${
      esc(title)
    }</h1>\n${body}</body></html>`;
}
