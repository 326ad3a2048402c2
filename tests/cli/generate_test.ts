import assert from "node:assert/strict";
import { runLab } from "./_run.ts";

const hybrid = new URL("../fixtures/tiny-hybrid-mamba2", import.meta.url).pathname;
const llama = new URL("../fixtures/tiny-llama", import.meta.url).pathname;
const base = ["generate", "--prompt", "The jury said", "--max-tokens", "8", "--temperature", "0", "--json"];

/** The JSON of the last stdout line, after checking that the text before it starts with the prompt. */
function lastJson(stdout: string): Record<string, number | string> {
  const lines = stdout.trimEnd().split("\n");
  assert.ok(lines[0].startsWith("The jury said"), `stdout starts with the prompt: ${lines[0]}`);
  return JSON.parse(lines[lines.length - 1]);
}

Deno.test("lab generate: a hybrid, greedy, with and without a Transformer draft (same text; JSON with acceptance)", async () => {
  const plain = await runLab([...base, "--model", hybrid]);
  assert.equal(plain.code, 0, plain.stderr);
  const a = lastJson(plain.stdout);
  assert.equal(a.tokens, 8);
  assert.ok((a.tokens_per_s as number) > 0);
  assert.equal(a.acceptance_rate, undefined);
  assert.ok(plain.stdout.startsWith(`The jury said${a.text}\n`), "prompt, then the continuation");
  const spec = await runLab([...base, "--model", hybrid, "--draft", llama, "--lookahead", "2"]);
  assert.equal(spec.code, 0, spec.stderr);
  const b = lastJson(spec.stdout);
  assert.equal(b.text, a.text, "speculative greedy text = plain greedy text");
  assert.equal(b.lookahead, 2);
  for (const k of ["tokens_per_s", "acceptance_rate", "mean_accepted"]) {
    assert.equal(typeof b[k], "number", k);
  }
  assert.ok((b.acceptance_rate as number) >= 0 && (b.acceptance_rate as number) <= 1);
  assert.equal(b.fused_draft, true, "a small Llama draft at temperature 0 runs fused");
});

Deno.test("lab generate: a pure-Mamba student made by lab convert --attention-share 0, alone and as a draft", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const conv = await runLab(["convert", "--teacher", llama, "--out", tmp, "--attention-share", "0"]);
    assert.equal(conv.code, 0, conv.stderr);
    const alone = await runLab([...base, "--model", tmp]);
    assert.equal(alone.code, 0, alone.stderr);
    const a = lastJson(alone.stdout);
    assert.equal(a.tokens, 8);
    const spec = await runLab([...base, "--model", tmp, "--draft", hybrid]);
    assert.equal(spec.code, 0, spec.stderr);
    const b = lastJson(spec.stdout);
    assert.equal(b.text, a.text);
    assert.equal(b.lookahead, 3, "default lookahead");
    assert.equal(b.fused_draft, false, "a hybrid draft is not fused");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("lab generate: bad speculative flags are one-line errors with exit code 2", async () => {
  for (
    const [args, msg] of [
      [["--lookahead", "2"], "--lookahead needs --draft"],
      [["--draft", hybrid, "--lookahead", "0"], "--lookahead must be a whole number ≥ 1"],
      [["--draft", `${hybrid}/nope`], "does not share"],
    ] as const
  ) {
    const r = await runLab(["generate", "--model", hybrid, "--prompt", "x", ...args]);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split("\n").filter((l) =>
      l.startsWith("error:") && !l.includes("XDG_RUNTIME_DIR")
    );
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0].includes(msg), lines[0]);
  }
});
