/**
 * Display helpers for Deno's Jupyter kernel: result tables and streamed text that grows in one
 * display. Each shows as `text/html` for notebook front ends and `text/plain` for terminals, logs and
 * `nbconvert --to markdown`. Outside the kernel the streaming helper does nothing visible (its text
 * is still collected), so notebook code also runs as a plain `deno run` script.
 *
 * The live training chart is `notebookChart` in lib/train/listeners.ts; it updates one display in
 * place through the same {@linkcode DisplayFn}.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { Displayable } from "./figures.ts";

/** `Deno.jupyter.display`'s shape: sends a MIME bundle, or replaces the one with `display_id`. */
export type DisplayFn = (
  obj: unknown,
  opts: { raw: boolean; display_id?: string; update?: boolean },
) => Promise<void>;

/**
 * A global slot for a stand-in display function, consulted before `Deno.jupyter` (which cannot be
 * replaced): the notebook tests' level 1 puts its validating stub here when cells run as a plain module.
 */
export const DISPLAY_HOOK: symbol = Symbol.for("mamba-distill-lab.jupyterDisplay");

/**
 * The function {@linkcode DISPLAY_HOOK} holds, if any; else `Deno.jupyter.display` inside the Jupyter
 * kernel; undefined elsewhere (where the getter throws).
 */
export function jupyterDisplay(): DisplayFn | undefined {
  const hook = (globalThis as Record<symbol, unknown>)[DISPLAY_HOOK];
  if (typeof hook === "function") return hook as DisplayFn;
  try {
    const j = (Deno as unknown as { jupyter?: { display: DisplayFn } }).jupyter;
    return j ? j.display.bind(j) : undefined;
  } catch {
    return undefined;
  }
}

/** `&`, `<`, `>`, `"` and `'` as HTML entities (text and attribute values). */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Options of {@linkcode table}. */
export interface TableOptions {
  /** Column order (default: the keys of the rows, in first-seen order). */
  columns?: string[];
  /** A caption above the table. */
  title?: string;
  /** Significant digits of non-integer numbers (default 4). */
  digits?: number;
}

/** One cell as text: integers as they are, other finite numbers to `digits` significant digits. */
function formatCell(v: unknown, digits: number): string {
  if (v === undefined || v === null) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v) || !Number.isFinite(v)) return String(v);
    return Number(v.toPrecision(digits)).toString();
  }
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "string") return v;
  return JSON.stringify(v) ?? String(v);
}

/** The MIME bundle of a table: an HTML table and an aligned plain-text one. */
export function tableBundle(
  rows: Record<string, unknown>[],
  opts: TableOptions = {},
): Record<string, string> {
  if (!Array.isArray(rows)) {
    throw new UsageError("table", `expected an array of row objects, got ${typeof rows}`);
  }
  const digits = opts.digits ?? 4;
  if (!Number.isInteger(digits) || digits < 1 || digits > 21) {
    throw new UsageError("table", `digits must be an integer in 1..21, got ${digits}`);
  }
  rows.forEach((r, i) => {
    if (r === null || typeof r !== "object" || Array.isArray(r)) {
      throw new UsageError("table", `row ${i} is not an object (got ${JSON.stringify(r)})`);
    }
  });
  const columns = opts.columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cells = rows.map((r) => columns.map((c) => formatCell(r[c], digits)));
  // numbers are right-aligned in both renderings, everything else left-aligned
  const numeric = columns.map((c) => rows.length > 0 && rows.every((r) => typeof r[c] === "number"));

  const th = columns.map((c, j) =>
    `<th style="text-align:${numeric[j] ? "right" : "left"}">${escapeHtml(c)}</th>`
  );
  const trs = cells.map((row) =>
    `<tr>${
      row.map((v, j) => `<td style="text-align:${numeric[j] ? "right" : "left"}">${escapeHtml(v)}</td>`).join(
        "",
      )
    }</tr>`
  );
  const caption = opts.title ? `<caption>${escapeHtml(opts.title)}</caption>` : "";
  const html = `<table class="mdl-table">${caption}<thead><tr>${th.join("")}</tr></thead>` +
    `<tbody>${trs.join("")}</tbody></table>`;

  const widths = columns.map((c, j) => Math.max(c.length, ...cells.map((row) => row[j].length)));
  const pad = (v: string, j: number) => numeric[j] ? v.padStart(widths[j]) : v.padEnd(widths[j]);
  const line = (row: string[]) => row.map(pad).join("  ").trimEnd();
  const text = [
    ...(opts.title ? [opts.title] : []),
    line(columns),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...cells.map(line),
  ].join("\n");
  return { "text/html": html, "text/plain": text };
}

