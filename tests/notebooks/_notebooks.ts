/**
 * What the notebook tests share: the notebooks they run (every `notebooks/*.ipynb`, so a new
 * notebook is covered without editing a test), whether a notebook draws charts, and the environment
 * of the processes they start.
 *
 * @module
 */

/** The repository root, with a trailing slash. */
export const ROOT = new URL("../../", import.meta.url).pathname;

/**
 * The notebooks directory: `notebooks/`, or `LAB_NOTEBOOK_DIR` (to try the tests on other notebooks,
 * e.g. a broken one, without touching the shared folder; their `../mod.ts` imports must still resolve).
 */
export const NOTEBOOK_DIR = Deno.env.get("LAB_NOTEBOOK_DIR") ?? `${ROOT}notebooks`;

/** Debian's Chromium, or the browser `LAB_CHROMIUM` names. */
export const CHROMIUM = Deno.env.get("LAB_CHROMIUM") ?? "/usr/bin/chromium";

/** Chromium's flags in these tests: headless, no sandbox (CI runs as root), no GPU, no network chatter. */
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Whether `path` is an existing file. */
export function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** File names of every notebook under notebooks/, sorted. */
export function listNotebooks(): string[] {
  return [...Deno.readDirSync(NOTEBOOK_DIR)]
    .filter((e) => e.isFile && e.name.endsWith(".ipynb"))
    .map((e) => e.name)
    .sort();
}

/** Whether a notebook's source draws Plotly charts (the library's `show(` or `notebookChart(`). */
export function drawsCharts(notebookJson: string): boolean {
  return /\bshow\(|\bnotebookChart\(/.test(notebookJson);
}

let runtimeDir: string | undefined;

/**
 * The environment for child processes: plain text (`NO_COLOR`), and a private 0700
 * `XDG_RUNTIME_DIR` when none is set (Vulkan warns on every WebGPU use without one).
 */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1", ...extra };
  if (!Deno.env.get("XDG_RUNTIME_DIR")) {
    runtimeDir ??= Deno.makeTempDirSync({ prefix: "mdl-xdg-" });
    Deno.chmodSync(runtimeDir, 0o700);
    env.XDG_RUNTIME_DIR = runtimeDir;
  }
  return env;
}

/** Runs a command to completion; stdout and stderr as text. */
export async function runCommand(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env: childEnv(opts.env),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}
