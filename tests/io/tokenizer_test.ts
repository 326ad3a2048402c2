import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../../lib/errors.ts";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { loadTokenizer } from "../../lib/io/tokenizer.ts";

const BROWN = "data/brown-llama-6m";

/** The first validation paragraph of the Brown corpus, as the fixtures' corpus recipe writes it. */
const FULTON =
  `The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election ` +
  `produced " no evidence " that any irregularities took place.`;

/** A temporary copy of the brown tokenizer.json with a custom tokenizer_config.json. */
async function tempTokenizerDir(config: Record<string, unknown>) {
  const dir = await Deno.makeTempDir({ prefix: "io_tok_" });
  await Deno.copyFile(join(BROWN, "tokenizer.json"), join(dir, "tokenizer.json"));
  await Deno.writeTextFile(join(dir, "tokenizer_config.json"), JSON.stringify(config));
  return {
    dir,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("brown-llama-6m tokenizer: Brown sentence round-trips, ids match the fixture", async () => {
  const tok = await loadTokenizer(BROWN);
  assert.equal(tok.vocabSize, 4096);
  assert.equal(tok.bosTokenId, 0);
  assert.equal(tok.eosTokenId, 0);
  assert.deepEqual(tok.encode("<|endoftext|>"), [0]);
  assert.equal(tok.decode([0]), "<|endoftext|>");

  const ids = tok.encode(FULTON);
  assert.equal(tok.decode(ids), FULTON);
  assert.deepEqual(tok.encode(FULTON, { addSpecialTokens: false }), ids);
  using f = await SafetensorsFile.open("tests/fixtures/brown-val-ids.safetensors");
  const val = (await f.read("val_ids")).data as Int32Array;
  assert.deepEqual(ids, Array.from(val.subarray(0, ids.length)));
  assert.equal(val[ids.length], 0);
  assert.equal(tok.decode(val.subarray(0, ids.length + 1)), FULTON + "<|endoftext|>");
  assert.equal(tok.decode(val.subarray(0, ids.length + 1), { skipSpecialTokens: true }), FULTON);
});

Deno.test("chat template: tokenizer_config string or list, chat_template.jinja overrides", async () => {
  await using tmp = await tempTokenizerDir({
    bos_token: "<|endoftext|>",
    eos_token: { content: "<|endoftext|>", special: true },
    chat_template: [
      { name: "tool_use", template: "TOOLS" },
      {
        name: "default",
        template:
          "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}" +
          "{% if add_generation_prompt %}<assistant>{% endif %}",
      },
    ],
  });
  const msgs = [{ role: "user", content: "Hi" }];
  const tok = await loadTokenizer(tmp.dir);
  assert.equal(tok.eosTokenId, 0);
  assert.equal(tok.applyChatTemplate(msgs), "<|endoftext|><user>Hi<|endoftext|>");
  assert.equal(
    tok.applyChatTemplate(msgs, { addGenerationPrompt: true }),
    "<|endoftext|><user>Hi<|endoftext|><assistant>",
  );
  const cfg = join(tmp.dir, "tokenizer_config.json");
  await Deno.writeTextFile(cfg, JSON.stringify({ chat_template: "S{{ messages[0].role }}" }));
  assert.equal((await loadTokenizer(tmp.dir)).applyChatTemplate(msgs), "Suser");
  await Deno.writeTextFile(
    join(tmp.dir, "chat_template.jinja"),
    "{{ messages | length }}:{{ messages[0].content }}",
  );
  assert.equal((await loadTokenizer(tmp.dir)).applyChatTemplate(msgs), "1:Hi");
});

Deno.test("error: no chat template, failing template, missing tokenizer.json", async () => {
  const brown = await loadTokenizer(BROWN);
  assert.throws(
    () => brown.applyChatTemplate([{ role: "user", content: "x" }]),
    (e: unknown) =>
      e instanceof ConfigError && e.message.startsWith(join(BROWN, "tokenizer_config.json")) &&
      /no chat template/.test(e.message),
  );
  await using tmp = await tempTokenizerDir({});
  const jinja = join(tmp.dir, "chat_template.jinja");
  await Deno.writeTextFile(jinja, "{{ raise_exception('roles must alternate') }}");
  const tok = await loadTokenizer(tmp.dir);
  assert.throws(
    () => tok.applyChatTemplate([{ role: "user", content: "x" }]),
    (e: unknown) =>
      e instanceof ConfigError && e.message.startsWith(jinja) && /roles must alternate/.test(e.message),
  );
  await Deno.remove(join(tmp.dir, "tokenizer.json"));
  await assert.rejects(
    () => loadTokenizer(tmp.dir),
    (e: unknown) =>
      e instanceof ConfigError && e.message === `${join(tmp.dir, "tokenizer.json")}: file not found`,
  );
});
