/**
 * A stand-in for `Deno.jupyter` when a notebook's cells run as a plain module (level 1 of notebook
 * CI, see extract.ts): the same API and types, but every MIME bundle is checked (an object of strings
 * and objects, JSON mimetypes objects, serialisable) and counted instead of being sent to a front end.
 * A bundle the kernel could not send fails the run here, naming the cell. The stub also takes the
 * library's display slot (`DISPLAY_HOOK`), so that displays made by library code (`notebookChart`,
 * `tokenStream`) are checked too.
 *
 * @module
 */

import { DISPLAY_HOOK } from "../../lib/viz/display.ts";

/** What the stub saw, printed by `report()` after this prefix as one JSON line. */
export const REPORT_PREFIX = "__notebook_report__ ";

/** The stub: `Deno.jupyter`'s API plus the hooks the generated module calls. */
export type JupyterStub = typeof Deno.jupyter & {
  /** Shows a cell's last expression as the kernel would (nothing for `undefined`). */
  show(cell: number, value: unknown): Promise<void>;
  /** Prints the report line: displays sent and the mimetypes seen. */
  report(): void;
};

const DISPLAY = Symbol.for("Jupyter.display");

type Bundle = Record<string, unknown>;

/** Builds a fresh stub. */
export function jupyterStub(): JupyterStub {
  let displays = 0;
  const mimetypes = new Set<string>();
  let cell = -1; // the cell whose last expression is being shown, for messages

  const check = (bundle: unknown, what: string): Bundle => {
    const where = cell >= 0 ? `cell ${cell}` : "a display call";
    if (bundle === null || typeof bundle !== "object" || Array.isArray(bundle)) {
      throw new TypeError(`${where}: ${what} is not a MIME bundle object (got ${Deno.inspect(bundle)})`);
    }
    for (const [mime, v] of Object.entries(bundle)) {
      if (v === undefined) continue;
      if (
        /json$/.test(mime) ? (v === null || typeof v !== "object" || Array.isArray(v)) : typeof v !== "string"
      ) {
        throw new TypeError(`${where}: ${what} has ${mime} of the wrong kind (${typeof v})`);
      }
    }
    try {
      JSON.stringify(bundle);
    } catch (e) {
      throw new TypeError(`${where}: ${what} cannot be sent as JSON (${(e as Error).message})`);
    }
    return bundle as Bundle;
  };
  const record = (bundle: Bundle) => {
    displays++;
    for (const [k, v] of Object.entries(bundle)) if (v !== undefined) mimetypes.add(k);
  };
  const format = async (obj: unknown): Promise<Deno.jupyter.MediaBundle> => {
    if (obj !== null && (typeof obj === "object" || typeof obj === "function") && DISPLAY in obj) {
      const fn = (obj as Record<symbol, () => unknown>)[DISPLAY];
      return check(await fn.call(obj), "its Jupyter.display method's result") as Deno.jupyter.MediaBundle;
    }
    return { "text/plain": Deno.inspect(obj, { colors: false }) };
  };
  const tagged = (mime: string) => (strings: TemplateStringsArray, ...values: unknown[]) => {
    const text = strings.reduce((acc, s, i) => acc + s + (i < values.length ? String(values[i]) : ""), "");
    return { [DISPLAY]: () => ({ [mime]: text }) } as unknown as Deno.jupyter.Displayable;
  };
  const image = (src: string | Uint8Array): Deno.jupyter.Displayable => {
    const bytes = typeof src === "string" ? Deno.readFileSync(src) : src;
    const png = bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
    const jpeg = bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
    if (!png && !jpeg) throw new TypeError("Deno.jupyter.image: only PNG and JPEG are supported");
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return {
      [DISPLAY]: () => ({ [png ? "image/png" : "image/jpeg"]: btoa(bin) }),
    } as unknown as Deno.jupyter.Displayable;
  };

  const stub = {
    $display: DISPLAY,
    async display(obj: unknown, options: Deno.jupyter.DisplayOptions = {}) {
      record(
        options.raw
          ? check(obj, "the raw bundle passed to display")
          : check(await format(obj), "display's bundle"),
      );
    },
    format,
    md: tagged("text/markdown"),
    html: tagged("text/html"),
    svg: tagged("image/svg+xml"),
    image,
    broadcast(msgType: string, content: Record<string, unknown>) {
      if (typeof msgType !== "string" || content === null || typeof content !== "object") {
        throw new TypeError("Deno.jupyter.broadcast: expected a message type and a content object");
      }
      JSON.stringify(content);
      return Promise.resolve();
    },
    async show(c: number, value: unknown) {
      cell = c;
      try {
        if (value !== undefined) record(await format(value));
      } finally {
        cell = -1;
      }
    },
    report() {
      console.log(REPORT_PREFIX + JSON.stringify({ displays, mimetypes: [...mimetypes].sort() }));
    },
  };
  (globalThis as Record<symbol, unknown>)[DISPLAY_HOOK] = stub.display;
  return stub as unknown as JupyterStub;
}
