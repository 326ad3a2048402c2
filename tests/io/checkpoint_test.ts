import assert from "node:assert/strict";
import { join } from "node:path";
import { CheckpointError, ConfigError } from "../../lib/errors.ts";
import { Checkpoint } from "../../lib/io/checkpoint.ts";
import { type HostTensor, SafetensorsFile, writeSafetensors } from "../../lib/io/safetensors.ts";

const BROWN = "data/brown-llama-6m";
const TINY = "tests/fixtures/tiny-llama";

/** Asserts that `fn` rejects with `cls` and a message that names `where` and matches `re`. */
async function rejects(
  fn: () => Promise<unknown>,
  cls: typeof CheckpointError,
  where: string,
  re: RegExp,
): Promise<void> {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert.ok(e.message.startsWith(where), `message should name ${where}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

/** A temporary checkpoint directory holding the tiny-llama config, removed after the test. */
async function tempCheckpoint() {
  const dir = await Deno.makeTempDir({ prefix: "io_ckpt_" });
  await Deno.copyFile(join(TINY, "config.json"), join(dir, "config.json"));
  return {
    dir,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function f32(shape: number[], start: number): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: "F32", shape, data: Float32Array.from({ length: n }, (_, i) => start + i) };
}

Deno.test("brown-llama-6m: config, tensor list, bf16 reads, require", async () => {
  using ckpt = await Checkpoint.open(BROWN);
  const { config } = ckpt;
  assert.equal(config.numLayers, 6);
  assert.equal(config.numKvHeads, 4);
  assert.equal(ckpt.names().length, 57);
  assert.ok(ckpt.has("lm_head.weight"));
  const q = ckpt.require("model.layers.5.self_attn.q_proj.weight", [
    config.numHeads * config.headDim,
    config.hiddenSize,
  ]);
  assert.equal(q.dtype, "BF16");
  assert.equal(q.file, join(BROWN, "model.safetensors"));
  const raw = await ckpt.read("model.norm.weight");
  assert.ok(raw.data instanceof Uint16Array);
  const w = await ckpt.readF32("model.layers.5.self_attn.q_proj.weight");
  assert.equal(w.length, 256 * 256);
  assert.ok(w.every(Number.isFinite));
  assert.throws(
    () => ckpt.require("model.norm.weight", [255]),
    (e: unknown) =>
      e instanceof CheckpointError && e.message.includes(BROWN) &&
      e.message.endsWith('tensor "model.norm.weight" has shape [256], expected [255]'),
  );
});

Deno.test("tiny-llama: reads match the safetensors file", async () => {
  using ckpt = await Checkpoint.open(TINY);
  using f = await SafetensorsFile.open(join(TINY, "model.safetensors"));
  assert.deepEqual(ckpt.names(), f.names().sort());
  assert.deepEqual(await ckpt.readF32("model.norm.weight"), await f.readF32("model.norm.weight"));
  assert.deepEqual(ckpt.info("model.norm.weight").shape, [64]);
});

Deno.test("error: a missing tensor", async () => {
  using ckpt = await Checkpoint.open(TINY);
  assert.throws(
    () => ckpt.require("model.layers.2.input_layernorm.weight"),
    (e: unknown) =>
      e instanceof CheckpointError &&
      e.message === `${TINY}: missing tensor "model.layers.2.input_layernorm.weight"`,
  );
  await rejects(() => ckpt.read("lm_head.bias"), CheckpointError, TINY, /missing tensor "lm_head.bias"/);
});

Deno.test("sharded checkpoint: tensors read across two shards", async () => {
  await using tmp = await tempCheckpoint();
  const a = "model-00001-of-00002.safetensors";
  const b = "model-00002-of-00002.safetensors";
  await writeSafetensors(join(tmp.dir, a), { "x.weight": f32([2, 3], 0), "y.weight": f32([4], 10) }, {
    format: "pt",
  });
  await writeSafetensors(join(tmp.dir, b), { "z.weight": f32([3, 1], 100), "unlisted": f32([1], 0) });
  const index = {
    metadata: { total_size: 52 },
    weight_map: { "x.weight": a, "y.weight": a, "z.weight": `./${b}` },
  };
  await Deno.writeTextFile(join(tmp.dir, "model.safetensors.index.json"), JSON.stringify(index));
  using ckpt = await Checkpoint.open(tmp.dir);
  assert.deepEqual(ckpt.names(), ["x.weight", "y.weight", "z.weight"]);
  assert.equal(ckpt.info("x.weight").file, join(tmp.dir, a));
  assert.equal(ckpt.info("z.weight").file, join(tmp.dir, b));
  assert.deepEqual(Array.from(await ckpt.readF32("x.weight")), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(Array.from(await ckpt.readF32("z.weight")), [100, 101, 102]);
  const [y, z] = await Promise.all([ckpt.read("y.weight"), ckpt.read("z.weight")]);
  assert.deepEqual(y.shape, [4]);
  assert.deepEqual(z.shape, [3, 1]);
  ckpt.require("z.weight", [3, 1]);
});

Deno.test("error: a shard path in the index that leaves the checkpoint directory", async () => {
  await using tmp = await tempCheckpoint();
  const outside = await Deno.makeTempDir({ prefix: "io_ckpt_outside_" });
  try {
    const victim = join(outside, "secret.safetensors");
    await writeSafetensors(victim, { "x.weight": f32([1], 0) });
    await Deno.symlink(victim, join(tmp.dir, "link.safetensors"));
    const indexPath = join(tmp.dir, "model.safetensors.index.json");
    for (
      const shard of [victim, "../" + outside.split("/").pop() + "/secret.safetensors", "link.safetensors"]
    ) {
      await Deno.writeTextFile(indexPath, JSON.stringify({ weight_map: { "x.weight": shard } }));
      await rejects(
        () => Checkpoint.open(tmp.dir),
        CheckpointError,
        indexPath,
        new RegExp(`shard path ".*" leaves the checkpoint directory`),
      );
    }
    await Deno.writeTextFile(
      indexPath,
      JSON.stringify({ weight_map: { "x.weight": "model-00009.safetensors" } }),
    );
    await rejects(
      () => Checkpoint.open(tmp.dir),
      CheckpointError,
      indexPath,
      /listed in the index is missing/,
    );
  } finally {
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("error: a pickle-only checkpoint", async () => {
  await using tmp = await tempCheckpoint();
  await Deno.writeFile(join(tmp.dir, "pytorch_model.bin"), new Uint8Array([0x80, 0x02]));
  await rejects(
    () => Checkpoint.open(tmp.dir),
    CheckpointError,
    tmp.dir,
    /only pickle weights \(pytorch_model\.bin\).*only safetensors.*save_pretrained\('OUT', safe_serialization=True\)/,
  );
});

Deno.test("error: missing directory, config or weights; bad config", async () => {
  await rejects(
    () => Checkpoint.open("tests/io/no-such-ckpt"),
    CheckpointError,
    "tests/io/no-such-ckpt",
    /does not exist/,
  );
  await using tmp = await tempCheckpoint();
  await rejects(() => Checkpoint.open(tmp.dir), CheckpointError, tmp.dir, /no model\.safetensors or/);
  await Deno.writeTextFile(join(tmp.dir, "config.json"), '{"vocab_size": 10}');
  await rejects(() => Checkpoint.open(tmp.dir), ConfigError, join(tmp.dir, "config.json"), /"hidden_size"/);
  await Deno.remove(join(tmp.dir, "config.json"));
  await rejects(
    () => Checkpoint.open(tmp.dir),
    CheckpointError,
    join(tmp.dir, "config.json"),
    /missing config\.json/,
  );
});
