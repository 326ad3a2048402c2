/**
 * Proof that training works end to end on real data, on the CPU adapter: a tiny Llama (2 layers,
 * width 64, the bundled 4096-token tokenizer) trained from scratch on the Brown training split for
 * 150 steps of 4 × 32 tokens. Its loss on held-out validation windows must fall by more than
 * 0.8 nats from ln 4096 ≈ 8.3 (measured: 8.32 → 7.25). The full-size retrain of brown-llama-6m runs
 * on the GPU (bench/train_teacher.ts).
 */
import assert from "node:assert/strict";
import { initGpu } from "../../lib/gpu/device.ts";
import { parseLlamaConfig } from "../../lib/io/config.ts";
import { loadTokenizer } from "../../lib/io/tokenizer.ts";
import { loadBrownIds } from "../../lib/data/brown.ts";
import { evaluateLoss } from "../../lib/models/evaluate.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { DEFAULT_MODEL_DIR } from "../../lib/models/default_model.ts";
import { languageModelTask } from "../../lib/train/lm_task.ts";
import { train } from "../../lib/train/loop.ts";

await initGpu();

Deno.test("train: a tiny Llama learns Brown from scratch (validation loss falls by > 0.8 nats)", async () => {
  const tok = await loadTokenizer(DEFAULT_MODEL_DIR);
  const ids = await loadBrownIds(tok, { tokenizerKey: "brown-llama-6m/tokenizer.json" });
  const config = parseLlamaConfig({
    vocab_size: 4096,
    hidden_size: 64,
    intermediate_size: 176,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 256,
    hidden_act: "silu",
  }, "tiny-brown");
  using model = LlamaModel.random(config, 0);
  const val = ids.validation.subarray(0, 8 * 64 + 1);
  const before = await evaluateLoss(model, val, { seqLen: 64 });
  const run = await train(languageModelTask(model, ids.train, { batch: 4, seqLen: 32 }), {
    steps: 150,
    lr: { peak: 1e-2, warmup: 10 },
    logEvery: 50,
    adamw: { maxGradNorm: 1 },
  });
  const after = await evaluateLoss(model, val, { seqLen: 64 });
  assert.equal(run.reason, "done");
  assert.ok(before.loss > 8.2, `an untrained model is near uniform: ${before.loss}`);
  assert.ok(
    after.loss < before.loss - 0.8,
    `validation loss ${before.loss.toFixed(3)} → ${after.loss.toFixed(3)} (wanted a drop of > 0.8)`,
  );
});
