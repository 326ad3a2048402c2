/**
 * Level 1 of notebook CI (ecosystem.md §2.3): a notebook's code cells as one TypeScript module that
 * `deno check` type-checks and `deno run` runs, which the Jupyter kernel does not do (it runs cells
 * untyped).
 *
 * What the module differs in from the kernel, and how it is bridged:
 * - `Deno.jupyter` exists only under `deno jupyter` (its getter throws elsewhere and cannot be
 *   redefined): cell code gets a stub of the same type (`_jupyter_stub.ts`) that collects and
 *   validates the MIME bundles instead of sending them.
 * - The kernel shows a cell's last expression: when a cell ends with an expression statement, it is
 *   passed to the stub's `show` (so that `show(heatmap(…))` still builds its bundle). A cell whose
 *   end is not plainly one expression is left as it is.
 * - Relative imports are resolved against the notebook's directory (the module lives in a temp dir);
 *   the run's working directory is the notebook's, as in the kernel.
 * - `import.meta` does not exist in cells: a cell using it is reported, as the kernel would fail.
 * - One module means one scope: a name declared in two cells is a type error here (the kernel's
 *   REPL allows redeclaration); notebooks should not rely on that.
 * Top-level `await` is plain module syntax and needs nothing.
 *
 * @module
 */

/** A notebook cell as nbformat 4 stores it (only the fields used here). */
export interface NotebookCell {
  cell_type: string;
  source: string | string[];
}

/** A notebook or a cell cannot be turned into a module. */
export class NotebookExtractError extends Error {
  /** Builds an error whose message reads `<where>: <reason>`. */
  constructor(where: string, reason: string) {
    super(`${where}: ${reason}`);
    this.name = "NotebookExtractError";
  }
}

/** The cells of an `.ipynb` document (nbformat 4), checked for the fields used here. */
export function parseNotebook(json: string, where: string): NotebookCell[] {
  let nb: unknown;
  try {
    nb = JSON.parse(json);
  } catch (e) {
    throw new NotebookExtractError(where, `not JSON (${(e as Error).message})`);
  }
  const cells = (nb as { cells?: unknown })?.cells;
  if (!Array.isArray(cells)) {
    throw new NotebookExtractError(where, "no `cells` array (not an nbformat 4 notebook)");
  }
  cells.forEach((c, i) => {
    const ok = c && typeof c.cell_type === "string" &&
      (typeof c.source === "string" ||
        (Array.isArray(c.source) && c.source.every((s: unknown) => typeof s === "string")));
    if (!ok) throw new NotebookExtractError(where, `cell ${i} lacks a string cell_type or source`);
  });
  return cells as NotebookCell[];
}

/** A cell's source as one string. */
export function cellSource(cell: NotebookCell): string {
  return Array.isArray(cell.source) ? cell.source.join("") : cell.source;
}

const STATEMENT_KEYWORDS =
  /^(?:const|let|var|import|export|function|async\s+function|class|abstract\s+class|if|for|while|do|switch|try|return|throw|type|interface|enum|declare|namespace|module|break|continue|using|await\s+using|debugger)\b/;

/**
 * Scans TypeScript source for bracket depth and top-level `;`, skipping strings, template literals
 * (with `${}` nesting) and comments. Returns null when the brackets do not balance. Regular
 * expression literals are not recognised; a regex holding quotes or brackets can make a cell's end
 * look unbalanced, which only means its last expression is not shown.
 */
function scan(src: string): { depth: number; topLevelSemicolons: number[] } | null {
  const stack: string[] = []; // open brackets, and "`" for template literals
  const semis: number[] = [];
  let i = 0;
  const n = src.length;
  while (i < n) {
    const ch = src[i];
    const top = stack.at(-1);
    if (top === "`") {
      if (ch === "\\") i += 2;
      else if (ch === "`") (stack.pop(), i++);
      else if (ch === "$" && src[i + 1] === "{") (stack.push("${"), i += 2);
      else i++;
      continue;
    }
    if (ch === "/" && src[i + 1] === "/") {
      const e = src.indexOf("\n", i);
      i = e < 0 ? n : e;
    } else if (ch === "/" && src[i + 1] === "*") {
      const e = src.indexOf("*/", i + 2);
      if (e < 0) return null;
      i = e + 2;
    } else if (ch === '"' || ch === "'") {
      let j = i + 1;
      while (j < n && src[j] !== ch && src[j] !== "\n") j += src[j] === "\\" ? 2 : 1;
      if (src[j] !== ch) return null;
      i = j + 1;
    } else if (ch === "`") {
      stack.push("`");
      i++;
    } else if (ch === "(" || ch === "[" || ch === "{") {
      stack.push(ch);
      i++;
    } else if (ch === ")" || ch === "]" || ch === "}") {
      const open = stack.pop();
      const want = ch === ")" ? "(" : ch === "]" ? "[" : "{";
      if (open !== want && !(ch === "}" && open === "${")) return null;
      i++;
    } else {
      if (ch === ";" && stack.length === 0) semis.push(i);
      i++;
    }
  }
  return { depth: stack.length, topLevelSemicolons: semis };
}

