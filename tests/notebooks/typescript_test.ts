/**
 * Level 1 of notebook CI (ecosystem.md §2.3): every notebook's code cells, as one TypeScript module
 * (extract.ts), pass `deno check` with the project's strict settings and run top to bottom with
 * `deno run` in the notebook's directory; every display they make is a valid MIME bundle, and a
 * notebook that draws charts yields the Plotly mimetype.
 */
import assert from "node:assert/strict";
import { annotateCells, notebookToModule, parseNotebook } from "./extract.ts";
import { REPORT_PREFIX } from "./_jupyter_stub.ts";
import { drawsCharts, listNotebooks, NOTEBOOK_DIR, ROOT, runCommand } from "./_notebooks.ts";

const deno = Deno.execPath();
const tail = (s: string, n = 3000) => s.length > n ? "…" + s.slice(-n) : s;

for (const name of listNotebooks()) {
  Deno.test(`notebooks/${name}: the code cells type-check and run as one TypeScript module`, async () => {
    const path = `${NOTEBOOK_DIR}/${name}`;
    const json = await Deno.readTextFile(path);
    const source = notebookToModule(parseNotebook(json, path), { notebookUrl: new URL(`file://${path}`) });
    const dir = await Deno.makeTempDir({ prefix: "mdl-notebook-ts-" });
    const module = `${dir}/${name.replace(/\.ipynb$/, "")}.ts`;
    await Deno.writeTextFile(module, source);
    // positions in the module are followed by the notebook cell they are in
    const where = (s: string) => annotateCells(tail(s), module, source);
    let passed = false;
    try {
      const check = await runCommand(deno, ["check", "--quiet", "--config", `${ROOT}deno.json`, module]);
      assert.equal(
        check.code,
        0,
        `deno check of ${name}'s cells (kept as ${module}) failed:\n${where(check.stderr)}`,
      );

      const t0 = performance.now();
      const run = await runCommand(deno, [
        "run",
        "-A",
        "--cached-only",
        "--config",
        `${ROOT}deno.json`,
        module,
      ], {
        cwd: NOTEBOOK_DIR,
      });
      const seconds = (performance.now() - t0) / 1000;
      assert.equal(
        run.code,
        0,
        `${name}'s cells (kept as ${module}) failed as a script (exit ${run.code}):\n${where(run.stderr)}`,
      );
      const line = run.stdout.split("\n").find((l) => l.startsWith(REPORT_PREFIX));
      assert.ok(line, `${name}: the module ended without its report line:\n${tail(run.stdout)}`);
      const report = JSON.parse(line.slice(REPORT_PREFIX.length)) as {
        displays: number;
        mimetypes: string[];
      };
      console.log(
        `${name}: ${report.displays} displays (${report.mimetypes.join(", ")}) in ${seconds.toFixed(1)} s`,
      );
      if (drawsCharts(json)) {
        assert.ok(
          report.mimetypes.includes("application/vnd.plotly.v1+json"),
          `${name} draws charts but showed no Plotly bundle (saw ${
            report.mimetypes.join(", ") || "nothing"
          })`,
        );
      }
      passed = true;
    } finally {
      if (passed) await Deno.remove(dir, { recursive: true }); // a failing module stays for a look
    }
  });
}
