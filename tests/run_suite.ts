/**
 * The whole test suite, as CI runs it: `deno task test [args]`.
 *
 * Why a wrapper around `deno test`: CI reads one closing line of the exact form
 * `N passed, N failed` (optionally `, N skipped`) alone on the last line of the output, and
 * `deno test`'s own summary (`ok | 2 passed (1 step) | 0 failed | 1 ignored (8ms)`) is not in that
 * form. So this script runs
 *
 *     deno test -A --cached-only --junit-path=<tmp>/junit.xml tests/
 *
 * (not `--parallel`: GPU tests share one WebGPU device per process), streams deno's own pretty
 * output to the terminal, then counts the `<testcase>` elements of the JUnit report and prints the
 * closing line. Steps (`t.step`) count as test cases, as deno writes one `<testcase>` per step;
 * a test case is failed when it holds a `<failure>` or `<error>`, skipped when it holds `<skipped>`
 * (`ignore: true`), passed otherwise.
 *
 * The closing line always agrees with the exit code:
 * - Errors outside any test (a module that throws at top level, a dangling promise) fail the run
 *   but are not in the JUnit report; they are taken from deno's own summary line and added to the
 *   failed count.
 * - If deno writes no report (a type error, no test module found), the line is `0 passed, 1 failed`.
 * - If no test passed or failed (nothing ran), the run counts as one failure.
 * The exit code is deno test's own (non-zero if anything failed), or 1 in the cases above.
 *
 * Arguments: flags are passed through to `deno test`; paths, if any are given, replace the default
 * `tests/`. Everything after `--` goes to the tests (`Deno.args`), as with `deno test`.
 * The child gets `NO_COLOR=1` and a private 0700 `XDG_RUNTIME_DIR` unless they are set (Vulkan warns
 * on every WebGPU use without one).
 *
 * @module
 */

/** Counts taken from a JUnit report. */
export interface JunitCounts {
  /** Test cases (steps included) without failure, error or skipped child. */
  passed: number;
  /** Test cases with a `<failure>` or `<error>` child. */
  failed: number;
  /** Test cases with a `<skipped>` child (deno's `ignore`). */
  skipped: number;
}

/** `deno test` flags whose value may follow as the next argument (`--filter foo`). */
const FLAGS_WITH_VALUE = new Set([
  "--filter",
  "--reporter",
  "--junit-path",
  "--seed",
  "-c",
  "--config",
  "--import-map",
  "--location",
  "--cert",
  "-L",
  "--log-level",
]);

const DEFAULT_PATHS = ["tests/"];

/**
 * Counts the `<testcase>` elements of a JUnit XML document. A small tokenizer rather than regular
 * expressions over the whole text, so that comments, CDATA and `>` inside attribute values cannot
 * be mistaken for elements.
 */
export function countJunit(xml: string): JunitCounts {
  const counts: JunitCounts = { passed: 0, failed: 0, skipped: 0 };
  const tag = /<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/y;
  let inCase: { failed: boolean; skipped: boolean } | null = null;
  let depth = 0; // element depth inside the current <testcase>
  const close = () => {
    if (!inCase) return;
    if (inCase.failed) counts.failed++;
    else if (inCase.skipped) counts.skipped++;
    else counts.passed++;
    inCase = null;
  };
  let i = 0;
  while ((i = xml.indexOf("<", i)) !== -1) {
    const skipTo = (end: string) => {
      const j = xml.indexOf(end, i);
      return j === -1 ? xml.length : j + end.length;
    };
    if (xml.startsWith("<!--", i)) i = skipTo("-->");
    else if (xml.startsWith("<![CDATA[", i)) i = skipTo("]]>");
    else if (xml.startsWith("<?", i)) i = skipTo("?>");
    else if (xml.startsWith("<!", i)) i = skipTo(">");
    else {
      tag.lastIndex = i;
      const m = tag.exec(xml);
      if (!m) {
        i++;
        continue;
      }
      i = tag.lastIndex;
      const [, closing, name, , selfClosing] = m;
      if (name === "testcase") {
        if (closing) close();
        else {
          close(); // a malformed, unclosed previous case still counts once
          inCase = { failed: false, skipped: false };
          depth = 0;
          if (selfClosing) close();
        }
      } else if (inCase) {
        if (!closing && depth === 0) {
          if (name === "failure" || name === "error") inCase.failed = true;
          if (name === "skipped") inCase.skipped = true;
        }
        if (closing) depth--;
        else if (!selfClosing) depth++;
      }
    }
  }
  close();
  return counts;
}

/**
 * Reads the failed count (tests + steps) from deno test's own closing line, e.g.
 * `FAILED | 2 passed (1 step) | 3 failed (1 step) | 1 ignored (8ms)`. Null if there is none.
 */
