/**
 * Every notebook, run in a real browser the way a user runs it: Debian's Jupyter Notebook server on
 * loopback (token, a temp copy of notebooks/ next to links to the rest of the checkout), each
 * notebook opened in headless Chromium through `playwright-core`, Cell → Run All, then: no cell has
 * an error output, the kernel is alive, and every Plotly chart drew (`svg.main-svg` in each
 * figure's output; the figures' HTML fallback loads the project's plotly.js through the server's
 * `files/` route, no CDN). A full-page screenshot of each notebook is kept under the folder this
 * test prints (`out/screens/` by default; `LAB_SCREENS_DIR` moves it).
 *
 * Needs /usr/bin/chromium (`LAB_CHROMIUM` names another) and /usr/bin/jupyter-notebook (`sh setup.sh`
 * installs both). Without them the test is skipped, except under CI=true, where it fails.
 */
import assert from "node:assert/strict";
import { type BrowserContext, chromium } from "playwright-core";
import {
  childEnv,
  CHROMIUM,
  CHROMIUM_FLAGS,
  drawsCharts,
  isFile,
  listNotebooks,
  NOTEBOOK_DIR,
  ROOT,
} from "./_notebooks.ts";

const JUPYTER = "/usr/bin/jupyter-notebook";
/** Notebooks run at the same time (`LAB_BROWSER_LANES`, default 2). */
const LANES = Math.max(1, Number(Deno.env.get("LAB_BROWSER_LANES") ?? 2) || 1);
/** Kernel time allowed per notebook (lavapipe is slow; the tour takes about a minute). */
const RUN_TIMEOUT_MS = 10 * 60_000;

const missing = [CHROMIUM, JUPYTER].filter((p) => !isFile(p));
const inCI = Deno.env.get("CI") === "true";

/** The page-side state of a running notebook (classic Notebook 6 front end). */
interface RunState {
  kernel: string; // the kernel indicator's class: kernel_idle_icon, kernel_busy_icon, kernel_dead_icon
  codeCells: number;
  running: number; // prompts showing In [*]
  numbered: number; // prompts showing In [n]
  errors: { cell: number; ename: string; evalue: string }[];
}

const STATE_JS = `(() => {
  const cells = Jupyter.notebook.get_cells().map((c, i) => [c, i]).filter(([c]) => c.cell_type === "code");
  const errors = [];
  for (const [c, i] of cells) {
    for (const o of c.output_area.outputs) {
      if (o.output_type === "error") errors.push({ cell: i, ename: String(o.ename), evalue: String(o.evalue) });
    }
  }
  return {
    kernel: document.getElementById("kernel_indicator_icon")?.className ?? "",
    codeCells: cells.length,
    running: cells.filter(([c]) => c.input_prompt_number === "*").length,
    numbered: cells.filter(([c]) => typeof c.input_prompt_number === "number").length,
    errors,
  };
})()`;

/** Per Plotly output (a figure's div): whether plotly.js drew it. */
const CHARTS_JS =
  `[...document.querySelectorAll(".output_subarea div[id^='mdl-plot-'], .output_subarea .js-plotly-plot")]
  .filter((d, i, all) => !all.some((o) => o !== d && o.contains(d)))
  .map((d) => ({ id: d.id, drew: !!d.querySelector("svg.main-svg") }))`;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A notebook root: copies of the notebooks, links to everything else at the checkout's top level. */
async function notebookRoot(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mdl-browser-" });
  await Deno.mkdir(`${dir}/root/notebooks`, { recursive: true });
  for (const e of Deno.readDirSync(ROOT)) {
    if (e.name === ".git" || e.name === "notebooks") continue;
    await Deno.symlink(`${ROOT}${e.name}`, `${dir}/root/${e.name}`);
  }
  for (const name of listNotebooks()) {
    await Deno.copyFile(`${NOTEBOOK_DIR}/${name}`, `${dir}/root/notebooks/${name}`);
  }
  return dir;
}

