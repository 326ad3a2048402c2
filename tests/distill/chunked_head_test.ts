import assert from "node:assert/strict";
import { GradTape } from "../../lib/autograd/tape.ts";
import { convertTeacher } from "../../lib/distill/convert.ts";
import { chunkedHeadFor, distillLoss } from "../../lib/distill/tasks.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { selectTrainable } from "../../lib/train/optim.ts";
import { assertAllclose } from "../_assert.ts";

await initGpu();
const tiny = new URL("../fixtures/tiny-llama", import.meta.url).pathname;

Deno.test("chunkedHeadFor: auto and chunked take the chunked head, full does not", () => {
  assert.equal(chunkedHeadFor("auto", 32 * 256, 4096), true);
  assert.equal(chunkedHeadFor(undefined, 8 * 2048, 128256), true);
  assert.equal(chunkedHeadFor("full", 32 * 256, 4096), false);
  assert.equal(chunkedHeadFor("chunked", 4, 8), true);
});

Deno.test("distillLoss: the chunked LM head gives the whole-logits loss, parts and gradients (hybrid student, CE + 0.1·KL batchmean)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await convertTeacher(tiny, dir, { attentionLayers: [1] });
    using teacher = await LlamaModel.load(tiny);
    using student = await LlamaModel.load(dir);
    const params = selectTrainable(student.namedParameters());
    const [B, T] = [2, 8];
    const V = student.config.vocabSize;
    const ids = Int32Array.from({ length: B * T + 1 }, (_, i) => (i * 37 + 5) % V);
    using x = Tensor.from(ids.subarray(0, B * T), [B, T], "i32");
    const targets = ids.slice(1);
    targets[3] = -100;
    using y = Tensor.from(targets, [B * T], "i32");
    const run = async (lmHead: "full" | "chunked") => {
      using tape = new GradTape();
      const { loss, parts } = tape.run(() =>
        distillLoss(teacher, student, x, y, { ceWeight: 1, klWeight: 0.1, klReduction: "batchmean", lmHead })
      );
      tape.backward(loss);
      const got = await readTensors([loss, parts.ce, parts.kl, ...params.map(([, p]) => p.grad!)]);
      for (const t of [loss, parts.ce, parts.kl]) t.dispose();
      for (const [, p] of params) {
        p.grad!.dispose();
        p.grad = null;
      }
      return got;
    };
    const full = await run("full");
    const chunked = await run("chunked");
    assert.ok(full[2][0] > 0, "the KL term is not zero");
    assertAllclose(chunked[0], full[0], { rtol: 1e-5, name: "loss" });
    assertAllclose(chunked[1], full[1], { rtol: 1e-5, name: "ce" });
    assertAllclose(chunked[2], full[2], { rtol: 1e-4, atol: 1e-6, name: "kl" });
    params.forEach(([name], i) => {
      assertAllclose(chunked[3 + i], full[3 + i], { rtol: 1e-3, atol: 1e-6, name });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
