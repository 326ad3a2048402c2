/**
 * Level 2 of notebook CI (ecosystem.md §2.3): every notebook under notebooks/ (found by listing the
 * folder, so new notebooks need no edit here) runs top to bottom in the real Deno Jupyter kernel
 * through run_notebook.py, which keeps outputs that arrive after the kernel reports idle: no cell may
 * err, and a notebook that draws charts must produce the Plotly mimetype.
 *
 * The executed notebook is then exported with `nbconvert --to html` + `inlinePlotlyHtml`
 * (`exportNotebookHtml`) to `out/html/` (`LAB_HTML_DIR` moves it): the export must load no script
 * from another host (no CDN) and carry plotly.js and every figure, and, where Chromium is installed,
 * every chart must draw from the file with all network requests blocked.
 *
 * Needs Debian's Jupyter and the Deno kernelspec (`sh setup.sh` installs both).
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { exportNotebookHtml } from "../../lib/viz/nbconvert.ts";
import {
  CHROMIUM,
  CHROMIUM_FLAGS,
  drawsCharts,
  isFile,
  listNotebooks,
  NOTEBOOK_DIR,
  ROOT,
  runCommand,
} from "./_notebooks.ts";

const runner = `${ROOT}tests/notebooks/run_notebook.py`;
const notebooks = listNotebooks();
const haveChromium = isFile(CHROMIUM);

Deno.test("notebooks: there are at least the tour and the mixing matrices", () => {
  for (const name of ["00-tour.ipynb", "02-mixing-matrices.ipynb"]) {
    assert.ok(notebooks.includes(name), `${name} missing; found ${notebooks.join(", ")}`);
  }
});

Deno.test("notebooks: the speculative decoding notebook is there", () => {
  assert.ok(notebooks.includes("05-speculative-decoding.ipynb"), `found ${notebooks.join(", ")}`);
});

/** Opens an HTML file offline (every non-file request aborted); ids of the Plotly figures, drawn or not. */
async function chartsOffline(htmlPath: string): Promise<{ id: string; drew: boolean }[]> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
  });
  try {
    const page = await browser.newPage();
    await page.route(/^(?!file:)/, (route) => route.abort());
    await page.goto(`file://${htmlPath}`);
    const js =
      `[...document.querySelectorAll("div[id^='mdl-plot-']")].map((d) => ({ id: d.id, drew: !!d.querySelector("svg.main-svg") }))`;
    return await page.waitForFunction(
      `(() => { const c = ${js}; return c.every((x) => x.drew) ? c : false; })()`,
      undefined,
      {
        timeout: 20_000,
        polling: 200,
      },
    ).then((h) => h.jsonValue() as Promise<{ id: string; drew: boolean }[]>)
      .catch(async () => await page.evaluate(js) as { id: string; drew: boolean }[]);
  } finally {
    await browser.close();
  }
}

for (const name of notebooks) {
  Deno.test(`notebooks/${name} runs top to bottom in the Deno kernel without errors; its HTML export is offline`, async () => {
    const outDir = await Deno.makeTempDir();
    const executed = `${outDir}/${name}`;
    const r = await runCommand("/usr/bin/python3", [
      runner,
      `${NOTEBOOK_DIR}/${name}`,
      executed,
      "--timeout",
      "600",
    ]);
    const last = r.stdout.trim().split("\n").at(-1) ?? "";
    assert.ok(last.startsWith("{"), `runner failed (exit ${r.code}):\n${r.stderr.slice(-2000)}`);
    const report = JSON.parse(last);
    const slowest = Object.entries(report.cell_seconds as Record<string, number>).sort((a, b) => b[1] - a[1])
      .slice(0, 3).map(([cell, s]) => `cell ${cell} ${s} s`).join(", ");
    console.log(`${name}: ${report.cells} cells in ${report.seconds} s in the kernel (slowest: ${slowest})`);
    assert.deepEqual(report.errors, [], `cell errors in ${name}`);
    const source = await Deno.readTextFile(`${NOTEBOOK_DIR}/${name}`);
    const charts = drawsCharts(source);
    if (charts) {
      assert.ok(report.mimetypes.includes("application/vnd.plotly.v1+json"), `no Plotly output in ${name}`);
    }

    const htmlDir = Deno.env.get("LAB_HTML_DIR") ?? `${ROOT}out/html`;
    const htmlPath = `${htmlDir}/${name.replace(/\.ipynb$/, "")}.html`;
    const html = await exportNotebookHtml(executed, htmlPath);
    console.log(`${name}: HTML export ${(html.length / 1e6).toFixed(1)} MB → ${htmlPath}`);
    const remote = [...html.matchAll(/<script\b[^>]*\bsrc\s*=\s*["']?((?:https?:)?\/\/[^"'\s>]*)/gi)].map((
      m,
    ) => m[1]);
    assert.deepEqual(remote, [], `${name}: the export loads scripts from the network`);
    assert.doesNotMatch(html, /<script[^>]*cdn\.plot\.ly/i);
    assert.ok(html.includes("window.Plotly = Plotly;"), `${name}: plotly.js is not inlined in the export`);
    if (charts) {
      const figures = (html.match(/<div id="mdl-plot-[^"]+"/g) ?? []).length;
      assert.ok(figures > 0, `${name}: no figure in the export`);
      if (haveChromium || Deno.env.get("CI") === "true") {
        const drawn = await chartsOffline(htmlPath);
        assert.equal(drawn.length, figures, `${name}: figures on the offline page`);
        assert.deepEqual(
          drawn.filter((c) => !c.drew).map((c) => c.id),
          [],
          `${name}: charts that did not draw offline`,
        );
      }
    }
    await Deno.remove(outDir, { recursive: true });
  });
}
