/**
 * Plotly figures for notebooks and reports, fully offline.
 *
 * A figure is shown as a MIME bundle: `application/vnd.plotly.v1+json` (VS Code, JupyterLab with the
 * plotly extension), a small `text/html` fallback, and a `text/plain` summary. The fallback draws with
 * `window.Plotly`: nbconvert HTML exports get plotly.js inlined by {@linkcode inlinePlotlyHtml}; in a
 * live Jupyter page (classic Notebook, Notebook 7, JupyterLab) that lacks it, the first chart loads
 * the project's own copy through the server's `files/` route (the path from the kernel's directory
 * to `node_modules/plotly.js-dist/plotly.js`, which must lie under the server's root).
 * plotly.js comes from the npm package `plotly.js-dist`, never a CDN.
 *
 * @module
 */
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** A Plotly figure: traces, layout and config, as plotly.js takes them. */
export interface Figure {
  /** The traces (`{ type: "heatmap", z, … }`, `{ type: "scatter", x, y, … }`). */
  data: Record<string, unknown>[];
  /** Titles, axes, size (`title: { text }`: plotly.js 3+ has no string titles). */
  layout?: Record<string, unknown>;
  /** plotly.js options (`responsive`, `displayModeBar`, …). */
  config?: Record<string, unknown>;
}

let counter = 0;

/**
 * The path from `dir` (default: the working directory, which is the notebook's own in the kernel) to
 * the first `node_modules/plotly.js-dist/plotly.js` found in `dir` or above it, with `/` separators;
 * undefined when there is none. The live-page loader of {@linkcode figureBundle} fetches it through
 * the Jupyter server's `files/` route, relative to the notebook.
 */
export function plotlyRelativePath(dir?: string): string | undefined {
  let start: string;
  try {
    start = dir ?? Deno.cwd();
  } catch {
    return undefined; // no read permission for the working directory
  }
  if (relCache.has(start)) return relCache.get(start);
  let found: string | undefined;
  for (let d = start;; d = dirname(d)) {
    const candidate = join(d, "node_modules", "plotly.js-dist", "plotly.js");
    try {
      if (Deno.statSync(candidate).isFile) {
        found = relative(start, candidate).split(sep).join("/");
        break;
      }
    } catch { /* not here: look one level up */ }
    if (dirname(d) === d) break;
  }
  relCache.set(start, found);
  return found;
}
const relCache = new Map<string, string | undefined>();

/**
 * The live-page loader: once per page, when `window.Plotly` is missing, a `<script>` for plotly.js at
 * `<base>files/<notebook dir>/<rel>`. The notebook's path comes from the classic Notebook's
 * `data-base-url` / `data-notebook-path` attributes, else from the page URL (`…/notebooks/<path>`,
 * `…/lab/tree/<path>`, `…/doc/tree/<path>`).
 */
function loaderJs(rel: string): string {
  return `if(!window.__mdlPlotlyLoading){window.__mdlPlotlyLoading=1;var b=document.body,base,dir;` +
    `if(b&&b.getAttribute("data-notebook-path")!==null){base=b.getAttribute("data-base-url")||"/";` +
    `dir=b.getAttribute("data-notebook-path").replace(/[^\\/]*$/,"");}` +
    `else{var m=location.pathname.match(/^(.*?\\/)(?:notebooks|lab\\/tree|doc\\/tree)\\/((?:.*\\/)?)[^\\/]*$/);` +
    `if(m){base=m[1];dir=m[2];}}` +
    `if(base!==undefined){var s=document.createElement("script");` +
    `s.src=base.replace(/\\/?$/,"/")+"files/"+(dir?dir.replace(/\\/?$/,"/"):"")+${
      JSON.stringify(encodeURI(rel))
    };` +
    `document.head.appendChild(s);}}`;
}

/** Options of {@linkcode figureBundle}. */
export interface FigureBundleOptions {
  /**
   * Path of plotly.js relative to the notebook, for the live-page loader (default
   * {@linkcode plotlyRelativePath}`()`); `null`: no loader.
   */
  plotlyPath?: string | null;
}

/** The MIME bundle of a figure (see the module doc); `summary` becomes the text/plain fallback. */
export function figureBundle(
  fig: Figure,
  summary = "Plotly figure",
  opts: FigureBundleOptions = {},
): Record<string, unknown> {
  const id = `mdl-plot-${Date.now().toString(36)}-${counter++}`;
  const json = JSON.stringify({ data: fig.data, layout: fig.layout ?? {}, config: fig.config ?? {} })
    .replace(/</g, "\\u003c");
  const rel = opts.plotlyPath === undefined ? plotlyRelativePath() : opts.plotlyPath;
  return {
    "application/vnd.plotly.v1+json": { data: fig.data, layout: fig.layout ?? {}, config: fig.config ?? {} },
    "text/html":
      `<div id="${id}" class="mdl-plot" style="min-height:320px"></div><script>(function(){var f=${json};` +
      `function draw(){window.Plotly.react("${id}",f.data,f.layout,f.config);}` +
      `if(window.Plotly){draw();return;}${rel ? loaderJs(rel) : ""}` +
      `var n=0,t=setInterval(function(){if(window.Plotly){clearInterval(t);draw();}` +
      `else if(++n>600){clearInterval(t);}},100);})();</script>`,
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

/** The marker {@linkcode inlinePlotlyHtml} leaves, so that a second pass does nothing. */
const INLINED = "<!-- plotly.js inlined by mamba-distill-lab -->";

/**
 * Makes an `nbconvert --to html` export work offline: drops every `<script src>` that points at
 * another host (nbconvert's templates load require.js and MathJax from cdnjs; neither is needed to
 * draw the charts) and inlines plotly.js at the top of `<head>`, so that every figure's `text/html`
 * fallback draws without a network. `plotlyJs` defaults to the installed `plotly.js-dist`. Running it
 * twice changes nothing.
 */
export async function inlinePlotlyHtml(html: string, plotlyJs?: string): Promise<string> {
  if (html.includes(INLINED)) return html;
  const js = plotlyJs ?? await Deno.readTextFile(plotlyJsPath());
  const withoutCdn = html.replace(
    /<script\b[^>]*\bsrc\s*=\s*["']?(?:https?:)?\/\/[^>]*>\s*<\/script\s*>/gi,
    "",
  );
  const tag = `${INLINED}<script>${js.replace(/<\/script/gi, "<\\/script")}</script>`;
  const head = /<head\b[^>]*>/i.exec(withoutCdn);
  if (head) {
    const at = head.index + head[0].length;
    return withoutCdn.slice(0, at) + tag + withoutCdn.slice(at);
  }
  return tag + withoutCdn;
}