/** What one notebook's run needs: the browser, the server's address and token, where shots go. */
interface BrowserRun {
  context: BrowserContext;
  base: string;
  token: string;
  screens: string;
  api: (path: string, init?: RequestInit) => Promise<Response>;
}

/**
 * Opens one notebook, runs all its cells from the Cell menu, waits for the kernel to finish, checks
 * errors and charts, keeps a screenshot, and stops the notebook's kernel. Returns the failures.
 */
async function runInBrowser(name: string, run: BrowserRun): Promise<string[]> {
  const t1 = performance.now();
  const failures: string[] = [];
  const page = await run.context.newPage();
  page.on("pageerror", (e) => failures.push(`${name}: page error: ${e.message}`));
  const shot = `${run.screens}/${name.replace(/\.ipynb$/, "")}.png`;
  try {
    await page.goto(`${run.base}/notebooks/notebooks/${encodeURIComponent(name)}?token=${run.token}`);
    // the kernel is up when it has answered kernel_info
    await page.waitForFunction(
      "window.Jupyter?.notebook?.kernel?.is_connected?.() && !!Jupyter.notebook.kernel.info_reply?.implementation",
      undefined,
      { timeout: 60_000 },
    );
    // Cell → Run All, through the menu as a user would
    await page.click("#celllink");
    await page.click("#run_all_cells > a");
    await page.waitForFunction(
      `(() => { const s = ${STATE_JS}; return s.running > 0 || s.numbered > 0 || s.errors.length > 0; })()`,
      undefined,
      { timeout: 30_000 },
    );
    // finished: nothing queued or running, the kernel idle (or dead)
    const state = await page.waitForFunction(
      `(() => { const s = ${STATE_JS};
        const over = s.kernel.includes("kernel_dead") ||
          (s.running === 0 && s.kernel.includes("kernel_idle") && (s.numbered === s.codeCells || s.errors.length > 0));
        return over ? s : false; })()`,
      undefined,
      { timeout: RUN_TIMEOUT_MS, polling: 250 },
    ).then((h) => h.jsonValue() as Promise<RunState>);
    // outputs may arrive just after idle (ecosystem.md §2.2); the front end still files them
    await page.waitForTimeout(1000);
    const charts = await page.waitForFunction(
      `(() => { const c = ${CHARTS_JS}; return c.every((x) => x.drew) ? c : false; })()`,
      undefined,
      { timeout: 30_000, polling: 250 },
    ).then((h) => h.jsonValue() as Promise<{ id: string; drew: boolean }[]>)
      .catch(async () => await page.evaluate(CHARTS_JS) as { id: string; drew: boolean }[]);
    const final = await page.evaluate(STATE_JS) as RunState;

    const json = await Deno.readTextFile(`${NOTEBOOK_DIR}/${name}`);
    console.log(
      `${name}: ${final.numbered}/${final.codeCells} cells ran, ${final.errors.length} errors, ` +
        `${charts.filter((c) => c.drew).length}/${charts.length} charts drew, ` +
        `${((performance.now() - t1) / 1000).toFixed(1)} s → ${shot}`,
    );
    if (state.kernel.includes("kernel_dead")) failures.push(`${name}: the kernel died`);
    for (const e of final.errors) failures.push(`${name} cell ${e.cell}: ${e.ename}: ${e.evalue}`);
    if (final.numbered !== final.codeCells && final.errors.length === 0) {
      failures.push(`${name}: only ${final.numbered} of ${final.codeCells} code cells ran`);
    }
    for (const c of charts.filter((c) => !c.drew)) failures.push(`${name}: chart ${c.id} did not draw`);
    if (drawsCharts(json) && charts.length === 0) {
      failures.push(`${name}: draws charts, but none is on the page`);
    }
  } catch (e) {
    failures.push(`${name}: ${(e as Error).message.split("\n")[0]}`);
  } finally {
    // the notebook's whole length in one picture: let the page grow instead of #site scrolling
    await page.addStyleTag({
      content:
        "html,body,#site{height:auto!important;overflow:visible!important}#header{position:static!important}",
    }).then(() => page.screenshot({ path: shot, fullPage: true })).catch((e) =>
      failures.push(`${name}: no screenshot (${(e as Error).message.split("\n")[0]})`)
    );
    // stop this notebook's kernel: its memory and threads are not needed any more
    const sessions = await (await run.api("/api/sessions")).json() as { id: string; path: string }[];
    for (const s of sessions.filter((s) => s.path === `notebooks/${name}`)) {
      await (await run.api(`/api/sessions/${s.id}`, { method: "DELETE" })).body?.cancel();
    }
    await page.close();
  }
  return failures;
}

