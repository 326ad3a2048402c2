/**
 * Offline HTML exports of executed notebooks: Debian's `nbconvert --to html`, then
 * {@linkcode inlinePlotlyHtml} (plotly.js inlined, CDN scripts dropped), so that every chart draws
 * from the file alone.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { DataError } from "../errors.ts";
import { inlinePlotlyHtml } from "./plotly.ts";

/** Options of {@linkcode exportNotebookHtml}. */
export interface ExportHtmlOptions {
  /** The Python that has nbconvert (default Debian's `/usr/bin/python3`). */
  python?: string;
  /** nbconvert's template (default `lab`). */
  template?: string;
}

/**
 * Writes `htmlPath` from the executed notebook `ipynbPath` (its stored outputs; nothing is run) and
 * returns the HTML. Fails with a {@linkcode DataError} naming the notebook when nbconvert does.
 */
export async function exportNotebookHtml(
  ipynbPath: string,
  htmlPath: string,
  opts: ExportHtmlOptions = {},
): Promise<string> {
  const python = opts.python ?? "/usr/bin/python3";
  const tmp = await Deno.makeTempDir({ prefix: "mdl-nbconvert-" });
  try {
    const name = basename(ipynbPath).replace(/\.ipynb$/, "");
    let r: Deno.CommandOutput;
    try {
      r = await new Deno.Command(python, {
        args: [
          "-m",
          "nbconvert",
          "--to",
          "html",
          "--template",
          opts.template ?? "lab",
          "--output-dir",
          tmp,
          "--output",
          name,
          ipynbPath,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch (e) {
      throw new DataError(ipynbPath, `cannot start ${python} -m nbconvert (${(e as Error).message})`);
    }
    if (!r.success) {
      const err = new TextDecoder().decode(r.stderr).trim().split("\n").slice(-3).join(" | ");
      throw new DataError(ipynbPath, `nbconvert --to html failed (exit ${r.code}): ${err}`);
    }
    const html = await inlinePlotlyHtml(await Deno.readTextFile(join(tmp, `${name}.html`)));
    await Deno.mkdir(dirname(htmlPath), { recursive: true });
    // write next to the target, then rename: a reader never sees half a 10 MB file
    const part = `${htmlPath}.part`;
    await Deno.writeTextFile(part, html);
    await Deno.rename(part, htmlPath);
    return html;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}
