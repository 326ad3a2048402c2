import assert from "node:assert/strict";
import { runLab } from "./_run.ts";

const tiny = new URL("../fixtures/tiny-llama", import.meta.url).pathname;

/** A user error: exit code 2 and exactly one line on stderr, naming `mention`, with no stack trace. */
function assertOneLineError(r: { code: number; stderr: string }, mention: string) {
  assert.equal(r.code, 2, `exit code ${r.code}; stderr: ${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0], /^error: /);
  assert.ok(lines[0].includes(mention), `"${lines[0]}" should mention ${mention}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

Deno.test("lab: a truncated input file is one line on stderr and exit code 2", async () => {
  const dir = await Deno.makeTempDir();
  const bytes = await Deno.readFile(`${tiny}/reference.safetensors`);
  await Deno.writeFile(`${dir}/cut.safetensors`, bytes.subarray(0, 1000));
  const r = await runLab([
    "logits",
    "--model",
    tiny,
    "--input",
    `${dir}/cut.safetensors`,
    "--out",
    `${dir}/o`,
  ]);
  assertOneLineError(r, "cut.safetensors");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("lab: a missing model directory, an unknown flag and an unknown command are usage errors", async () => {
  assertOneLineError(await runLab(["eval", "--model", "/nonexistent/model", "--json"]), "/nonexistent/model");
  assertOneLineError(await runLab(["eval", "--modle", tiny]), "--modle");
  const r = await runLab(["frobnicate"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command "frobnicate"/);
});

Deno.test("lab: input ids outside the vocabulary are rejected before reaching the GPU", async () => {
  const dir = await Deno.makeTempDir();
  const { writeSafetensors } = await import("../../lib/io/safetensors.ts");
  await writeSafetensors(`${dir}/ids.safetensors`, {
    input_ids: { dtype: "I32", shape: [1, 3], data: new Int32Array([1, 99999, 2]) },
  });
  const r = await runLab([
    "logits",
    "--model",
    tiny,
    "--input",
    `${dir}/ids.safetensors`,
    "--out",
    `${dir}/o`,
  ]);
  assertOneLineError(r, "outside the vocabulary");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("lab: no GPU adapter gives one line naming the fix", async () => {
  // Point the Vulkan loader at no driver at all: requestAdapter() then returns null.
  const r = await runLab([
    "logits",
    "--model",
    tiny,
    "--input",
    `${tiny}/reference.safetensors`,
    "--out",
    "/tmp/x",
  ], {
    VK_ICD_FILENAMES: "/nonexistent.json",
    VK_DRIVER_FILES: "/nonexistent.json",
    DENO_WEBGPU_BACKEND: "vulkan",
  });
  assertOneLineError(r, "no WebGPU adapter found");
  assert.match(r.stderr, /mesa-vulkan-drivers/);
});