Deno.test({
  name: "notebooks in a real browser: Jupyter Notebook + headless Chromium run every notebook without errors",
  ignore: missing.length > 0 && !inCI,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    assert.deepEqual(
      missing,
      [],
      `missing ${missing.join(", ")} (sh setup.sh installs chromium and jupyter-notebook)`,
    );
    const t0 = performance.now();
    const screens = Deno.env.get("LAB_SCREENS_DIR") ?? `${ROOT}out/screens`;
    await Deno.mkdir(screens, { recursive: true });
    console.log(`screenshots: ${screens}/`);

    const tmp = await notebookRoot();
    const port = freePort();
    const token = crypto.randomUUID().replaceAll("-", "");
    const base = `http://127.0.0.1:${port}`;
    const server = new Deno.Command(JUPYTER, {
      args: [
        "--no-browser",
        "--ip=127.0.0.1",
        `--port=${port}`,
        "--port-retries=0",
        `--notebook-dir=${tmp}/root`,
        `--NotebookApp.token=${token}`,
        "--NotebookApp.password=",
        ...(Deno.uid() === 0 ? ["--allow-root"] : []), // CI containers run as root
      ],
      env: childEnv({
        JUPYTER_CONFIG_DIR: `${tmp}/config`,
        JUPYTER_RUNTIME_DIR: `${tmp}/runtime`,
      }),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let exited: Deno.CommandStatus | undefined;
    server.status.then((st) => exited = st);
    const serverLog: string[] = [];
    const logDone = server.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (s) => void serverLog.push(s) }),
    );
    const api = (path: string, init: RequestInit = {}) =>
      fetch(`${base}${path}`, { ...init, headers: { Authorization: `token ${token}` } });

    let context: BrowserContext | undefined;
    try {
      // the server is up when its REST API answers
      for (let i = 0;; i++) {
        try {
          const r = await api("/api/status");
          await r.body?.cancel();
          if (r.ok) break;
        } catch { /* not listening yet */ }
        if (exited) {
          assert.fail(`jupyter-notebook exited (${exited.code}):\n${serverLog.join("").slice(-2000)}`);
        }
        if (i > 300) {
          assert.fail(`jupyter-notebook did not start on ${base}:\n${serverLog.join("").slice(-2000)}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      context = await chromium.launchPersistentContext(`${tmp}/chromium-profile`, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_FLAGS,
        viewport: { width: 1280, height: 900 },
      });
      console.log(`server and browser up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

      const ctx = { context, base, token, screens, api };
      // notebooks in LANES parallel pages (each with its own kernel): part of a notebook's time is
      // single-threaded (kernel start, JS, page work); on 2 shared cores, 6 notebooks took 328 s in one
      // lane and 282 s in two
      const queue = listNotebooks();
      const failures: string[] = [];
      const lane = async () => {
        for (let name; (name = queue.shift()) !== undefined;) failures.push(...await runInBrowser(name, ctx));
      };
      await Promise.all(Array.from({ length: LANES }, lane));
      console.log(`browser test: ${((performance.now() - t0) / 1000).toFixed(1)} s in all`);
      assert.deepEqual(failures, [], `failures in the browser (screenshots in ${screens}/)`);
    } finally {
      await context?.close().catch(() => {});
      try {
        server.kill("SIGTERM");
      } catch { /* already gone */ }
      await server.status;
      await logDone.catch(() => {});
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
