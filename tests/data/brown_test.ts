import assert from "node:assert/strict";
import { Tokenizer } from "@huggingface/tokenizers";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import {
  type BrownIds,
  loadBrownIds,
  normalizeBrownParagraph,
  parseBrownFile,
  readBrownParagraphs,
  splitBrown,
  type TokenEncoder,
  tokenizeParagraphs,
} from "../../lib/data/mod.ts";

const TOK_DIR = new URL("../../data/brown-llama-6m/", import.meta.url);
const VAL_IDS = new URL("../fixtures/brown-val-ids.safetensors", import.meta.url).pathname;

async function encoder(): Promise<TokenEncoder> {
  const json = JSON.parse(await Deno.readTextFile(new URL("tokenizer.json", TOK_DIR)));
  const cfg = JSON.parse(await Deno.readTextFile(new URL("tokenizer_config.json", TOK_DIR)));
  const tok = new Tokenizer(json, cfg);
  // Test-only speed-up (same ids): tokenizers.js 0.2.0 memoises BPE words in a 10k-entry LRU whose
  // Map delete/re-insert on every hit costs about half of the corpus tokenization time; swap in a plain Map.
  const model = (tok as unknown as { model?: { cache?: { get?: unknown; put?: unknown } } }).model;
  if (model?.cache && typeof model.cache.get === "function" && typeof model.cache.put === "function") {
    const memo = new Map<string, string[]>();
    model.cache = {
      get: (k: string) => memo.get(k),
      put: (k: string, v: string[]) => void memo.set(k, v),
      clear: () => memo.clear(),
    } as typeof model.cache;
  }
  return { encode: (t, o) => tok.encode(t, { add_special_tokens: o?.addSpecialTokens ?? true }).ids };
}

async function expectedValIds(): Promise<Int32Array> {
  using f = await SafetensorsFile.open(VAL_IDS);
  const t = await f.read("val_ids");
  assert.equal(t.dtype, "I32");
  assert.ok(t.data instanceof Int32Array);
  return t.data;
}

// Tokenizing the corpus takes a few seconds: done once, through the cache in a temp dir.
const cacheDir = await Deno.makeTempDir({ prefix: "brown-cache-" });
const tok = await encoder();
const KEY = "brown-llama-6m test";
let idsOnce: Promise<BrownIds> | undefined;
const ids = () => idsOnce ??= loadBrownIds(tok, { cacheDir, tokenizerKey: KEY });

function cacheFiles(): string[] {
  return [...Deno.readDirSync(cacheDir)].map((e) => e.name);
}

Deno.test("normalizeBrownParagraph: tags, quotes, punctuation, contractions", () => {
  const tagged =
    "\t``/`` It/pps is/bez n't/* (/( so/ql )/) bad/jj ''/'' ,/, John/np 's/$ dog/nn said/vbd ./. stray";
  assert.equal(normalizeBrownParagraph(tagged), `" It isn't (so) bad ", John's dog said.`);
  assert.equal(normalizeBrownParagraph("no tags here"), "");
  assert.equal(normalizeBrownParagraph("a/b/c d/e"), "a/b d");
});

Deno.test("parseBrownFile: blank-line separated blocks, empty blocks skipped", () => {
  const text = "\n\n\tThe/at cat/nn ./.\n\tIt/pps sat/vbd ./.\n\n\n  \n\tjunk\n\n\tDog/nn ./.\n";
  assert.deepEqual(parseBrownFile(text), ["The cat. It sat.", "Dog."]);
});

Deno.test("readBrownParagraphs + splitBrown: paragraph and word counts", async () => {
  const paras = await readBrownParagraphs();
  assert.equal(paras.length, 15667);
  const words = paras.reduce((n, p) => n + p.split(" ").length, 0);
  assert.ok(words > 1_000_000 && words < 1_100_000, `words ${words}`);
  const { train, validation } = splitBrown(paras);
  assert.equal(validation.length, 784);
  assert.equal(train.length, 15667 - 784);
  assert.equal(validation[1], paras[20]);
  assert.equal(train[0], paras[1]);
  assert.ok(paras[0].startsWith("The Fulton County Grand Jury said Friday an investigation of Atlanta's"));
});

Deno.test("loadBrownIds: validation ids equal brown-val-ids.safetensors, train length", async () => {
  const { train, validation } = await ids();
  const expected = await expectedValIds();
  let first = -1;
  for (let i = 0; i < Math.min(validation.length, expected.length); i++) {
    if (validation[i] !== expected[i]) {
      first = i;
      break;
    }
  }
  if (first < 0 && validation.length !== expected.length) {
    first = Math.min(validation.length, expected.length);
  }
  assert.equal(
    first,
    -1,
    `first mismatch at ${first}: got ${validation.slice(first, first + 12)}, want ${
      expected.slice(first, first + 12)
    }`,
  );
  assert.equal(validation.length, 83_774);
  assert.equal(train.length, 1_572_915);
  assert.equal(validation[validation.length - 1], 0);
  assert.equal(train[train.length - 1], 0);
  assert.equal(train.filter((t) => t === 0).length, 15667 - 784);
});

Deno.test("loadBrownIds: cache round trip and corrupt-cache recovery", async () => {
  const built = await ids();
  const files = cacheFiles();
  assert.equal(files.length, 1, `cache dir holds ${files}`);
  assert.match(files[0], /^brown-[0-9a-f]{16}\.bin$/);
  const path = `${cacheDir}/${files[0]}`;

  // A tokenizer that must not be called: the cache answers.
  const refuse: TokenEncoder = {
    encode: () => {
      throw new Error("tokenizer called despite a valid cache");
    },
  };
  const cached = await loadBrownIds(refuse, { cacheDir, tokenizerKey: KEY });
  assert.deepEqual(cached.train, built.train);
  assert.deepEqual(cached.validation, built.validation);

  // A different key misses the cache.
  await assert.rejects(loadBrownIds(refuse, { cacheDir, tokenizerKey: "other" }), /tokenizer called/);

  // Flip one id: the checksum rejects the file, which is rebuilt (with a cheap fake tokenizer).
  const bytes = await Deno.readFile(path);
  bytes[bytes.length - 4] ^= 1;
  await Deno.writeFile(path, bytes);
  const fake: TokenEncoder = { encode: (t) => [t.length % 7 + 1] };
  const rebuilt = await loadBrownIds(fake, { cacheDir, tokenizerKey: KEY });
  assert.equal(rebuilt.validation.length, 784 * 2);
  assert.equal((await loadBrownIds(refuse, { cacheDir, tokenizerKey: KEY })).train.length, (15667 - 784) * 2);

  // Truncated file: rebuilt too.
  await Deno.writeFile(path, bytes.subarray(0, 100));
  assert.equal((await loadBrownIds(fake, { cacheDir, tokenizerKey: KEY })).validation.length, 784 * 2);
  assert.deepEqual(cacheFiles().filter((n) => n.includes(".tmp-")), []);
  await Deno.remove(cacheDir, { recursive: true });
});

Deno.test("tokenizeParagraphs: eos after each paragraph, bad ids rejected", () => {
  const enc: TokenEncoder = {
    encode: (t, o) => {
      assert.equal(o?.addSpecialTokens, false);
      return [...t].map((c) => c.charCodeAt(0));
    },
  };
  assert.deepEqual([...tokenizeParagraphs(["ab", "c"], enc, 9)], [97, 98, 9, 99, 9]);
  assert.throws(() => tokenizeParagraphs(["x"], { encode: () => [1.5] }), /bad id/);
  assert.throws(() => tokenizeParagraphs(["x"], enc, -1), /eosId/);
});
