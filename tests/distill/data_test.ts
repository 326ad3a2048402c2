/** Training-data loaders of the recipes: text and JSONL files, preference pairs, and their errors. */
import assert from "node:assert/strict";
import { DataError } from "../../lib/errors.ts";
import { loadPreferenceData, loadTextData } from "../../lib/distill/data.ts";
import { loadTokenizer } from "../../lib/io/tokenizer.ts";

const tok = await loadTokenizer(new URL("../fixtures/tiny-llama", import.meta.url).pathname);

async function withFile(name: string, text: string, fn: (path: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/${name}`, text);
    await fn(`${dir}/${name}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("distill data: paragraphs of a .txt and texts of a .jsonl, each followed by end-of-text", async () => {
  await withFile("a.txt", "The jury said.\n\n\nIt was late.\n", async (p) => {
    const ids = await loadTextData(p, tok, 0);
    const want = [
      ...tok.encode("The jury said.", { addSpecialTokens: false }),
      0,
      ...tok.encode("It was late.", { addSpecialTokens: false }),
      0,
    ];
    assert.deepEqual([...ids], want);
  });
  await withFile("a.jsonl", '{"text": "The jury said."}\n\n{"text": "It was late."}\n', async (p) => {
    const ids = await loadTextData(p, tok, 7);
    assert.equal(ids.filter((i) => i === 7).length, 2);
    assert.equal(ids.at(-1), 7);
  });
});

Deno.test("distill data: malformed files name the file and line", async () => {
  const rejects = async (name: string, text: string, re: RegExp) =>
    await withFile(name, text, async (p) => {
      await assert.rejects(() => loadTextData(p, tok), (e) => e instanceof DataError && re.test(e.message));
    });
  await rejects("b.jsonl", '{"text": "ok"}\n{"text": 3}\n', /b\.jsonl:2: "text" must be a string/);
  await rejects("c.jsonl", "{not json\n", /c\.jsonl:1: not JSON/);
  await rejects("d.jsonl", "[1, 2]\n", /d\.jsonl:1: each line must be a JSON object/);
  await rejects("e.txt", "\n\n  \n", /holds no text/);
  await assert.rejects(() => loadTextData("/nonexistent/x.txt", tok), DataError);
  await withFile("f.txt", "", async (p) => {
    await Deno.writeFile(p, new Uint8Array([0xff, 0xfe, 0x41]));
    await assert.rejects(
      () => loadTextData(p, tok),
      (e) => e instanceof DataError && /not UTF-8/.test(e.message),
    );
  });
});

Deno.test("distill data: preference pairs tokenized, answers end with end-of-text", async () => {
  const line = (p: string, c: string, r: string) => JSON.stringify({ prompt: p, chosen: c, rejected: r });
  await withFile(
    "p.jsonl",
    `${line("Q: sky?", " blue", " green")}\n${line("Q: sun?", " hot", " cold")}\n`,
    async (p) => {
      const pairs = await loadPreferenceData(p, tok);
      assert.equal(pairs.length, 2);
      assert.deepEqual(pairs[0].prompt, tok.encode("Q: sky?", { addSpecialTokens: false }));
      assert.deepEqual(pairs[0].chosen, [
        ...tok.encode(" blue", { addSpecialTokens: false }),
        tok.eosTokenId ?? 0,
      ]);
    },
  );
  await withFile("q.jsonl", '{"prompt": "a", "chosen": "b"}\n', async (p) => {
    await assert.rejects(
      () => loadPreferenceData(p, tok),
      (e) => e instanceof DataError && /q\.jsonl:1: "rejected" must be a string/.test(e.message),
    );
  });
});
