/**
 * Training data of the distillation recipes: the Brown corpus by default (tokenized with the
 * teacher's tokenizer, cached), a text or JSONL file of the user's, and DPO preference pairs.
 *
 * - `.txt`: paragraphs separated by blank lines, each encoded and followed by the end-of-text id.
 * - `.jsonl`: one JSON object per line with a string `text` (blank lines skipped), encoded likewise.
 * - Preferences (`.jsonl`): `prompt`, `chosen`, `rejected` strings per line.
 *
 * Malformed files fail with a {@linkcode DataError} naming the file and line.
 *
 * @module
 */
import { DataError } from "../errors.ts";
import { type BrownIds, loadBrownIds, type TokenEncoder } from "../data/brown.ts";
import { loadTokenizer, type TextTokenizer } from "../io/tokenizer.ts";

/** Largest data file read (text is tokenized in memory). */
export const MAX_DATA_BYTES = 1 << 30;

/** Brown's train and validation ids under `modelDir`'s tokenizer (cached by the tokenizer's hash). */
export async function brownIdsForModel(modelDir: string): Promise<BrownIds> {
  const tok = await loadTokenizer(modelDir);
  const json = await Deno.readFile(`${modelDir}/tokenizer.json`);
  const hash = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", json)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return await loadBrownIds(tok, { tokenizerKey: hash, eosId: tok.eosTokenId ?? 0 });
}

async function readDataText(path: string): Promise<string> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    throw new DataError(path, `cannot read the data file (${(e as Error).message})`);
  }
  if (!info.isFile) throw new DataError(path, "not a regular file");
  if (info.size > MAX_DATA_BYTES) {
    throw new DataError(
      path,
      `${info.size} bytes is more than the ${MAX_DATA_BYTES}-byte limit of a data file`,
    );
  }
  const bytes = await Deno.readFile(path);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new DataError(path, "not UTF-8 text");
  }
}

/** Each non-blank line of a JSONL file parsed, with its 1-based line number. */
function* jsonLines(path: string, text: string): Generator<[Record<string, unknown>, number]> {
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new DataError(`${path}:${i + 1}`, `not JSON (${(e as Error).message})`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new DataError(`${path}:${i + 1}`, "each line must be a JSON object");
    }
    yield [v as Record<string, unknown>, i + 1];
  }
}

function field(path: string, line: number, obj: Record<string, unknown>, key: string): string {
  const v = obj[key];
  if (typeof v !== "string") throw new DataError(`${path}:${line}`, `"${key}" must be a string`);
  return v;
}

/**
 * Token ids of a `.txt` or `.jsonl` training file: every paragraph (or `text`) followed by `eosId`.
 * Throws when the file holds no tokens.
 */
export async function loadTextData(path: string, tok: TokenEncoder, eosId = 0): Promise<Int32Array> {
  const text = await readDataText(path);
  const docs: string[] = [];
  if (/\.jsonl$/i.test(path)) {
    for (const [obj, line] of jsonLines(path, text)) docs.push(field(path, line, obj, "text"));
  } else {
    docs.push(...text.split(/\n\s*\n/).map((p) => p.trim()).filter((p) => p !== ""));
  }
  const ids: number[] = [];
  for (const d of docs) {
    for (const id of tok.encode(d, { addSpecialTokens: false })) ids.push(id);
    ids.push(eosId);
  }
  if (docs.length === 0) throw new DataError(path, "holds no text");
  return Int32Array.from(ids);
}

/** One preference pair, tokenized: the prompt and each answer (without special tokens). */
export interface PreferencePair {
  prompt: number[];
  chosen: number[];
  rejected: number[];
}

/** Preference pairs of a JSONL file with `prompt`, `chosen` and `rejected` strings per line. */
export async function loadPreferenceData(path: string, tok: TextTokenizer): Promise<PreferencePair[]> {
  const text = await readDataText(path);
  const out: PreferencePair[] = [];
  const eos = tok.eosTokenId ?? 0;
  for (const [obj, line] of jsonLines(path, text)) {
    const enc = (k: string) => tok.encode(field(path, line, obj, k), { addSpecialTokens: false });
    const prompt = enc("prompt");
    out.push({ prompt, chosen: [...enc("chosen"), eos], rejected: [...enc("rejected"), eos] });
  }
  if (out.length === 0) throw new DataError(path, "holds no preference pairs");
  return out;
}
