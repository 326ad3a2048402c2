/**
 * Runs `lab` as a user would (a subprocess of the same Deno binary) and captures its output.
 *
 * @module
 */
const main = new URL("../../lib/cli/main.ts", import.meta.url).pathname;

/** Exit code, stdout and stderr of `deno run lib/cli/main.ts …args`. */
export async function runLab(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--cached-only", main, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
