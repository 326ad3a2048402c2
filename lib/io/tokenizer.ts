/**
 * Text tokenizer of a Hugging Face checkpoint directory: `tokenizer.json` run by
 * `@huggingface/tokenizers`, chat templates (from `tokenizer_config.json` or `chat_template.jinja`)
 * rendered by `@huggingface/jinja`.
 *
 * @example
 * ```ts
 * const tok = await loadTokenizer("data/brown-llama-6m");
 * const ids = tok.encode("The jury said", { addSpecialTokens: false });
 * tok.decode(ids); // "The jury said"
 * ```
 *
 * @module
 */

import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { readJsonFile } from "./config.ts";

/** One chat message for {@linkcode TextTokenizer.applyChatTemplate}. */
export interface ChatMessage {
  /** "system", "user", "assistant", ... */
  role: string;
  /** The message text. */
  content: string;
}

/** Text ↔ token ids, plus the checkpoint's chat template. */
export interface TextTokenizer {
  /**
   * Token ids of `text`; special tokens (e.g. BOS) are added per the post-processor unless disabled.
   * Throws {@linkcode ConfigError} naming tokenizer.json when a piece has no id (no unk_token to use) or
   * a malformed tokenizer.json component fails on the text.
   */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /**
   * Text of `ids` (`""` for none); special tokens are kept unless `skipSpecialTokens`. Throws
   * {@linkcode ConfigError} naming tokenizer.json when the library fails (ids that are not integers, a
   * malformed decoder).
   */
  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string;
  /** Id of `bos_token` from tokenizer_config.json, or null. */
  readonly bosTokenId: number | null;
  /** Id of `eos_token` from tokenizer_config.json, or null. */
  readonly eosTokenId: number | null;
  /** One more than the largest token id (vocabulary plus added tokens). */
  readonly vocabSize: number;
  /**
   * Renders `messages` with the checkpoint's chat template (encode the result with
   * `addSpecialTokens: false`: templates emit BOS themselves). Throws {@linkcode ConfigError} when the
   * checkpoint has no template or the template fails.
   */
  applyChatTemplate(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string;
}

const SPECIAL_KEYS = [
  "bos_token",
  "eos_token",
  "unk_token",
  "pad_token",
  "sep_token",
  "cls_token",
  "mask_token",
];

/** A special token as tokenizer_config.json writes it: a string or an AddedToken object. */
function tokenString(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  return null;
}

/** Picks the template from tokenizer_config.json's `chat_template` (string, list or map). */
function configTemplate(v: unknown, where: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === "string") return v;
  let entries: [string, unknown][] = [];
  if (Array.isArray(v)) {
    entries = v.map((
      e,
    ) => [String((e as { name?: unknown })?.name), (e as { template?: unknown })?.template]);
  } else if (typeof v === "object") entries = Object.entries(v);
  const chosen = entries.find(([n]) => n === "default") ?? entries[0];
  if (!chosen || typeof chosen[1] !== "string") {
    throw new ConfigError(where, `"chat_template" must be a string or a list of {name, template}`);
  }
  return chosen[1];
}

/**
 * One more than the largest token id of tokenizer.json (model vocab and added tokens), checking that
 * every id is a non-negative integer. Throws {@linkcode ConfigError} naming `where` otherwise.
 */
function vocabSizeOf(json: unknown, where: string): number {
  const isObj = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  let max = -1;
  const check = (id: unknown, what: string) => {
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
      const got = (JSON.stringify(id) ?? String(id)).slice(0, 40);
      throw new ConfigError(where, `${what} has id ${got}, not a token id (a non-negative integer)`);
    }
    if (id > max) max = id;
  };
  if (!isObj(json)) return 0;
  const vocab = isObj(json.model) ? json.model.vocab : undefined;
  if (Array.isArray(vocab)) max = vocab.length - 1; // Unigram: [piece, score] pairs, ids are positions
  else if (isObj(vocab)) {
    for (const [token, id] of Object.entries(vocab)) check(id, `model.vocab entry ${JSON.stringify(token)}`);
  }
  if (Array.isArray(json.added_tokens)) {
    for (const t of json.added_tokens) check(isObj(t) ? t.id : undefined, "an entry of added_tokens");
  }
  return max + 1;
}

/**
 * Refuses pre-tokenizer settings on which the library loops without end when encoding: a `FixedLength`
 * pre-tokenizer (at any depth of a `Sequence`) whose `length` is not a positive integer.
 */
function checkPreTokenizer(json: unknown, where: string): void {
  const root = (json as { pre_tokenizer?: unknown } | null)?.pre_tokenizer;
  const stack: unknown[] = [root]; // iterative: the JSON may nest deeply
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== "object" || v === null) continue;
    if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
      continue;
    }
    const o = v as Record<string, unknown>;
    if (o.type === "FixedLength" && !(Number.isSafeInteger(o.length) && (o.length as number) > 0)) {
      const got = (JSON.stringify(o.length) ?? String(o.length)).slice(0, 40);
      throw new ConfigError(where, `FixedLength pre-tokenizer needs a positive integer "length", got ${got}`);
    }
    for (const x of Object.values(o)) stack.push(x);
  }
}