export function denoSummaryFailed(output: string): number | null {
  // deno's colours are off (NO_COLOR) unless the caller set NO_COLOR itself; strip them anyway
  // deno-lint-ignore no-control-regex
  const plain = output.replace(/\x1b\[[0-9;]*m/g, "");
  const lines = plain.split(/\r?\n/).filter((l) => /^(ok|FAILED) \| /.test(l));
  const last = lines.at(-1);
  if (!last) return null;
  const m = / (\d+) failed(?: \((\d+) steps?\))?/.exec(last);
  if (!m) return null;
  return Number(m[1]) + Number(m[2] ?? 0);
}

/** Splits the runner's arguments into `deno test` flags, test paths and script arguments. */
export function splitArgs(args: string[]): { flags: string[]; paths: string[]; scriptArgs: string[] } {
  const flags: string[] = [];
  const paths: string[] = [];
  const dash = args.indexOf("--");
  const own = dash === -1 ? args : args.slice(0, dash);
  const scriptArgs = dash === -1 ? [] : args.slice(dash);
  for (let k = 0; k < own.length; k++) {
    const a = own[k];
    if (a.startsWith("-")) {
      flags.push(a);
      if (FLAGS_WITH_VALUE.has(a) && k + 1 < own.length) flags.push(own[++k]);
    } else paths.push(a);
  }
  return { flags, paths, scriptArgs };
}

/** The value of `--junit-path` among the flags, if the caller gave one. */
function junitPathFlag(flags: string[]): string | null {
  for (let k = 0; k < flags.length; k++) {
    if (flags[k] === "--junit-path") return flags[k + 1] ?? null;
    if (flags[k].startsWith("--junit-path=")) return flags[k].slice("--junit-path=".length);
  }
  return null;
}

function line(counts: JunitCounts): string {
  const base = `${counts.passed} passed, ${counts.failed} failed`;
  return counts.skipped > 0 ? `${base}, ${counts.skipped} skipped` : base;
}

async function main(): Promise<number> {
  const { flags, paths, scriptArgs } = splitArgs(Deno.args);
  const tmp = await Deno.makeTempDir({ prefix: "run_suite-" });
  try {
    const junit = junitPathFlag(flags) ?? `${tmp}/junit.xml`;
    await Deno.remove(junit).catch(() => {}); // never read a stale report
    const args = [
      "test",
      "-A",
      "--cached-only",
      ...(junitPathFlag(flags) === null ? [`--junit-path=${junit}`] : []),
      ...flags,
      ...(paths.length > 0 ? paths : DEFAULT_PATHS),
      ...scriptArgs,
    ];
    const env: Record<string, string> = {};
    if (Deno.env.get("NO_COLOR") === undefined) env.NO_COLOR = "1";
    if (!Deno.env.get("XDG_RUNTIME_DIR")) {
      const xdg = `${tmp}/xdg-runtime`;
      await Deno.mkdir(xdg, { mode: 0o700 });
      await Deno.chmod(xdg, 0o700);
      env.XDG_RUNTIME_DIR = xdg;
    }

    // stdout is passed through as it comes and kept, to read deno's own closing line afterwards
    const child = new Deno.Command(Deno.execPath(), { args, env, stdout: "piped", stderr: "inherit" })
      .spawn();
    // Ctrl-C reaches deno test too (same process group); a SIGINT sent to this process alone is
    // forwarded, so that the child stops and the summary and clean-up still happen here
    const forward = () => {
      try {
        child.kill("SIGINT");
      } catch { /* already gone */ }
    };
    Deno.addSignalListener("SIGINT", forward);
    const decoder = new TextDecoder();
    let tail = "";
    for await (const chunk of child.stdout) {
      await writeAll(Deno.stdout, chunk);
      tail = (tail + decoder.decode(chunk, { stream: true })).slice(-65536);
    }
    const { code } = await child.status;
    Deno.removeSignalListener("SIGINT", forward);

    let xml: string | null = null;
    try {
      xml = await Deno.readTextFile(junit);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (xml === null) {
      console.log(`run_suite: deno test exited with code ${code} before writing a JUnit report`);
      console.log("0 passed, 1 failed");
      return code === 0 ? 1 : code;
    }

    const counts = countJunit(xml);
    let exit = code;
    const denoFailed = denoSummaryFailed(tail);
    if (denoFailed !== null && denoFailed > counts.failed) {
      const extra = denoFailed - counts.failed;
      console.log(`run_suite: ${extra} failure(s) outside any test case (uncaught errors; see above)`);
      counts.failed += extra;
    } else if (code !== 0 && counts.failed === 0) {
      console.log(
        `run_suite: deno test exited with code ${code} but no test case failed; counted as 1 failure`,
      );
      counts.failed = 1;
    }
    if (counts.passed + counts.failed === 0) {
      console.log("run_suite: no test ran; counted as 1 failure");
      counts.failed = 1;
    }
    if (counts.failed > 0 && exit === 0) exit = 1;
    console.log(line(counts));
    return exit;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

async function writeAll(w: { write(p: Uint8Array): Promise<number> }, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await w.write(data.subarray(off));
}

if (import.meta.main) {
  Deno.exit(await main());
}
