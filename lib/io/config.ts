/**
 * Hugging Face Llama `config.json` parsing (transformers 4 and 5 forms) and size-capped JSON reading.
 *
 * @module
 */

import { ConfigError } from "../errors.ts";

/** Rotary position embedding parameters, normalised from either config form. */
export interface RopeConfig {
  /** Scaling scheme: none, linear position interpolation, or Llama-3.1 frequency-dependent scaling. */
  type: "default" | "linear" | "llama3";
  /** Base θ of the inverse frequencies θ^(−2i/d). */
  theta: number;
  /** Scaling factor (1 for "default"). */
  factor: number;
  /** llama3: wavelengths above original/lowFreqFactor are divided by `factor` (1 when unused). */
  lowFreqFactor: number;
  /** llama3: wavelengths below original/highFreqFactor are kept (4 when unused, as in Llama 3.1). */
  highFreqFactor: number;
  /** llama3: the pre-extension context length (max_position_embeddings when unused). */
  originalMaxPositionEmbeddings: number;
}

/** A validated Llama architecture config in camelCase; `raw` keeps the parsed JSON. */
export interface LlamaConfig {
  /** Rows of the embedding and lm_head matrices. */
  vocabSize: number;
  /** Residual stream width H. */
  hiddenSize: number;
  /** SwiGLU inner width I. */
  intermediateSize: number;
  /** Number of decoder layers. */
  numLayers: number;
  /** Query heads. */
  numHeads: number;
  /** Key/value heads (GQA when fewer than numHeads). */
  numKvHeads: number;
  /** Per-head width (hidden/heads unless given). */
  headDim: number;
  /** RMSNorm epsilon. */
  rmsNormEps: number;
  /** Longest position the model was configured for. */
  maxPositionEmbeddings: number;
  /** True: no lm_head.weight, the embedding matrix is reused. */
  tieWordEmbeddings: boolean;
  /** Biases on q/k/v/o projections. */
  attentionBias: boolean;
  /** Biases on gate/up/down projections. */
  mlpBias: boolean;
  /** MLP activation; only "silu" is accepted. */
  hiddenAct: string;
  /** Beginning-of-sequence id, or null when the config has none. */
  bosTokenId: number | null;
  /** End-of-sequence ids (the config may give one or a list); empty when none. */
  eosTokenIds: number[];
  /** RoPE parameters. */
  rope: RopeConfig;
  /** The parsed JSON as read. */
  raw: Record<string, unknown>;
}

const SUPPORTED_ROPE = ["default", "linear", "llama3"] as const;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Typed field access that throws {@linkcode ConfigError} naming the field and `where`. */
class Fields {
  constructor(readonly obj: Record<string, unknown>, readonly where: string, readonly prefix = "") {}

  #bad(key: string, want: string): never {
    const got = JSON.stringify(this.obj[key]) ?? String(this.obj[key]);
    throw new ConfigError(this.where, `field "${this.prefix}${key}" must be ${want}, got ${got}`);
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  int(key: string, fallback?: number): number {
    if (!this.has(key)) {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(this.where, `missing required field "${this.prefix}${key}"`);
    }
    const v = this.obj[key];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) this.#bad(key, "a positive integer");
    return v;
  }

  num(key: string, fallback?: number): number {
    if (!this.has(key)) {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(this.where, `missing required field "${this.prefix}${key}"`);
    }
    const v = this.obj[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) this.#bad(key, "a positive number");
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    if (!this.has(key)) return fallback;
    const v = this.obj[key];
    if (typeof v !== "boolean") this.#bad(key, "true or false");
    return v;
  }

  str(key: string, fallback: string): string {
    if (!this.has(key)) return fallback;
    const v = this.obj[key];
    if (typeof v !== "string") this.#bad(key, "a string");
    return v;
  }

  tokenIds(key: string): number[] {
    if (!this.has(key)) return [];
    const v = this.obj[key];
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0)) {
      this.#bad(key, "a token id or a list of token ids");
    }
    return list as number[];
  }
}

