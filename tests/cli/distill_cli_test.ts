/**
 * `lab distill` as a user runs it: one-line errors for bad flags, and Ctrl-C (SIGINT) in the middle of
 * a run leaving a checkpoint that `--resume` continues to the end.
 */
import assert from "node:assert/strict";
import { runLab } from "./_run.ts";

const TEACHER = new URL("../fixtures/tiny-llama", import.meta.url).pathname;
const main = new URL("../../lib/cli/main.ts", import.meta.url).pathname;

Deno.test("lab distill: bad flags are one-line errors with exit code 2", async () => {
  const out = await Deno.makeTempDir();
  const base = ["distill", "--teacher", TEACHER, "--out", out];
  const cases: [string[], RegExp][] = [
    [[...base, "--attention-share", "0.5"], /--recipe is required/],
    [
      [...base, "--recipe", "magic", "--attention-share", "0.5"],
      /--recipe must be one of mohawk, stepwise, kd, sft, dpo/,
    ],
    [[...base, "--recipe", "kd"], /exactly one of --attention-share S and --attention-layers LIST/],
    [[...base, "--recipe", "kd", "--attention-share", "0.5", "--attention-layers", "1"], /exactly one of/],
    [[...base, "--recipe", "kd", "--attention-layers", "7"], /not a layer index in \[0, 2\)/],
    [
      [...base, "--recipe", "kd", "--attention-share", "0.5", "--stages", "1"],
      /--stages applies to --recipe mohawk/,
    ],
    [
      [...base, "--recipe", "mohawk", "--attention-share", "0.5", "--stages", "4"],
      /--stages takes MOHAWK stages/,
    ],
    [
      [...base, "--recipe", "mohawk", "--attention-share", "0.5", "--pseudo-labels", "8"],
      /--pseudo-labels applies/,
    ],
    [[...base, "--recipe", "kd", "--attention-share", "0.5", "--init", "linear-attention"], /--init must be/],
    [
      ["distill", "--teacher", "/nonexistent", "--out", out, "--recipe", "kd", "--attention-share", "0.5"],
      /nonexistent/,
    ],
  ];
  for (const [args, re] of cases) {
    const r = await runLab(args);
    assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
    const lines = r.stderr.trim().split("\n").filter((l) => !/XDG_RUNTIME_DIR/.test(l));
    assert.equal(lines.length, 1, `one line: ${r.stderr}`);
    assert.match(lines[0], /^error: /);
    assert.match(lines[0], re);
  }
  await Deno.remove(out, { recursive: true });
});

/** The flags of a 40-step kd run of tiny-llama into `out`. */
function kdArgs(out: string): string[] {
  return [
    "distill",
    "--teacher",
    TEACHER,
    "--out",
    out,
    "--recipe",
    "kd",
    "--attention-share",
    "0.5",
    "--tokens",
    String(40 * 64),
    "--batch",
    "2",
    "--seq",
    "32",
    "--eval-windows",
    "1",
  ];
}

/** Starts `lab distill` and sends `signal` once its first losses are logged (step 10 of 40). */
async function interrupted(out: string, signal: Deno.Signal): Promise<Deno.CommandOutput> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--cached-only", main, ...kdArgs(out)],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const deadline = Date.now() + 240_000;
  while (Date.now() < deadline) {
    const text = await Deno.readTextFile(`${out}/metrics.jsonl`).catch(() => "");
    if (text.trim()) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill(signal);
  return await child.output();
}

/** The run-wide steps logged in `out/metrics.jsonl`. */
async function loggedSteps(out: string): Promise<number[]> {
  const text = await Deno.readTextFile(`${out}/metrics.jsonl`);
  return text.trim().split("\n").map((l) => JSON.parse(l).step);
}

const ALL_STEPS = Array.from({ length: 40 }, (_, i) => i + 1);

Deno.test("lab distill: Ctrl-C writes a checkpoint and --resume finishes the run", async () => {
  const out = await Deno.makeTempDir();
  const args = kdArgs(out);
  const first = await interrupted(out, "SIGINT");
  const dec = new TextDecoder();
  assert.equal(first.code, 0, dec.decode(first.stderr));
  assert.match(dec.decode(first.stdout), /interrupted: run .*--resume/);
  assert.match(dec.decode(first.stderr), /interrupt: finishing the step and writing a checkpoint/);
  const ckpt = `${out}/stages/01-kd/checkpoint.safetensors`;
  assert.ok((await Deno.stat(ckpt)).isFile, "a checkpoint is left");
  const done = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").length;
  assert.ok(done < 40, `stopped early (${done} steps logged)`);
  const again = await runLab(args);
  assert.equal(again.code, 2, "without --resume the run directory is refused");
  assert.match(again.stderr, /--resume/);
  const resumed = await runLab([...args, "--resume"]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming: 0 of 1 stages done/);
  assert.match(resumed.stdout, /student perplexity/);
  assert.deepEqual(await loggedSteps(out), ALL_STEPS, "each step logged once, in order");
  assert.ok((await Deno.stat(`${out}/report.html`)).isFile);
  await Deno.remove(out, { recursive: true });
});

Deno.test("lab distill: kill -9 mid-run, then --resume: nothing lost, each step logged once", async () => {
  const out = await Deno.makeTempDir();
  const killed = await interrupted(out, "SIGKILL");
  assert.notEqual(killed.code, 0);
  const resumed = await runLab([...kdArgs(out), "--resume"]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /student perplexity/);
  assert.deepEqual(await loggedSteps(out), ALL_STEPS, "each step logged once, in order");
  assert.equal(JSON.parse(await Deno.readTextFile(`${out}/run.json`)).finished, true);
  const left = [...Deno.readDirSync(`${out}/stages/01-kd`)].map((e) => e.name);
  assert.ok(!left.some((n) => n.includes(".tmp")), `no temp files left: ${left}`);
  await Deno.remove(out, { recursive: true });
});