/**
 * A table of result rows (one object per row) that a notebook cell shows when it ends with it:
 *
 * ```ts
 * table([{ model: "teacher", loss: 4.276 }, { model: "50% Mamba", loss: 4.41 }], { title: "Brown validation" })
 * ```
 */
export function table(rows: Record<string, unknown>[], opts: TableOptions = {}): Displayable {
  const bundle = tableBundle(rows, opts);
  return { [Symbol.for("Jupyter.display")]: () => bundle };
}

/** Options of {@linkcode tokenStream}. */
export interface TokenStreamOptions {
  /** A heading above the text (e.g. the prompt or the model's name). */
  title?: string;
  /** Where the display goes (default: `Deno.jupyter.display` in the kernel; nothing elsewhere). */
  display?: DisplayFn;
}

/** Text that grows in one notebook display: see {@linkcode tokenStream}. */
export interface TokenStream {
  /** Everything pushed so far. */
  readonly text: string;
  /** Appends a piece of text; the display catches up asynchronously (updates coalesce). */
  push: (piece: string) => void;
  /**
   * Marks the stream finished and waits until the display shows all of it (resolves to nothing, so
   * that a cell ending with `await s.done()` shows no second copy; the text is in `s.text`).
   */
  done: () => Promise<void>;
}

let streams = 0;

/**
 * Streamed tokens in one display, appended in place (an `update_display_data` per update, never a
 * new output per token). `push` is synchronous, so it fits `generate`'s `onText`:
 *
 * ```ts
 * const s = tokenStream({ title: "greedy" });
 * s.push("The jury said");
 * await generate(model, tok, "The jury said", { onText: s.push });
 * await s.done();
 * ```
 *
 * Pieces pushed while an update is in flight are sent together in the next one.
 */
export function tokenStream(opts: TokenStreamOptions = {}): TokenStream {
  const display = opts.display ?? jupyterDisplay();
  const id = `mdl-tokens-${Date.now().toString(36)}-${streams++}`;
  let text = "";
  let finished = false;
  let shown = false;
  let scheduled = false;
  let chain: Promise<void> = Promise.resolve();
  let failure: unknown = null;

  const bundle = () => {
    const head = opts.title ? `<div style="font-weight:bold">${escapeHtml(opts.title)}</div>` : "";
    const cursor = finished ? "" : `<span style="opacity:0.5">▌</span>`;
    return {
      "text/html": `${head}<pre class="mdl-tokens" style="white-space:pre-wrap;margin:0">${
        escapeHtml(text)
      }${cursor}</pre>`,
      "text/plain": (opts.title ? `${opts.title}\n` : "") + text,
    };
  };
  const schedule = () => {
    if (!display || scheduled) return;
    scheduled = true;
    chain = chain.then(async () => {
      scheduled = false;
      try {
        await display(bundle(), { raw: true, display_id: id, update: shown });
        shown = true;
      } catch (e) {
        failure ??= e;
      }
    });
  };

  schedule(); // the (empty) display appears before the first token
  return {
    get text() {
      return text;
    },
    push: (piece: string) => {
      if (finished) throw new UsageError(`tokenStream ${id}`, "push() after done()");
      text += piece;
      schedule();
    },
    done: async () => {
      finished = true;
      schedule();
      await chain;
      if (failure) throw failure;
    },
  };
}
