import assert from "node:assert/strict";
import {
  absolutizeImports,
  annotateCells,
  cellAtLine,
  NotebookExtractError,
  notebookToModule,
  parseNotebook,
  splitLastExpression,
} from "./extract.ts";
import { jupyterStub, REPORT_PREFIX } from "./_jupyter_stub.ts";
import { DISPLAY_HOOK, tokenStream } from "../../lib/viz/display.ts";

Deno.test("extract: the last expression of a cell is found, multi-line ones included", () => {
  assert.deepEqual(splitLastExpression("const a = 1;\na + 1"), { body: "const a = 1;", expr: "a + 1" });
  assert.deepEqual(splitLastExpression("x();\nshow(heatmap(\n  a,\n  b,\n));\n// done\n"), {
    body: "x();",
    expr: "show(heatmap(\n  a,\n  b,\n))",
  });
  assert.deepEqual(splitLastExpression("({ a: 1 });"), { body: "", expr: "({ a: 1 })" });
  assert.deepEqual(splitLastExpression("const s = `a;${b}`;\nawait s"), {
    body: "const s = `a;${b}`;",
    expr: "await s",
  });
  assert.deepEqual(splitLastExpression("const f = () => {\n  return 1;\n};\nf()"), {
    body: "const f = () => {\n  return 1;\n};",
    expr: "f()",
  });
  assert.deepEqual(splitLastExpression('"The jury said" + g.text;'), {
    body: "",
    expr: '"The jury said" + g.text',
  });
});

Deno.test("extract: cells that do not plainly end with one expression are left alone", () => {
  for (
    const src of [
      "for (const a of b) a.dispose();",
      "const o = {\n  a: 1,\n};",
      "foo(); bar()",
      "const a = 1 +\n2",
      "if (x) {\n  y();\n}",
      "label: for (;;) break label;",
      "const s = `one\ntwo`;",
      "import { a } from './a.ts';",
      "",
    ]
  ) {
    assert.equal(splitLastExpression(src), null, JSON.stringify(src));
  }
});

Deno.test("extract: relative imports resolve against the notebook, others stay", () => {
  const base = new URL("file:///repo/notebooks/00.ipynb");
  assert.equal(
    absolutizeImports(
      `import { a } from "../mod.ts";\nconst m = await import('./x.ts');\nimport "npm:y";`,
      base,
    ),
    `import { a } from "file:///repo/mod.ts";\nconst m = await import('file:///repo/notebooks/x.ts');\nimport "npm:y";`,
  );
});

Deno.test("extract: the module stubs Deno.jupyter, shows last expressions, and rejects import.meta", () => {
  const nb = JSON.stringify({
    cells: [
      { cell_type: "markdown", source: ["# title"] },
      {
        cell_type: "code",
        source: ['import { a } from "../mod.ts";\n', "await Deno.jupyter.display(a);\n", "a"],
      },
    ],
  });
  const src = notebookToModule(parseNotebook(nb, "t.ipynb"), {
    notebookUrl: new URL("file:///repo/notebooks/t.ipynb"),
    stubUrl: new URL("file:///stub.ts"),
  });
  assert.match(src, /from "file:\/\/\/stub\.ts"/);
  assert.match(
    src,
    /\/\/ cell 1\nimport \{ a \} from "file:\/\/\/repo\/mod\.ts";\nawait __nbJupyter\.display\(a\);/,
  );
  assert.match(src, /await __nbJupyter\.show\(1, \(\na\n\)\);\n__nbJupyter\.report\(\);/);
  assert.doesNotMatch(src, /Deno\.jupyter/);
  const bad = JSON.stringify({ cells: [{ cell_type: "code", source: "console.log(import.meta.url)" }] });
  assert.throws(
    () => notebookToModule(parseNotebook(bad, "b.ipynb"), { notebookUrl: new URL("file:///b.ipynb") }),
    (e: unknown) => e instanceof NotebookExtractError && /cell 0: uses import\.meta/.test(e.message),
  );
  assert.throws(() => parseNotebook("{}", "x.ipynb"), /x\.ipynb: no `cells` array/);
  assert.throws(() => parseNotebook("{", "x.ipynb"), /x\.ipynb: not JSON/);
});

Deno.test("extract: the Jupyter stub formats displayables and rejects bundles the kernel could not send", async () => {
  const j = jupyterStub();
  await j.show(3, {
    [Symbol.for("Jupyter.display")]: () => ({ "text/html": "<b>x</b>", "text/plain": "x" }),
  });
  await j.display({ "application/vnd.plotly.v1+json": { data: [] } }, { raw: true });
  await j.show(4, undefined); // nothing to show
  await j.display(j.md`# ${1 + 1}`);
  await assert.rejects(
    () => j.display({ "application/json": "not an object" }, { raw: true }),
    /application\/json/,
  );
  await assert.rejects(
    () => j.show(5, { [Symbol.for("Jupyter.display")]: () => ({ "text/plain": 1n }) }),
    /cell 5/,
  );
  // library code that displays (notebookChart, tokenStream) reaches the stub through the display slot
  const s = tokenStream({ title: "t" });
  s.push("abc");
  await s.done();
  const logged: string[] = [];
  const log = console.log;
  console.log = (s: string) => logged.push(s);
  try {
    j.report();
  } finally {
    console.log = log;
  }
  assert.equal(logged.length, 1);
  assert.ok(logged[0].startsWith(REPORT_PREFIX));
  delete (globalThis as Record<symbol, unknown>)[DISPLAY_HOOK];
  assert.deepEqual(JSON.parse(logged[0].slice(REPORT_PREFIX.length)), {
    displays: 4, // three above, and the stream's one display (its pieces coalesced before it was sent)
    mimetypes: ["application/vnd.plotly.v1+json", "text/html", "text/markdown", "text/plain"],
  });
});

Deno.test("extract: positions in the generated module are mapped back to notebook cells", () => {
  const nb = JSON.stringify({
    cells: [
      { cell_type: "code", source: "const a = 1;" },
      { cell_type: "markdown", source: "text" },
      { cell_type: "code", source: "const a = 2;\nconsole.log(a);" },
    ],
  });
  const src = notebookToModule(parseNotebook(nb, "r.ipynb"), { notebookUrl: new URL("file:///r.ipynb") });
  const line = src.split("\n").indexOf("const a = 2;") + 1;
  assert.equal(cellAtLine(src, line), 2);
  assert.equal(cellAtLine(src, 1), undefined);
  assert.equal(
    annotateCells(`error at file:///tmp/x/r.ts:${line}:7 and /tmp/x/r.ts:${line + 1}:1`, "/tmp/x/r.ts", src),
    `error at file:///tmp/x/r.ts:${line}:7 (cell 2) and /tmp/x/r.ts:${line + 1}:1 (cell 2)`,
  );
});
