import { initGpu } from "../../lib/gpu/device.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose } from "../_assert.ts";

await initGpu();
const dir = new URL("../fixtures/tiny-hybrid-mamba2", import.meta.url).pathname;

Deno.test("hybrid (mamba2_glue.wgsl + conv1d + SSD + gated norm): MambaInLlama's tiny hybrid gives its reference logits and hidden states", async () => {
  using ref = await SafetensorsFile.open(`${dir}/reference.safetensors`);
  const ids = await ref.read("input_ids");
  using model = await LlamaModel.load(dir);
  using x = Tensor.from(ids.data as Int32Array, ids.shape, "i32");
  const out = model.forward(x, { hidden: true });
  const [logits, ...hidden] = await readTensors([out.logits, ...out.hidden!]);
  assertAllclose(logits, await ref.readF32("logits"), { atol: 1e-3, rtol: 0, name: "logits" });
  // MambaInLlama's wrapper returns each layer's output (the last after the final norm) without the
  // embeddings: the reference holds 2 states for 2 layers (its README says 3); ours has 3.
  const want = await ref.readF32("hidden_states");
  const per = hidden[0].length;
  assertAllclose([want.length / per], [hidden.length - 1], { atol: 0, name: "hidden state count" });
  hidden.slice(1).forEach((h, i) =>
    assertAllclose(h, want.subarray(i * per, (i + 1) * per), { atol: 1e-3, rtol: 0, name: `hidden ${i + 1}` })
  );
  for (const t of [out.logits, ...out.hidden!]) t.dispose();
});