async function readTextIfExists(path: string): Promise<string | null> {
  try {
    // stat first: reading a FIFO would block forever
    if (!(await Deno.stat(path)).isFile) throw new ConfigError(path, "not a regular file");
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    if (e instanceof Deno.errors.NotFound) return null;
    throw new ConfigError(path, `cannot read: ${(e as Error).message}`, { cause: e });
  }
}

class HfTextTokenizer implements TextTokenizer {
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly vocabSize: number;
  #tok: Tokenizer;
  #where: string;
  #templateSource: string | null;
  #templateWhere: string;
  #template: Template | null = null;
  #special: Record<string, string>;

  constructor(
    tok: Tokenizer,
    where: string,
    vocabSize: number,
    special: Record<string, string>,
    template: { source: string | null; where: string },
  ) {
    this.#tok = tok;
    this.#where = where;
    this.#special = special;
    this.#templateSource = template.source;
    this.#templateWhere = template.where;
    const id = (t: string | undefined) => (t === undefined ? null : tok.token_to_id(t) ?? null);
    this.bosTokenId = id(special.bos_token);
    this.eosTokenId = id(special.eos_token);
    // not from tok.get_vocab(): it walks the library's id-indexed array up to the largest id, which a
    // garbage id (say 4294967294) turns into billions of steps
    this.vocabSize = vocabSize;
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    let enc: { ids: number[]; tokens: string[] };
    try {
      enc = this.#tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true });
    } catch (e) {
      // a malformed normalizer/pre-tokenizer/post-processor that only fails when used
      throw new ConfigError(this.#where, `the tokenizer failed: ${(e as Error)?.message ?? e}`, { cause: e });
    }
    const { ids, tokens } = enc;
    const bad = ids.findIndex((id) => !Number.isSafeInteger(id));
    if (bad >= 0) {
      // a vocabulary without the token and without an unk_token: the library yields `undefined`
      throw new ConfigError(
        this.#where,
        `no id for token ${JSON.stringify(tokens[bad])} (not in model.vocab, and no usable unk_token)`,
      );
    }
    return ids;
  }

  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    const list = Array.from(ids);
    if (list.length === 0) return ""; // the library throws on an empty list
    try {
      return this.#tok.decode(list, { skip_special_tokens: opts.skipSpecialTokens ?? false });
    } catch (e) {
      throw new ConfigError(this.#where, `cannot decode: ${(e as Error)?.message ?? e}`, { cause: e });
    }
  }

  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    const where = this.#templateWhere;
    if (this.#templateSource === null) {
      throw new ConfigError(
        where,
        "no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja)",
      );
    }
    try {
      this.#template ??= new Template(this.#templateSource);
    } catch (e) {
      throw new ConfigError(where, `cannot parse the chat template: ${(e as Error).message}`, { cause: e });
    }
    try {
      return this.#template.render({
        ...this.#special,
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? false,
      });
    } catch (e) {
      throw new ConfigError(where, `chat template failed: ${(e as Error).message}`, { cause: e });
    }
  }
}

/**
 * Loads `tokenizer.json` (≤ 64 MiB) and the optional `tokenizer_config.json` and chat template of the
 * checkpoint directory `dir`. Throws {@linkcode ConfigError} naming the file when tokenizer.json is
 * missing or malformed.
 */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const tokPath = join(dir, "tokenizer.json");
  const cfgPath = join(dir, "tokenizer_config.json");
  const tokenizerJson = await readJsonFile(tokPath, 64 * 1024 * 1024);
  let config: Record<string, unknown> = {};
  try {
    const c = await readJsonFile(cfgPath);
    if (typeof c !== "object" || c === null || Array.isArray(c)) {
      throw new ConfigError(cfgPath, "not a JSON object");
    }
    config = c as Record<string, unknown>;
  } catch (e) {
    if (!(e instanceof ConfigError && e.cause instanceof Deno.errors.NotFound)) throw e;
  }
  const vocabSize = vocabSizeOf(tokenizerJson, tokPath);
  checkPreTokenizer(tokenizerJson, tokPath);
  const special: Record<string, string> = {};
  for (const k of SPECIAL_KEYS) {
    const s = tokenString(config[k]);
    if (s !== null) special[k] = s;
  }
  const jinjaPath = join(dir, "chat_template.jinja");
  const fromFile = await readTextIfExists(jinjaPath);
  const template = fromFile !== null
    ? { source: fromFile, where: jinjaPath }
    : { source: configTemplate(config["chat_template"], cfgPath), where: cfgPath };
  try {
    // the library throws arbitrary TypeErrors on malformed input, from either file
    return new HfTextTokenizer(
      new Tokenizer(tokenizerJson as object, config),
      tokPath,
      vocabSize,
      special,
      template,
    );
  } catch (e) {
    const also = Object.keys(config).length > 0 ? ` (with the settings of ${cfgPath})` : "";
    throw new ConfigError(tokPath, `cannot build the tokenizer${also}: ${(e as Error)?.message ?? e}`, {
      cause: e,
    });
  }
}
