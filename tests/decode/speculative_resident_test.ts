/**
 * The GPU-resident round loop (the default of speculativeGenerate) against the host loop
 * (`hostRounds: true`, one readback per round): for a seed, the same tokens and the same round records,
 * for a hybrid target with an early-exit Transformer draft and with a pure-Mamba draft.
 */
import assert from "node:assert/strict";
import { convertTeacher } from "../../lib/distill/convert.ts";
import { generate } from "../../lib/decode/generate.ts";
import { speculativeGenerate, type SpeculativeOptions } from "../../lib/decode/speculative.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { SafetensorsFile, writeSafetensors } from "../../lib/io/safetensors.ts";
import { loadTokenizer } from "../../lib/io/tokenizer.ts";
import { LlamaModel } from "../../lib/models/llama.ts";
import { perturbedDraft } from "./_perturbed.ts";

await initGpu();
const hybridDir = new URL("../fixtures/tiny-hybrid-mamba2", import.meta.url).pathname;
const llamaDir = new URL("../fixtures/tiny-llama", import.meta.url).pathname;

/** tiny-llama's first layer alone (an early-exit Transformer draft) in `dir`. */
async function earlyExit(dir: string): Promise<void> {
  const cfg = JSON.parse(await Deno.readTextFile(`${llamaDir}/config.json`));
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...cfg, num_hidden_layers: 1 }));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${llamaDir}/${f}`, `${dir}/${f}`).catch(() => {});
  }
  using st = await SafetensorsFile.open(`${llamaDir}/model.safetensors`);
  const kept = st.names().filter((n) => !n.startsWith("model.layers.") || n.startsWith("model.layers.0."));
  const tensors = Object.fromEntries(
    await Promise.all(kept.map(async (n) => [n, await st.read(n)] as const)),
  );
  await writeSafetensors(`${dir}/model.safetensors`, tensors, { format: "pt" });
}

const tmp = await Deno.makeTempDir();
const earlyDir = `${tmp}/early`;
const mambaDir = `${tmp}/mamba`;
await Deno.mkdir(earlyDir);
await earlyExit(earlyDir);
await convertTeacher(llamaDir, mambaDir, { attentionLayers: [], mamba: 2, init: "attention", seed: 0 });
const tok = await loadTokenizer(hybridDir);
const prompt = "The jury said";

async function same(
  target: LlamaModel,
  draft: LlamaModel,
  o: SpeculativeOptions,
  name: string,
  text = prompt,
) {
  const host = await speculativeGenerate(target, draft, tok, text, { ...o, hostRounds: true });
  const gpu = await speculativeGenerate(target, draft, tok, text, o);
  assert.deepEqual(gpu.tokens, host.tokens, `${name}: tokens`);
  assert.deepEqual(gpu.rounds, host.rounds, `${name}: round records`);
  assert.equal(gpu.text, host.text);
  return gpu;
}

Deno.test({
  name:
    "speculative, GPU-resident rounds = host rounds for a seed: hybrid target, early-exit Transformer draft and pure-Mamba draft",
  async fn() {
    using target = await LlamaModel.load(hybridDir);
    using early = await LlamaModel.load(earlyDir);
    using mamba = await LlamaModel.load(mambaDir);
    assert.equal(early.layers.length, 1);
    assert.ok(mamba.layers.every((l) => l.mamba), "every layer of the Mamba draft is Mamba-2");
    const sampled = { temperature: 1, topP: 0.95, maxTokens: 14, stopAtEos: false, seed: 7 };
    for (const [name, draft] of [["early-exit", early], ["mamba", mamba]] as const) {
      const a = await same(target, draft, { ...sampled, lookahead: 3, roundsPerRead: 2 }, `${name} K=3`);
      const acc = a.rounds.map((r) => r.accepted);
      assert.ok(acc.some((r) => r < 3), `${name}: rounds accepted ${acc}: no rejection`);
      assert.ok(acc.some((r) => r > 0), `${name}: rounds accepted ${acc}: no acceptance`);
      await same(target, draft, { ...sampled, lookahead: 2, roundsPerRead: 1, seed: 11 }, `${name} K=2 R=1`);
    }
    // Greedy with the target itself as draft: every draft accepted (the draft is never rolled back).
    using self = await LlamaModel.load(hybridDir);
    const plain = await generate(target, tok, prompt, { temperature: 0, maxTokens: 11, stopAtEos: false });
    const g = await same(
      target,
      self,
      { temperature: 0, maxTokens: 11, stopAtEos: false, lookahead: 2 },
      "self",
    );
    assert.equal(g.acceptanceRate, 1);
    assert.deepEqual(g.tokens, plain.tokens);
  },
});

Deno.test("speculative, GPU-resident rounds: an end-of-sequence token mid-round ends the output where the host loop does", async () => {
  using target = await LlamaModel.load(hybridDir);
  using draft = await LlamaModel.load(earlyDir);
  const o = { temperature: 1, maxTokens: 16, stopAtEos: false, seed: 3, lookahead: 3 };
  const free = await speculativeGenerate(target, draft, tok, prompt, o);
  // Make the 6th emitted token an end-of-sequence token of the target.
  const eos = free.tokens[5];
  const cfg = target.config as { eosTokenIds: number[] };
  const saved = cfg.eosTokenIds;
  cfg.eosTokenIds = [...saved, eos];
  try {
    const g = await same(target, draft, { ...o, stopAtEos: true, roundsPerRead: 3 }, "eos");
    assert.deepEqual(g.tokens, free.tokens.slice(0, free.tokens.indexOf(eos)));
  } finally {
    cfg.eosTokenIds = saved;
  }
});

Deno.test("speculative, GPU-resident rounds after a one-token prompt (no token to re-feed: the draft runs K + 1 steps) = host rounds", async () => {
  using target = await LlamaModel.load(hybridDir);
  using mamba = await LlamaModel.load(mambaDir);
  assert.equal((await speculativeGenerate(target, mamba, tok, "", { maxTokens: 1 })).promptTokens, 1);
  await same(
    target,
    mamba,
    { temperature: 1, maxTokens: 10, stopAtEos: false, seed: 5, lookahead: 2 },
    "bos",
    "",
  );
});

Deno.test("speculative, GPU-resident rounds at temperature 0 (the rule from argmax tokens, one pass or split over workgroups) = host rounds, with rejections, and = plain greedy", async () => {
  using target = await LlamaModel.load(hybridDir);
  using draft = await perturbedDraft(hybridDir);
  const o = { temperature: 0, maxTokens: 16, stopAtEos: false, lookahead: 3 };
  const plain = await generate(target, tok, prompt, o);
  const plainSplit = await generate(target, tok, prompt, { ...o, splitArgmax: true });
  assert.deepEqual(plainSplit.tokens, plain.tokens, "plain greedy with the split argmax");
  for (const splitArgmax of [false, true]) {
    const g = await same(target, draft, { ...o, splitArgmax, roundsPerRead: 2 }, `split ${splitArgmax}`);
    assert.deepEqual(g.tokens, plain.tokens, `split ${splitArgmax}: speculative = plain greedy`);
    const acc = g.rounds.map((r) => r.accepted);
    assert.ok(acc.some((r) => r < 3), `rounds accepted ${acc}: no rejection`);
    assert.ok(acc.some((r) => r > 0), `rounds accepted ${acc}: no acceptance`);
  }
});

globalThis.addEventListener("unload", () => Deno.removeSync(tmp, { recursive: true }));
