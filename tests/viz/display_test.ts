import assert from "node:assert/strict";
import { table, tableBundle, tokenStream } from "../../lib/viz/display.ts";
import { figureBundle, inlinePlotlyHtml, plotlyRelativePath } from "../../lib/viz/plotly.ts";
import { UsageError } from "../../lib/errors.ts";

type Call = { bundle: Record<string, string>; opts: { raw: boolean; display_id?: string; update?: boolean } };
const recorder = () => {
  const calls: Call[] = [];
  const display = (bundle: unknown, opts: Call["opts"]) => {
    calls.push({ bundle: bundle as Record<string, string>, opts });
    return Promise.resolve();
  };
  return { calls, display };
};

Deno.test("display: a result table is an HTML table and an aligned text table, escaped", async () => {
  const rows = [
    { model: "teacher", loss: 4.27595, windows: 327 },
    { model: "<50% mamba>", loss: 4.4, windows: 2, note: "a & b" },
  ];
  const b = tableBundle(rows, { title: "Brown validation" });
  assert.equal(
    b["text/plain"],
    [
      "Brown validation",
      "model         loss  windows  note",
      "-----------  -----  -------  -----",
      "teacher      4.276      327",
      "<50% mamba>    4.4        2  a & b",
    ].join("\n"),
  );
  const html = b["text/html"];
  assert.match(html, /^<table class="mdl-table"><caption>Brown validation<\/caption><thead><tr>/);
  assert.equal((html.match(/<tr>/g) ?? []).length, 3);
  assert.match(html, /<td style="text-align:left">&#60;50% mamba&#62;<\/td>/);
  assert.match(html, /<td style="text-align:right">4\.276<\/td>/);
  assert.match(html, /<td style="text-align:left">a &#38; b<\/td>/);
  assert.doesNotMatch(html, /<50%/);
  // the displayable a cell ends with carries the same bundle
  const shown = await table(rows, { title: "Brown validation" })[Symbol.for("Jupyter.display")]();
  assert.deepEqual(shown, b);
  assert.deepEqual(tableBundle(rows, { columns: ["loss"], digits: 2 })["text/plain"].split("\n"), [
    "loss",
    "----",
    " 4.3",
    " 4.4",
  ]);
});

Deno.test("display: a table of bad rows is a UsageError naming the row", () => {
  assert.throws(
    () => tableBundle([{ a: 1 }, 3 as unknown as Record<string, unknown>]),
    (e: unknown) => e instanceof UsageError && /^table: row 1 is not an object/.test(e.message),
  );
  assert.throws(() => tableBundle([{ a: 1 }], { digits: 0 }), /table: digits must be an integer/);
});

Deno.test("display: streamed tokens update one display in place, coalescing pieces", async () => {
  const { calls, display } = recorder();
  const s = tokenStream({ title: "The <jury> said", display });
  s.push(" the");
  s.push(" election");
  await new Promise((r) => setTimeout(r, 0));
  s.push(" was");
  await s.done();
  assert.equal(s.text, " the election was");
  assert.ok(calls.length >= 2 && calls.length <= 4, `${calls.length} display calls`);
  const ids = new Set(calls.map((c) => c.opts.display_id));
  assert.equal(ids.size, 1, "one display id");
  assert.deepEqual(calls.map((c) => c.opts.update), [false, ...calls.slice(1).map(() => true)]);
  assert.ok(calls.every((c) => c.opts.raw));
  const last = calls.at(-1)!.bundle;
  assert.equal(last["text/plain"], "The <jury> said\n the election was");
  assert.match(last["text/html"], /The &#60;jury&#62; said/);
  assert.match(last["text/html"], /<pre[^>]*> the election was<\/pre>$/); // no cursor once done
  assert.match(calls[0].bundle["text/html"], /▌/);
  assert.throws(() => s.push("x"), UsageError);
});

Deno.test("display: a token stream outside the kernel collects text and sends nothing", async () => {
  const s = tokenStream(); // no Deno.jupyter under deno test
  s.push("a");
  s.push("b");
  await s.done();
  assert.equal(s.text, "ab");
});

Deno.test("plotly: the HTML fallback loads the project's plotly.js through Jupyter's files/ route", () => {
  const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
  assert.equal(plotlyRelativePath(`${root}/notebooks`), "../node_modules/plotly.js-dist/plotly.js");
  assert.equal(plotlyRelativePath(root), "node_modules/plotly.js-dist/plotly.js");
  assert.equal(plotlyRelativePath("/"), undefined);
  const html = String(figureBundle({ data: [{ type: "scatter", y: [1, 2] }] })["text/html"]);
  assert.match(html, /if\(window\.Plotly\)\{draw\(\);return;\}/);
  // cwd is the repository root under deno test
  assert.match(html, /"files\/"\+.*\+"node_modules\/plotly\.js-dist\/plotly\.js"/);
  assert.match(html, /data-notebook-path/);
  assert.doesNotMatch(html, /https?:\/\//);
});

/** Runs a figure's HTML fallback script against a fake page; returns the script URL it adds, if any. */
function loaderUrl(html: string, page: { attrs?: Record<string, string>; path: string; plotly?: boolean }) {
  const js = html.slice(html.indexOf("<script>") + 8, html.lastIndexOf("</script>"));
  const added: { src?: string }[] = [];
  const win: Record<string, unknown> = page.plotly ? { Plotly: { react: () => {} } } : {};
  const doc = {
    body: { getAttribute: (k: string) => page.attrs?.[k] ?? null },
    head: { appendChild: (e: { src?: string }) => added.push(e) },
    createElement: () => ({}),
  };
  const noTimer = () => 0;
  new Function("window", "document", "location", "setInterval", "clearInterval", js)(
    win,
    doc,
    { pathname: page.path },
    noTimer,
    noTimer,
  );
  return added.map((e) => e.src);
}

Deno.test("plotly: the live-page loader asks the Jupyter server for plotly.js next to the notebook", () => {
  const rel = "../node_modules/plotly.js-dist/plotly.js";
  const html = String(figureBundle({ data: [] }, "f", { plotlyPath: rel })["text/html"]);
  // classic Notebook 6 / Notebook 7: the body says where the notebook is
  assert.deepEqual(
    loaderUrl(html, {
      attrs: { "data-base-url": "/", "data-notebook-path": "notebooks/00-tour.ipynb" },
      path: "/x",
    }),
    ["/files/notebooks/../node_modules/plotly.js-dist/plotly.js"],
  );
  // JupyterLab under a base URL: from the page path
  assert.deepEqual(loaderUrl(html, { path: "/user/me/lab/tree/nb/a.ipynb" }), [
    "/user/me/files/nb/../node_modules/plotly.js-dist/plotly.js",
  ]);
  assert.deepEqual(loaderUrl(html, { path: "/notebooks/notebooks/00-tour.ipynb" }), [
    "/files/notebooks/../node_modules/plotly.js-dist/plotly.js",
  ]);
  // a page that has plotly.js already (an inlined export) loads nothing
  assert.deepEqual(loaderUrl(html, { path: "/notebooks/a.ipynb", plotly: true }), []);
});

Deno.test("plotly: inlining makes an nbconvert page offline, once", async () => {
  const page = `<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8" />\n` +
    `<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.1.10/require.min.js"></script>\n` +
    `<script type="text/javascript" src="//cdn.plot.ly/plotly.min.js"> </script>\n` +
    `<script src="local.js"></script>\n</head><body><div id="x"></div></body></html>`;
  const js = 'window.Plotly = {}; var s = "</script>";';
  const out = await inlinePlotlyHtml(page, js);
  assert.doesNotMatch(out, /<script[^>]*src=["']?(https?:)?\/\//i);
  assert.match(out, /<script src="local\.js"><\/script>/);
  assert.ok(out.indexOf("window.Plotly = {}") < out.indexOf("</head>"));
  assert.match(out, /var s = "<\\\/script>";<\/script>/);
  assert.equal(await inlinePlotlyHtml(out, js), out);
});