/** `src` without trailing whitespace and trailing `//` comment lines. */
function trimEnd(src: string): string {
  const lines = src.replace(/\s+$/, "").split("\n");
  while (lines.length && /^\s*(?:\/\/.*)?$/.test(lines.at(-1)!)) lines.pop();
  return lines.join("\n");
}

/**
 * Splits a cell into its body and its final expression statement, when the cell plainly ends with
 * one: the last unindented line that starts an expression, through the end of the cell, is one
 * balanced statement with no other top-level `;`, and what precedes it ends a statement.
 */
export function splitLastExpression(src: string): { body: string; expr: string } | null {
  const code = trimEnd(src);
  const lines = code.split("\n");
  for (let k = lines.length - 1; k >= 0; k--) {
    const line = lines[k];
    if (!/^[A-Za-z_$(["'`!0-9]/.test(line)) continue;
    let expr = lines.slice(k).join("\n");
    const body = lines.slice(0, k).join("\n");
    const before = scan(body);
    if (!before || before.depth !== 0) continue; // inside an earlier statement's brackets or string
    const prev = trimEnd(body);
    if (prev && !/[;})\]\w$"'`]$/.test(prev)) continue; // `=`, `,`, an operator: still one statement
    if (STATEMENT_KEYWORDS.test(expr)) return null;
    if (/^[A-Za-z_$][\w$]*\s*:(?!:)/.test(expr)) return null; // a label
    const s = scan(expr);
    if (!s || s.depth !== 0) return null;
    if (s.topLevelSemicolons.length > 1) return null;
    if (s.topLevelSemicolons.length === 1) {
      const at = s.topLevelSemicolons[0];
      if (expr.slice(at + 1).trim() !== "") return null; // two statements on the last lines
      expr = expr.slice(0, at);
    }
    return { body, expr: expr.trimEnd() };
  }
  return null;
}

/** Rewrites `from "./x"`, `import "./x"` and `import("./x")` to absolute URLs under `baseUrl`. */
export function absolutizeImports(src: string, baseUrl: URL): string {
  return src.replace(
    /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])(\.{1,2}\/[^"'\n]*)\2/g,
    (_m, lead: string, q: string, spec: string) => `${lead}${q}${new URL(spec, baseUrl).href}${q}`,
  );
}

/** Options of {@linkcode notebookToModule}. */
export interface ModuleOptions {
  /** `file:` URL of the notebook (relative imports resolve against its directory). */
  notebookUrl: URL;
  /** `file:` URL of `_jupyter_stub.ts` (default: the one next to this file). */
  stubUrl?: URL;
}

/**
 * The TypeScript module of a notebook's code cells, in order, each under a `// cell N` marker (N is
 * the cell's index in the notebook, markdown cells counted), ending with the stub's report line.
 */
export function notebookToModule(cells: NotebookCell[], opts: ModuleOptions): string {
  const where = decodeURIComponent(opts.notebookUrl.pathname);
  const stub = opts.stubUrl ?? new URL("./_jupyter_stub.ts", import.meta.url);
  const out = [
    `// Generated from ${where} by tests/notebooks/extract.ts: the code cells as one module.`,
    `import { jupyterStub as __nbJupyterStub } from ${JSON.stringify(stub.href)};`,
    `const __nbJupyter = __nbJupyterStub();`,
  ];
  cells.forEach((cell, i) => {
    if (cell.cell_type !== "code") return;
    let src = cellSource(cell);
    if (/^\s*%/m.test(src)) {
      throw new NotebookExtractError(`${where} cell ${i}`, "IPython magics do not run in Deno's kernel");
    }
    if (/\bimport\.meta\b/.test(src)) {
      throw new NotebookExtractError(
        `${where} cell ${i}`,
        "uses import.meta, which Deno's Jupyter kernel does not have",
      );
    }
    src = absolutizeImports(src, opts.notebookUrl).replace(/\bDeno\.jupyter\b/g, "__nbJupyter");
    const last = splitLastExpression(src);
    out.push(`// cell ${i}`);
    if (last) {
      if (last.body.trim()) out.push(last.body);
      out.push(`await __nbJupyter.show(${i}, (\n${last.expr}\n));`);
    } else {
      out.push(src);
    }
  });
  out.push(`__nbJupyter.report();`, ``);
  return out.join("\n");
}

/** The notebook cell (its index) that line `line` (1-based) of a generated module belongs to. */
export function cellAtLine(moduleSource: string, line: number): number | undefined {
  const lines = moduleSource.split("\n");
  for (let i = Math.min(line, lines.length) - 1; i >= 0; i--) {
    const m = /^\/\/ cell (\d+)$/.exec(lines[i]);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** `text` with every `<module URL or path>:LINE:COL` position followed by ` (cell N)`. */
export function annotateCells(text: string, modulePath: string, moduleSource: string): string {
  const esc = modulePath.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return text.replace(new RegExp(`((?:file://)?${esc}):(\\d+):(\\d+)`, "g"), (m, _p, l: string) => {
    const cell = cellAtLine(moduleSource, Number(l));
    return cell === undefined ? m : `${m} (cell ${cell})`;
  });
}
