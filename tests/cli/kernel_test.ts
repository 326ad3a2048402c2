import assert from "node:assert/strict";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { assertAllclose } from "../_assert.ts";
import { runLab } from "./_run.ts";

const kernels = new URL("../fixtures/kernels/", import.meta.url).pathname;

async function checkAgainstFixture(fixture: string, outputs: string[], extra: string[] = []) {
  const dir = await Deno.makeTempDir();
  const which = fixture.startsWith("ssd") ? "ssd" : "selective-scan";
  const r = await runLab([
    "kernel",
    which,
    "--input",
    `${kernels}${fixture}`,
    "--out",
    `${dir}/out.safetensors`,
    ...extra,
  ]);
  assert.equal(r.code, 0, r.stderr);
  using got = await SafetensorsFile.open(`${dir}/out.safetensors`);
  using want = await SafetensorsFile.open(`${kernels}${fixture}`);
  for (const name of outputs) {
    const w = await want.readF32(name);
    const scale = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assertAllclose(await got.readF32(name), w, { atol: 1e-4 * scale, rtol: 1e-4, name });
  }
  await Deno.remove(dir, { recursive: true });
}

Deno.test("lab kernel selective-scan: the fixture's y, last state and every gradient", async () => {
  await checkAgainstFixture("selective-scan.safetensors", [
    "y",
    "last_state",
    "grad_u",
    "grad_delta",
    "grad_A",
    "grad_B",
    "grad_C",
    "grad_D",
    "grad_z",
    "grad_delta_bias",
  ]);
});

Deno.test("lab kernel ssd --block 32: the fixture's Y, final state and gradients", async () => {
  await checkAgainstFixture("ssd.safetensors", ["Y", "final_state", "grad_X", "grad_A", "grad_B", "grad_C"], [
    "--block",
    "32",
  ]);
});

Deno.test("lab kernel: a missing tensor and an unknown kernel are one-line errors", async () => {
  const bad = await runLab([
    "kernel",
    "ssd",
    "--input",
    `${kernels}selective-scan.safetensors`,
    "--out",
    "/tmp/x",
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /missing tensor "X"/);
  const unknown = await runLab(["kernel", "conv"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /selective-scan/);
});
