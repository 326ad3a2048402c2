import assert from "node:assert/strict";
import { gpu, initGpu } from "../lib/gpu/device.ts";
import { kernelSource } from "../lib/gpu/pipelines.ts";

await initGpu();

// Every kernel file (with _common.wgsl prepended, as the loader does) compiles without errors on this
// adapter; the compiler's messages are shown with their line numbers when one does not.
for (const entry of Deno.readDirSync(new URL("../kernels/", import.meta.url))) {
  if (!entry.name.endsWith(".wgsl") || entry.name.startsWith("_")) continue;
  Deno.test(`kernels/${entry.name} compiles`, async () => {
    const module = gpu().device.createShaderModule({ code: kernelSource(entry.name) });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === "error");
    assert.equal(errors.length, 0, errors.map((m) => `line ${m.lineNum}: ${m.message}`).join("\n"));
  });
}
