import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../../lib/errors.ts";
import { parseLlamaConfig, readJsonFile } from "../../lib/io/config.ts";

const BROWN = "data/brown-llama-6m/config.json";

/** Asserts that `fn` throws a ConfigError whose message names `where` and matches `re`. */
function throwsConfig(fn: () => unknown, where: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    assert.ok(e.message.startsWith(`${where}: `), `message should name ${where}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

/** A Llama-3.2-1B config.json as transformers 4 writes it. */
const LLAMA_32_1B = {
  architectures: ["LlamaForCausalLM"],
  attention_bias: false,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_act: "silu",
  hidden_size: 2048,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: "llama",
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_scaling: {
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_type: "llama3",
  },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  vocab_size: 128256,
};

const MINIMAL = {
  vocab_size: 100,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  rms_norm_eps: 1e-6,
};

Deno.test("transformers 5 config (rope_parameters): brown-llama-6m", async () => {
  const cfg = parseLlamaConfig(await readJsonFile(BROWN), BROWN);
  assert.deepEqual({ ...cfg, raw: undefined }, {
    vocabSize: 4096,
    hiddenSize: 256,
    intermediateSize: 688,
    numLayers: 6,
    numHeads: 8,
    numKvHeads: 4,
    headDim: 32,
    rmsNormEps: 1e-5,
    maxPositionEmbeddings: 1024,
    tieWordEmbeddings: false,
    attentionBias: false,
    mlpBias: false,
    hiddenAct: "silu",
    bosTokenId: 0,
    eosTokenIds: [0],
    rope: {
      type: "default",
      theta: 10000,
      factor: 1,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 1024,
    },
    raw: undefined,
  });
  assert.equal(cfg.raw.model_type, "llama");
});

Deno.test("transformers 4 config (rope_theta + llama3 rope_scaling): Llama-3.2-1B", () => {
  const cfg = parseLlamaConfig(LLAMA_32_1B, "llama-3.2-1b/config.json");
  assert.equal(cfg.headDim, 64);
  assert.equal(cfg.numKvHeads, 8);
  assert.equal(cfg.tieWordEmbeddings, true);
  assert.equal(cfg.bosTokenId, 128000);
  assert.deepEqual(cfg.eosTokenIds, [128001, 128008, 128009]);
  assert.deepEqual(cfg.rope, {
    type: "llama3",
    theta: 500000,
    factor: 32,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  });
  // the same block in the transformers 5 form parses identically
  const { rope_scaling, rope_theta, ...rest } = LLAMA_32_1B;
  const v5 = parseLlamaConfig({ ...rest, rope_parameters: { ...rope_scaling, rope_theta } }, "v5.json");
  assert.deepEqual(v5.rope, cfg.rope);
});

Deno.test("v4 defaults: rope_scaling null, kv heads and head_dim null, legacy 'type' key", () => {
  const cfg = parseLlamaConfig(
    { ...MINIMAL, rope_theta: 500000, rope_scaling: null, num_key_value_heads: null, head_dim: null },
    "c.json",
  );
  assert.equal(cfg.numKvHeads, 4);
  assert.equal(cfg.headDim, 16);
  assert.deepEqual([cfg.rope.type, cfg.rope.theta, cfg.rope.factor], ["default", 500000, 1]);
  assert.equal(cfg.tieWordEmbeddings, false);
  assert.equal(cfg.bosTokenId, null);
  assert.deepEqual(cfg.eosTokenIds, []);
  const lin = parseLlamaConfig({ ...MINIMAL, rope_scaling: { type: "linear", factor: 2 } }, "c.json");
  assert.deepEqual([lin.rope.type, lin.rope.theta, lin.rope.factor], ["linear", 10000, 2]);
});

Deno.test("error: a config missing a field", () => {
  for (const field of Object.keys(MINIMAL)) {
    const json: Record<string, unknown> = { ...MINIMAL };
    delete json[field];
    throwsConfig(
      () => parseLlamaConfig(json, "ckpt/config.json"),
      "ckpt/config.json",
      new RegExp(`"${field}"`),
    );
  }
  throwsConfig(
    () => parseLlamaConfig({ ...MINIMAL, rope_scaling: { rope_type: "llama3", factor: 8 } }, "x/config.json"),
    "x/config.json",
    /missing required field "rope_scaling.low_freq_factor"/,
  );
});

Deno.test("error: wrong field types", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ hidden_size: "64" }, /field "hidden_size" must be a positive integer, got "64"/],
    [{ num_hidden_layers: 2.5 }, /"num_hidden_layers" must be a positive integer/],
    [{ rms_norm_eps: -1 }, /"rms_norm_eps" must be a positive number/],
    [{ tie_word_embeddings: "yes" }, /"tie_word_embeddings" must be true or false/],
    [{ eos_token_id: ["a"] }, /"eos_token_id" must be a token id or a list/],
    [{ rope_parameters: [] }, /"rope_parameters" must be an object/],
    [{ num_key_value_heads: 3 }, /not a multiple of num_key_value_heads 3/],
  ];
  for (const [patch, re] of cases) {
    throwsConfig(() => parseLlamaConfig({ ...MINIMAL, ...patch }, "c.json"), "c.json", re);
  }
  throwsConfig(() => parseLlamaConfig([1], "c.json"), "c.json", /not a JSON object/);
});

Deno.test("error: unsupported rope types and activations", () => {
  for (const t of ["yarn", "dynamic", "longrope"]) {
    throwsConfig(
      () =>
        parseLlamaConfig(
          { ...MINIMAL, rope_parameters: { rope_type: t, rope_theta: 1e4, factor: 4 } },
          "c.json",
        ),
      "c.json",
      new RegExp(`unsupported rope type "${t}" \\(supported: default, linear, llama3\\)`),
    );
  }
  throwsConfig(
    () => parseLlamaConfig({ ...MINIMAL, rope_scaling: { type: "dynamic", factor: 2 } }, "c.json"),
    "c.json",
    /unsupported rope type "dynamic"/,
  );
  throwsConfig(
    () => parseLlamaConfig({ ...MINIMAL, hidden_act: "gelu" }, "c.json"),
    "c.json",
    /unsupported hidden_act "gelu"/,
  );
});

Deno.test("readJsonFile: bad JSON, size cap, missing file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "io_cfg_" });
  try {
    const bad = join(dir, "config.json");
    await Deno.writeTextFile(bad, '{"vocab_size": 4096,');
    await assert.rejects(() => readJsonFile(bad), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.ok(e.message.startsWith(`${bad}: invalid JSON: `), e.message);
      return true;
    });
    const big = join(dir, "big.json");
    await Deno.writeTextFile(big, JSON.stringify({ pad: "x".repeat(100) }));
    await assert.rejects(
      () => readJsonFile(big, 64),
      (e: unknown) =>
        e instanceof ConfigError && e.message.startsWith(big) && /more than the 64-byte/.test(e.message),
    );
    assert.deepEqual(await readJsonFile(big), { pad: "x".repeat(100) });
    const missing = join(dir, "nope.json");
    await assert.rejects(
      () => readJsonFile(missing),
      (e: unknown) => e instanceof ConfigError && e.message === `${missing}: file not found`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
