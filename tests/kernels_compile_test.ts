import assert from "node:assert/strict";
import { gpu, initGpu } from "../lib/gpu/device.ts";
import { kernelSource } from "../lib/gpu/pipelines.ts";

await initGpu();

// Every kernel file (with _common.wgsl prepended, as the loader does) compiles without errors on this
// adapter; the compiler's messages are shown with their line numbers when one does not.
for (const entry of Deno.readDirSync(new URL("../kernels/", import.meta.url))) {
  if (!entry.name.endsWith(".wgsl") || entry.name.startsWith("_")) continue;
  // Files that `enable f16` need the adapter's shader-f16 feature (lib/gpu/device.ts requests it).
  const ignore =
    /^enable\s+f16/m.test(Deno.readTextFileSync(new URL(`../kernels/${entry.name}`, import.meta.url))) &&
    !gpu().hasF16;
  Deno.test({ name: `kernels/${entry.name} compiles`, ignore }, async () => {
    const module = gpu().device.createShaderModule({ code: kernelSource(entry.name) });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === "error");
    assert.equal(errors.length, 0, errors.map((m) => `line ${m.lineNum}: ${m.message}`).join("\n"));
  });
}

Deno.test("pipelines: a model load compiles the forward's kernels up front, and later uses hit the cache", async () => {
  const { pipelineCount } = await import("../lib/gpu/pipelines.ts");
  const { LlamaModel, LLAMA_KERNELS } = await import("../lib/models/llama.ts");
  const { Tensor } = await import("../lib/tensor/tensor.ts");
  using model = await LlamaModel.load(new URL("fixtures/tiny-llama", import.meta.url).pathname);
  const after = pipelineCount();
  assert.ok(after >= LLAMA_KERNELS.length);
  // A one-token forward (a decoding step's products, whose overrides depend on the shapes) and a
  // prompt's (the tiled products).
  for (const n of [1, 12]) {
    using x = Tensor.from(Array.from({ length: n }, (_, i) => i + 1), [1, n], "i32");
    const { logits } = model.forward(x);
    await logits.toArray();
    logits.dispose();
    assert.equal(pipelineCount(), after, `the ${n}-token forward compiled nothing new`);
  }
});