function parseRope(cfg: Fields, maxPos: number): RopeConfig {
  const { where } = cfg;
  let params: Fields;
  let theta: number;
  if (cfg.has("rope_parameters")) {
    const rp = cfg.obj["rope_parameters"];
    if (!isObject(rp)) throw new ConfigError(where, `field "rope_parameters" must be an object`);
    params = new Fields(rp, where, "rope_parameters.");
    theta = params.num("rope_theta", cfg.num("rope_theta", 10000));
  } else {
    theta = cfg.num("rope_theta", 10000);
    const rs = cfg.obj["rope_scaling"] ?? {};
    if (!isObject(rs)) throw new ConfigError(where, `field "rope_scaling" must be an object or null`);
    params = new Fields(rs, where, "rope_scaling.");
  }
  const type = params.has("rope_type") ? params.str("rope_type", "") : params.str("type", "default");
  if (!(SUPPORTED_ROPE as readonly string[]).includes(type)) {
    throw new ConfigError(
      where,
      `unsupported rope type ${JSON.stringify(type)} (supported: ${SUPPORTED_ROPE.join(", ")})`,
    );
  }
  const rope: RopeConfig = {
    type: type as RopeConfig["type"],
    theta,
    factor: 1,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: maxPos,
  };
  if (type === "linear") rope.factor = params.num("factor");
  if (type === "llama3") {
    rope.factor = params.num("factor");
    rope.lowFreqFactor = params.num("low_freq_factor");
    rope.highFreqFactor = params.num("high_freq_factor");
    rope.originalMaxPositionEmbeddings = params.int("original_max_position_embeddings");
    if (rope.highFreqFactor <= rope.lowFreqFactor) {
      throw new ConfigError(where, "llama3 rope needs high_freq_factor > low_freq_factor");
    }
  }
  return rope;
}

/**
 * Validates a parsed Llama `config.json` (`where` = its path, used in errors). Accepts the transformers 5
 * `rope_parameters` block and the v4 top-level `rope_theta` + `rope_scaling`; fills the defaults
 * transformers uses (kv heads = heads, head_dim = hidden/heads, untied, no biases, silu). Throws
 * {@linkcode ConfigError} for missing or mistyped fields and unsupported rope types or activations.
 */
export function parseLlamaConfig(json: unknown, where: string): LlamaConfig {
  if (!isObject(json)) throw new ConfigError(where, "config is not a JSON object");
  const f = new Fields(json, where);
  const hiddenSize = f.int("hidden_size");
  const numHeads = f.int("num_attention_heads");
  const numKvHeads = f.int("num_key_value_heads", numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(
      where,
      `num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`,
    );
  }
  if (!f.has("head_dim") && hiddenSize % numHeads !== 0) {
    throw new ConfigError(
      where,
      `hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${numHeads}`,
    );
  }
  const hiddenAct = f.str("hidden_act", "silu");
  if (hiddenAct !== "silu") {
    throw new ConfigError(
      where,
      `unsupported hidden_act ${JSON.stringify(hiddenAct)} (only "silu" is supported)`,
    );
  }
  const maxPositionEmbeddings = f.int("max_position_embeddings", 2048);
  const bos = f.tokenIds("bos_token_id");
  if (bos.length > 1) throw new ConfigError(where, `field "bos_token_id" must be a single token id`);
  return {
    vocabSize: f.int("vocab_size"),
    hiddenSize,
    intermediateSize: f.int("intermediate_size"),
    numLayers: f.int("num_hidden_layers"),
    numHeads,
    numKvHeads,
    headDim: f.int("head_dim", hiddenSize / numHeads),
    rmsNormEps: f.num("rms_norm_eps"),
    maxPositionEmbeddings,
    tieWordEmbeddings: f.bool("tie_word_embeddings", false),
    attentionBias: f.bool("attention_bias", false),
    mlpBias: f.bool("mlp_bias", false),
    hiddenAct,
    bosTokenId: bos.length ? bos[0] : null,
    eosTokenIds: f.tokenIds("eos_token_id"),
    rope: parseRope(f, maxPositionEmbeddings),
    raw: json,
  };
}

/**
 * Reads and parses a JSON file of at most `maxBytes` bytes. Throws {@linkcode ConfigError} naming the
 * file when it is missing, too large, not UTF-8 or not valid JSON (with the parser's message).
 */
export async function readJsonFile(path: string, maxBytes = 16 * 1024 * 1024): Promise<unknown> {
  let bytes: Uint8Array;
  try {
    const stat = await Deno.stat(path);
    if (!stat.isFile) throw new ConfigError(path, "not a regular file");
    if (stat.size > maxBytes) {
      throw new ConfigError(
        path,
        `file is ${stat.size} bytes, more than the ${maxBytes}-byte limit for JSON`,
      );
    }
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    if (e instanceof Deno.errors.NotFound) throw new ConfigError(path, "file not found", { cause: e });
    // permission denied, a symlink loop, a file where a directory should be, ...
    throw new ConfigError(path, `cannot read: ${(e as Error).message}`, { cause: e });
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new ConfigError(path, "file is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(path, `invalid JSON: ${(e as Error).message}`, { cause: e });
  }
}
