/**
 * Every notebook under notebooks/ runs top to bottom in the real Deno Jupyter kernel (through
 * run_notebook.py, which keeps outputs that arrive after the kernel reports idle): no cell may err,
 * and a notebook that draws charts must produce the Plotly mimetype. Needs Debian's Jupyter and the
 * Deno kernelspec (`sh setup.sh` installs both).
 */
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url).pathname;
const runner = `${root}tests/notebooks/run_notebook.py`;
const notebooks = [...Deno.readDirSync(`${root}notebooks`)].map((e) => e.name).filter((n) =>
  n.endsWith(".ipynb")
)
  .sort();

Deno.test("notebooks: there is at least the tour", () => {
  assert.ok(notebooks.includes("00-tour.ipynb"), `found ${notebooks.join(", ")}`);
});

Deno.test("notebooks: the speculative decoding notebook is there", () => {
  assert.ok(notebooks.includes("05-speculative-decoding.ipynb"), `found ${notebooks.join(", ")}`);
});

for (const name of notebooks) {
  Deno.test(`notebooks/${name} runs top to bottom in the Deno kernel without errors`, async () => {
    const outDir = await Deno.makeTempDir();
    const r = await new Deno.Command("/usr/bin/python3", {
      args: [runner, `${root}notebooks/${name}`, `${outDir}/${name}`, "--timeout", "600"],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(r.stdout).trim();
    const stderr = new TextDecoder().decode(r.stderr);
    const last = stdout.split("\n").at(-1) ?? "";
    assert.ok(last.startsWith("{"), `runner failed (exit ${r.code}):\n${stderr.slice(-2000)}`);
    const report = JSON.parse(last);
    assert.deepEqual(report.errors, [], `cell errors in ${name}`);
    const source = await Deno.readTextFile(`${root}notebooks/${name}`);
    if (/show\(|notebookChart\(/.test(source)) {
      assert.ok(report.mimetypes.includes("application/vnd.plotly.v1+json"), `no Plotly output in ${name}`);
    }
    await Deno.remove(outDir, { recursive: true });
  });
}
