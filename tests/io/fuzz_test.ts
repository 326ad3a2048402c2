/**
 * Seeded mutation fuzzing of every loader that reads a user's files: safetensors files, the shard index
 * `model.safetensors.index.json`, `config.json`, and `tokenizer.json` / `tokenizer_config.json`.
 *
 * Each case derives its mutation from `new Rng(seed)` alone, writes the mutated file(s) to a temporary
 * directory and runs the real loader on them (safetensors: open, then read every tensor; checkpoints:
 * `Checkpoint.open`, then read every tensor; configs: `readJsonFile` + `parseLlamaConfig` or
 * `Checkpoint.open`; tokenizers: `loadTokenizer`, then encode/decode a probe). A case passes when it
 * loads, or fails with a {@linkcode LabError} whose message names the mutated file. It fails on any
 * other exception, on a message that does not name the file, on exceeding the per-case time budget, and
 * on a read buffer larger than the file being read (the exact check that no reader allocates for data
 * the file cannot hold). Peak RSS growth, per family and over the run, is bounded too (`RSS_LIMIT_*`).
 *
 * Outcome counts are printed at the end. A failing case prints its family, seed and mutation; replay it
 * alone with `FUZZ_REPLAY=<family>:<seed>` (family: safetensors, index, config, tokenizer). `FUZZ_SEED`
 * (default 1) moves every case to other seeds; `FUZZ_SCALE` (default 1) multiplies the case counts;
 * `FUZZ_ONLY=index,config` runs only those families.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { LabError } from "../../lib/errors.ts";
import { Checkpoint } from "../../lib/io/checkpoint.ts";
import { parseLlamaConfig, readJsonFile } from "../../lib/io/config.ts";
import { type Dtype, DTYPES, type HostData } from "../../lib/io/dtype.ts";
import {
  encodeSafetensors,
  type HostTensor,
  MAX_HEADER_BYTES,
  SafetensorsFile,
} from "../../lib/io/safetensors.ts";
import { loadTokenizer, type TextTokenizer } from "../../lib/io/tokenizer.ts";
import { loadPreferenceData, loadTextData } from "../../lib/distill/data.ts";
import { Rng } from "../../lib/random.ts";

const KERNEL_FIXTURE = "tests/fixtures/kernels/selective-scan.safetensors";
const TINY = "tests/fixtures/tiny-llama";
const BROWN = "data/brown-llama-6m";

const BASE_SEED = Number(Deno.env.get("FUZZ_SEED") ?? "1");
const SCALE = Number(Deno.env.get("FUZZ_SCALE") ?? "1");
const REPLAY = Deno.env.get("FUZZ_REPLAY") ?? null;
const ONLY = Deno.env.get("FUZZ_ONLY")?.split(",") ?? null;

/** Cases per family (≥ 10,000 in all). */
const COUNTS = { safetensors: 6400, index: 1600, config: 3600, tokenizer: 800, jsonl: 1200 };
/** Cases run at once (each in its own directory): hides file-system latency on a 2-core machine. */
const CONCURRENCY = 4;
/** A case slower than this (wall time, including waiting for its turn on the event loop) fails. */
const CASE_BUDGET_MS = 5000;
/**
 * Allowed peak RSS growth while one family runs, and over the whole run. The live JS heap stays flat
 * (checked with --expose-gc), but V8 sizes its heap from the test runner's ~85 MB live heap and keeps
 * the pages, and malloc keeps freed buffers: identical runs peak 80-200 MB above the start. The bounds
 * leave room for that on a busy CI machine; a loader that trusted a hostile header's claimed sizes would
 * allocate gigabytes and still fail them.
 */
const RSS_LIMIT_FAMILY = 400 * 1024 * 1024;
const RSS_LIMIT_RUN = 600 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------------

type Obj = Record<string, unknown>;

/** One prepared case: what was done, the paths an error may name, and the load to run. */
interface Case {
  /** Human-readable mutation list, printed on failure. */
  desc: string[];
  /** An error message must contain one of these (the mutated file, or the checkpoint directory). */
  names: string[];
  /** Loads the mutated files; resolves on a successful load. */
  run: () => Promise<void>;
}

type Prepare = (rng: Rng, slot: string, desc: string[]) => Promise<Case>;

interface FamilyStats {
  cases: number;
  ms: number;
  outcomes: Map<string, number>;
  reasons: Map<string, number>;
  failures: string[];
  /** RSS when the family started, and the largest RSS seen while it ran. */
  rssStart: number;
  rssPeak: number;
}

const stats = new Map<string, FamilyStats>();
const readViolations: string[] = [];
let rssBase = 0;
let rssPeak = 0;

function bump(m: Map<string, number>, k: string, by = 1): void {
  m.set(k, (m.get(k) ?? 0) + by);
}

function short(v: unknown, max = 60): string {
  let s: string;
  try {
    s = (JSON.stringify(v) ?? String(v)).replace(
      /"@@RAW(\d+)@@"/g,
      (_, i) => `raw ${RawJson.current?.text(+i)}`,
    );
  } catch {
    s = String(v);
  }
  return s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s;
}

/** An error message with paths, numbers and quoted strings blanked out, to count kinds of reasons. */
function reasonOf(message: string, root: string): string {
  return message
    .split(root).join("<tmp>")
    .replace(/<tmp>[^\s:)]*/g, "<file>")
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/\[[^\]]*\]/g, "[…]")
    .replace(/\d+(\.\d+)?(e[+-]?\d+)?/g, "N")
    .slice(0, 110);
}

function sampleRss(st?: FamilyStats): void {
  const rss = Deno.memoryUsage().rss;
  if (rss > rssPeak) rssPeak = rss;
  if (st && rss > st.rssPeak) st.rssPeak = rss;
}

function caseSeed(i: number): number {
  return BASE_SEED * 1_000_000 + i;
}

/**
 * Runs `count` cases of `family` (`CONCURRENCY` at a time, slot k in directory `<root>/<family>-<k>`).
 * Records outcomes; returns nothing, the caller asserts on `stats`.
 */
async function runFamily(
  family: string,
  count: number,
  root: string,
  setupSlot: (slot: string) => Promise<void>,
  prepare: Prepare,
): Promise<FamilyStats> {
  const rss = Deno.memoryUsage().rss;
  const st: FamilyStats = {
    cases: 0,
    ms: 0,
    outcomes: new Map(),
    reasons: new Map(),
    failures: [],
    rssStart: rss,
    rssPeak: rss,
  };
  stats.set(family, st);
  let seeds = Array.from({ length: Math.round(count * SCALE) }, (_, i) => caseSeed(i));
  let verbose = false;
  if (ONLY !== null && !ONLY.includes(family)) seeds = [];
  if (REPLAY !== null) {
    const [fam, seed] = REPLAY.split(":");
    seeds = fam === family ? [Number(seed)] : [];
    verbose = true;
  }
  const t0 = performance.now();
  let next = 0;
  const worker = async (k: number) => {
    const slot = join(root, `${family}-${k}`);
    await Deno.mkdir(slot, { recursive: true });
    await setupSlot(slot);
    while (next < seeds.length) {
      const seed = seeds[next++];
      await runOne(family, seed, slot, prepare, st, verbose, root);
      if (st.cases % 32 === 0) sampleRss(st);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, seeds.length) }, (_, k) => worker(k)));
  st.ms = performance.now() - t0;
  sampleRss(st);
  return st;
}

async function runOne(
  family: string,
  seed: number,
  slot: string,
  prepare: Prepare,
  st: FamilyStats,
  verbose: boolean,
  root: string,
): Promise<void> {
  const desc: string[] = [];
  const fail = (problem: string) => {
    const line = `${family} seed=${seed} mutation=[${desc.join("; ")}]: ${problem}\n` +
      `  replay: FUZZ_REPLAY=${family}:${seed} deno test -A --cached-only tests/io/fuzz_test.ts`;
    console.error(`FUZZ FAILURE ${line}`);
    st.failures.push(line);
  };
  let c: Case;
  try {
    c = await prepare(new Rng(seed), slot, desc);
  } catch (e) {
    fail(`the test's own mutation code threw: ${(e as Error)?.stack ?? e}`);
    return;
  }
  st.cases++;
  const start = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((res) => {
    timer = setTimeout(() => res("timeout"), CASE_BUDGET_MS);
  });
  let outcome: string;
  try {
    const r = await Promise.race([c.run().then(() => "loaded" as const), timeout]);
    if (r === "timeout") {
      fail(
        `still running after the ${CASE_BUDGET_MS} ms budget (hang; a case that blocks the event loop ` +
          "delays the cases running beside it: look for the longest)",
      );
      bump(st.outcomes, "HANG");
      return;
    }
    outcome = "loaded";
  } catch (e) {
    if (e instanceof LabError) {
      outcome = e.name;
      bump(st.reasons, `${e.name}: ${reasonOf(e.message, root)}`);
      if (!c.names.some((n) => e.message.includes(n))) {
        fail(`${e.name} does not name the file (${c.names.join(" or ")}): ${e.message.slice(0, 300)}`);
      }
      if (verbose) console.log(`${family} seed=${seed}: ${e.name}: ${e.message.slice(0, 2000)}`);
    } else {
      outcome = `NOT A LabError (${(e as Error)?.name ?? typeof e})`;
      fail(`threw ${(e as Error)?.stack?.slice(0, 1500) ?? String(e).slice(0, 300)}`);
    }
  } finally {
    clearTimeout(timer);
  }
  const ms = performance.now() - start;
  if (ms > CASE_BUDGET_MS) fail(`took ${ms.toFixed(0)} ms, over the ${CASE_BUDGET_MS} ms budget`);
  bump(st.outcomes, outcome);
  if (verbose) console.log(`${family} seed=${seed} mutation=[${desc.join("; ")}] → ${outcome}`);
}

function report(family: string, st: FamilyStats): string {
  const outs = [...st.outcomes].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");
  const reasons = [...st.reasons].sort((a, b) => b[1] - a[1]).slice(0, 8)
    .map(([k, v]) => `    ${String(v).padStart(5)}  ${k}`).join("\n");
  const rss = ((st.rssPeak - st.rssStart) / 2 ** 20).toFixed(1);
  return `fuzz ${family}: ${st.cases} cases in ${
    (st.ms / 1000).toFixed(1)
  } s (peak RSS +${rss} MB): ${outs}\n` +
    `  most frequent reasons:\n${reasons}`;
}

/**
 * Instruments file reads: every buffer handed to `FsFile.read` must be no larger than the file (or the
 * 8-byte prefix buffer), i.e. the readers never allocate for data the file cannot hold.
 */
function instrumentReads(): () => void {
  const origOpen = Deno.open;
  const origRead = Deno.FsFile.prototype.read;
  const paths = new WeakMap<Deno.FsFile, string>();
  Deno.open = async function (path: string | URL, options?: Deno.OpenOptions) {
    const f = await origOpen(path, options);
    paths.set(f, String(path));
    return f;
  };
  Deno.FsFile.prototype.read = function (this: Deno.FsFile, p: Uint8Array) {
    const size = this.statSync().size;
    if (p.length > Math.max(size, 8) && readViolations.length < 20) {
      readViolations.push(`read of ${p.length} bytes from ${paths.get(this)} (${size} bytes)`);
    }
    return origRead.call(this, p);
  };
  return () => {
    Deno.open = origOpen;
    Deno.FsFile.prototype.read = origRead;
  };
}

// ---------------------------------------------------------------------------------------------------
// Mutation helpers
// ---------------------------------------------------------------------------------------------------

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)];
}

/** Picks a key by weight. */
function weighted<K extends string>(rng: Rng, w: Record<K, number>): K {
  const entries = Object.entries(w) as [K, number][];
  let r = rng.uniform() * entries.reduce((a, [, v]) => a + v, 0);
  for (const [k, v] of entries) {
    r -= v;
    if (r < 0) return k;
  }
  return entries[entries.length - 1][0];
}

/**
 * JSON text with raw (possibly invalid) pieces spliced in: `mark(text)` returns a placeholder string to
 * put in the object; `stringify` replaces each quoted placeholder with its raw text.
 */
class RawJson {
  /** The latest instance (mutations are synchronous), so that descriptions can show raw pieces. */
  static current: RawJson | null = null;
  #texts: string[] = [];
  constructor() {
    RawJson.current = this;
  }
  text(i: number): string {
    return this.#texts[i];
  }
  mark(text: string): string {
    this.#texts.push(text);
    return `@@RAW${this.#texts.length - 1}@@`;
  }
  stringify(v: unknown, indent?: number): string {
    let s = JSON.stringify(v, null, indent);
    this.#texts.forEach((t, i) => {
      s = s.replace(`"@@RAW${i}@@"`, () => t);
    });
    return s;
  }
}

function deepArray(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

function deepObject(depth: number): string {
  return '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
}

/** Values of the wrong type or range for any field. */
function garbage(rng: Rng, raw: RawJson): unknown {
  return pick(rng, [
    () => null,
    () => true,
    () => false,
    () => 0,
    () => -1,
    () => -0,
    () => 0.5,
    () => 1e308,
    () => -1e308,
    () => 2 ** 53,
    () => 2 ** 53 + 2,
    () => 2 ** 32,
    () => "",
    () => "NaN",
    () => "Infinity",
    () => "-Infinity",
    () => "64",
    () => "x".repeat(1 + rng.int(5000)),
    () => [],
    () => [1, 2],
    () => ["a"],
    () => ({}),
    () => ({ a: 1 }),
    () => ({ __proto__: 1 }),
    () => raw.mark("1e999"),
    () => raw.mark("-1e999"),
    () => raw.mark(deepArray(1 + rng.int(20000))),
    () => raw.mark(deepObject(1 + rng.int(5000))),
  ])();
}

/** Literals that are not valid JSON, or valid JSON that parses to something odd. */
const ODD_LITERALS = [
  "NaN",
  "Infinity",
  "-Infinity",
  "1e999",
  "-1e999",
  "0x40",
  "064",
  "+64",
  ".5",
  "5.",
  "1_000",
  "-",
  "1e",
  '"NaN"',
  '"Infinity"',
  "undefined",
  "None",
];

function truncateText(rng: Rng, text: string, desc: string[]): string {
  const at = pick(rng, [0, 1, rng.int(text.length), text.length - 1, rng.int(64)]);
  desc.push(`truncate text to ${at} of ${text.length} chars`);
  return text.slice(0, at);
}

function flipBytes(rng: Rng, bytes: Uint8Array, from: number, to: number, desc: string[], max = 8): void {
  if (to <= from) return;
  const k = 1 + rng.int(max);
  const where: string[] = [];
  for (let i = 0; i < k; i++) {
    const pos = from + rng.int(to - from);
    const bit = rng.int(8);
    bytes[pos] ^= 1 << bit;
    where.push(`${pos}.${bit}`);
  }
  desc.push(`flip bits ${where.join(",")}`);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Byte-level damage to a JSON text file: flips, invalid UTF-8, BOM, NUL. */
function damageText(rng: Rng, text: string, desc: string[]): Uint8Array {
  const bytes = encoder.encode(text);
  const kind = rng.int(5);
  if (kind === 0 || bytes.length === 0) {
    flipBytes(rng, bytes, 0, Math.max(1, bytes.length), desc);
    return bytes;
  }
  if (kind === 1) {
    desc.push("prepend a UTF-8 BOM");
    const out = new Uint8Array(bytes.length + 3);
    out.set([0xef, 0xbb, 0xbf]);
    out.set(bytes, 3);
    return out;
  }
  const pos = rng.int(bytes.length);
  const ins = pick(rng, [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0x00], [0xf0, 0x9f]]);
  desc.push(`insert bytes ${JSON.stringify(ins)} at ${pos}`);
  const out = new Uint8Array(bytes.length + ins.length);
  out.set(bytes.subarray(0, pos));
  out.set(ins, pos);
  out.set(bytes.subarray(pos), pos + ins.length);
  return out;
}

/** Makes `path` a sparse file of `size` bytes (a cheap "huge" file: only the size is checked). */
async function makeHuge(path: string, head: string, size: number): Promise<void> {
  await Deno.writeTextFile(path, head);
  await Deno.truncate(path, size);
}

// ---------------------------------------------------------------------------------------------------
// (a) safetensors files
// ---------------------------------------------------------------------------------------------------

interface StBase {
  label: string;
  bytes: Uint8Array;
  /** Header length from the prefix. */
  n: number;
  /** The header JSON text (padding stripped). */
  header: string;
  data: Uint8Array;
}

function splitSafetensors(label: string, bytes: Uint8Array): StBase {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  return {
    label,
    bytes,
    n,
    header: decoder.decode(bytes.subarray(8, 8 + n)).trimEnd(),
    data: bytes.subarray(8 + n),
  };
}

function assemble(header: Uint8Array, data: Uint8Array, len?: bigint, padByte = 0x20): Uint8Array {
  const padded = Math.ceil(header.length / 8) * 8;
  const out = new Uint8Array(8 + padded + data.length);
  new DataView(out.buffer).setBigUint64(0, len ?? BigInt(padded), true);
  out.set(header, 8);
  out.fill(padByte, 8 + header.length, 8 + padded);
  out.set(data, 8 + padded);
  return out;
}

const ARRAYS: Record<Dtype, (n: number) => HostData> = {
  F64: (n) => new Float64Array(n),
  F32: (n) => new Float32Array(n),
  F16: (n) => new Uint16Array(n),
  BF16: (n) => new Uint16Array(n),
  I64: (n) => new BigInt64Array(n),
  I32: (n) => new Int32Array(n),
  I16: (n) => new Int16Array(n),
  I8: (n) => new Int8Array(n),
  U64: (n) => new BigUint64Array(n),
  U32: (n) => new Uint32Array(n),
  U16: (n) => new Uint16Array(n),
  U8: (n) => new Uint8Array(n),
  BOOL: (n) => new Uint8Array(n),
};

/**
 * A header-heavy safetensors file: 160 tiny tensors of every dtype (scalars, zero-size dims, odd names)
 * and 40 metadata entries; the header is most of the file.
 */
function buildHeaderHeavy(): Uint8Array {
  const rng = new Rng(7);
  const odd = ["", "é", "e\u0301", "💥", 'quote"q', "back\\slash", "ctrl\u0001", "sp ace", "__proto__", "0"];
  const tensors = new Map<string, HostTensor>();
  for (let i = 0; i < 160; i++) {
    const dtype = DTYPES[i % DTYPES.length];
    const rank = rng.int(4);
    const shape = Array.from({ length: rank }, () => rng.int(4));
    const n = shape.reduce((a, b) => a * b, 1);
    const data = ARRAYS[dtype](n);
    const bytes = new Uint8Array(data.buffer);
    for (let j = 0; j < bytes.length; j++) bytes[j] = dtype === "BOOL" ? rng.int(2) : rng.int(256);
    const name = i < odd.length ? odd[i] : `model.layers.${i >> 3}.part_${i & 7}.${dtype.toLowerCase()}`;
    tensors.set(name, { dtype, shape, data });
  }
  const metadata: Record<string, string> = { format: "pt" };
  for (let i = 0; i < 40; i++) metadata[`key_${i}_${"ü".repeat(i % 5)}`] = `value ${i} ${"x".repeat(i * 3)}`;
  return encodeSafetensors(tensors, metadata);
}

const ST_DTYPES: unknown[] = [
  ...DTYPES,
  "f32",
  "F8_E4M3",
  "F8_E5M2",
  "F4",
  "C64",
  "",
  " F32",
  "F32\u0000",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  4,
  null,
  true,
  [],
  {},
  ["F32"],
];

const ST_DIMS: unknown[] = [
  -1,
  -0,
  0,
  1,
  1.5,
  1e20,
  2 ** 53,
  2 ** 53 + 2,
  2 ** 31,
  2 ** 32,
  "4",
  null,
  true,
  [],
  {},
];

const INTERESTING_BYTES = [
  0x00,
  0xff,
  0x7b,
  0x7d,
  0x5b,
  0x5d,
  0x22,
  0x3a,
  0x2c,
  0x2d,
  0x2e,
  0x30,
  0x31,
  0x39,
  0x65,
  0x5c,
  0x20,
  0x0a,
  0xc3,
  0x80,
  0xed,
  0xf0,
];

/** A JSON-aware mutation of the header object; returns the new header text. */
function mutateHeaderJson(rng: Rng, base: StBase, desc: string[]): string {
  const raw = new RawJson();
  const h = JSON.parse(base.header) as Obj;
  const names = Object.keys(h).filter((k) => k !== "__metadata__");
  const name = pick(rng, names);
  const entry = h[name] as Obj;
  const offs = entry.data_offsets as number[];
  const shape = entry.shape as unknown[];
  const kind = weighted(rng, {
    dtype: 6,
    shape: 8,
    offsets: 9,
    metadata: 5,
    entries: 6,
    duplicateKey: 4,
    whole: 2,
    padding: 2,
  });
  switch (kind) {
    case "dtype": {
      entry.dtype = pick(rng, ST_DTYPES);
      desc.push(`dtype of ${short(name)} = ${short(entry.dtype)}`);
      break;
    }
    case "shape": {
      const op = rng.int(8);
      if (op === 0 && shape.length > 0) {
        const i = rng.int(shape.length);
        shape[i] = pick(rng, ST_DIMS);
        desc.push(`shape[${i}] of ${short(name)} = ${short(shape[i])}`);
      } else if (op === 1) {
        shape.push(pick(rng, [1, 1, 0, 2]));
        desc.push(`append a dim to shape of ${short(name)}: ${short(shape)}`);
      } else if (op === 2) {
        shape.pop();
        desc.push(`drop a dim of shape of ${short(name)}: ${short(shape)}`);
      } else if (op === 3) {
        shape.reverse();
        desc.push(`reverse shape of ${short(name)}: ${short(shape)}`);
      } else if (op === 4) {
        const n = (shape as number[]).reduce((a, b) => a * b, 1);
        entry.shape = [n];
        desc.push(`flatten shape of ${short(name)} to [${n}]`);
      } else if (op === 5) {
        entry.shape = pick(rng, [[2 ** 26, 2 ** 26, 2 ** 26], [2 ** 40, 0], [0, 2 ** 60], [2 ** 53 - 1]]);
        desc.push(`shape of ${short(name)} = ${short(entry.shape)}`);
      } else if (op === 6) {
        entry.shape = garbage(rng, raw);
        desc.push(`shape of ${short(name)} = ${short(entry.shape)}`);
      } else {
        entry.shape = raw.mark(`[${pick(rng, ODD_LITERALS)}]`);
        desc.push(`shape of ${short(name)} = ${short(entry.shape)}`);
      }
      break;
    }
    case "offsets": {
      const dataLen = base.data.length;
      const other = h[pick(rng, names)] as Obj;
      const ops: [string, () => unknown][] = [
        ["reversed", () => [offs[1], offs[0]]],
        ["shifted", () => offs.map((o) => o + pick(rng, [-8, -4, -1, 1, 4, 8, 1024]))],
        ["begin+1", () => [offs[0] + 1, offs[1]]],
        ["end+k", () => [offs[0], offs[1] + 1 + rng.int(16)]],
        ["past the data", () => [dataLen, dataLen + (offs[1] - offs[0])]],
        ["from 0", () => [0, offs[1] - offs[0]]],
        ["huge", () => [2 ** 53 - 8, 2 ** 53 - 8 + (offs[1] - offs[0])]],
        ["1e300", () => [1e300, 1e300]],
        ["negative", () => [-(offs[1] - offs[0]), 0]],
        ["floats", () => [offs[0] + 0.5, offs[1] + 0.5]],
        ["strings", () => offs.map(String)],
        ["one value", () => [offs[0]]],
        ["three values", () => [offs[0], offs[1], offs[1]]],
        ["garbage", () => garbage(rng, raw)],
        ["another tensor's", () => other.data_offsets],
        ["raw literal", () => raw.mark(`[${pick(rng, ODD_LITERALS)}, ${offs[1]}]`)],
        ["swapped with another tensor's (loads when their sizes are equal)", () => {
          const theirs = other.data_offsets;
          other.data_offsets = offs;
          return theirs;
        }],
      ];
      const [label, make] = pick(rng, ops);
      entry.data_offsets = make();
      desc.push(`data_offsets of ${short(name)} ${label}: ${short(entry.data_offsets)}`);
      break;
    }
    case "metadata": {
      const op = rng.int(4);
      if (op === 0) {
        h.__metadata__ = garbage(rng, raw);
        desc.push(`__metadata__ = ${short(h.__metadata__)}`);
      } else if (op === 1 && typeof h.__metadata__ === "object" && h.__metadata__ !== null) {
        const m = h.__metadata__ as Obj;
        const k = pick(rng, [...Object.keys(m), "new", "__proto__", ""]);
        m[k] = garbage(rng, raw);
        desc.push(`__metadata__[${short(k)}] = ${short(m[k])}`);
      } else if (op === 2) {
        delete h.__metadata__;
        desc.push("delete __metadata__");
      } else {
        h.__metadata__ = { big: "m".repeat(1 + rng.int(100_000)), [name]: "x" };
        desc.push("__metadata__ with a long string value");
      }
      break;
    }
    case "entries": {
      const op = rng.int(7);
      if (op === 0) {
        delete h[name];
        desc.push(`delete tensor ${short(name)}`);
      } else if (op === 1) {
        h[`${name}.copy`] = { ...entry };
        desc.push(`duplicate tensor ${short(name)} under another name`);
      } else if (op === 2) {
        const to = pick(rng, [
          "",
          "__metadata__",
          "__proto__",
          "constructor",
          "a".repeat(20000),
          "\u0000",
          "💥",
        ]);
        delete h[name];
        h[to] = entry;
        desc.push(`rename tensor ${short(name)} to ${short(to)}`);
      } else if (op === 3) {
        entry[pick(rng, ["extra", "dtype ", "offsets", "__proto__"])] = garbage(rng, raw);
        desc.push(`add an unknown field to tensor ${short(name)}`);
      } else if (op === 4) {
        const k = pick(rng, ["dtype", "shape", "data_offsets"]);
        delete entry[k];
        desc.push(`delete field ${k} of tensor ${short(name)}`);
      } else if (op === 5) {
        h[name] = garbage(rng, raw);
        desc.push(`tensor ${short(name)} = ${short(h[name])}`);
      } else {
        const at = pick(rng, [offs[0], offs[1], base.data.length, rng.int(base.data.length + 1)]);
        h.zero_size = { dtype: "F32", shape: [pick(rng, [0, 1])], data_offsets: [at, at] };
        desc.push(`add a zero-size tensor at ${at}`);
      }
      break;
    }
    case "duplicateKey": {
      // JSON.parse keeps the last of duplicate keys; the Rust reader (serde) refuses duplicates
      const text = JSON.stringify(h);
      const dup = `${JSON.stringify(pick(rng, [name, "__metadata__"]))}:${
        pick(rng, [
          JSON.stringify({ dtype: "F32", shape: [1], data_offsets: [0, 4] }),
          JSON.stringify(entry),
          '{"a":1}',
        ])
      }`;
      const escaped = name.length > 0
        ? `"\\u${name.charCodeAt(0).toString(16).padStart(4, "0")}${JSON.stringify(name).slice(2)}:${
          JSON.stringify({ dtype: "F32", shape: [0], data_offsets: [0, 0] })
        }`
        : dup;
      const piece = rng.int(2) === 0 ? dup : escaped;
      if (rng.int(2) === 0) {
        desc.push(`duplicate key first: ${short(piece)}`);
        return `{${piece},${text.slice(1)}`;
      }
      desc.push(`duplicate key last: ${short(piece)}`);
      return `${text.slice(0, -1)},${piece}}`;
    }
    case "whole": {
      const t = pick(rng, [
        "[]",
        "null",
        '"x"',
        "123",
        "{}",
        "true",
        "",
        deepArray(1 + rng.int(100_000)),
        deepObject(1 + rng.int(20_000)),
        `{"a":${deepArray(1 + rng.int(100_000))}}`,
      ]);
      desc.push(`header text = ${short(t)}`);
      return t;
    }
    case "padding": {
      const ws = pick(rng, [" ", "\n", "\t", "\r\n"]).repeat(1 + rng.int(pick(rng, [64, 4096, 1 << 18])));
      desc.push(`pad the JSON with ${ws.length} whitespace chars before it`);
      return ws + JSON.stringify(h);
    }
  }
  return raw.stringify(h);
}

function mutateSafetensors(rng: Rng, base: StBase, desc: string[]): Uint8Array {
  desc.push(`base ${base.label}`);
  let bytes: Uint8Array;
  let n = base.n;
  if (rng.uniform() < 0.45) {
    const text = mutateHeaderJson(rng, base, desc);
    const header = encoder.encode(text);
    const stale = rng.int(12) === 0;
    const padNul = rng.int(30) === 0;
    if (stale) desc.push(`keep the old header length ${base.n}`);
    if (padNul) desc.push("pad the header with NUL bytes");
    bytes = assemble(header, base.data, stale ? BigInt(base.n) : undefined, padNul ? 0 : 0x20);
    n = stale ? base.n : Math.ceil(header.length / 8) * 8;
    if (rng.uniform() > 0.2) return bytes;
  } else {
    bytes = base.bytes.slice();
  }
  const kind = weighted(rng, {
    flipPrefix: 8,
    flipHeader: 16,
    setHeaderByte: 10,
    truncate: 10,
    extend: 6,
    lenField: 12,
    flipData: 3,
    splice: 5,
  });
  const hEnd = Math.min(8 + n, bytes.length);
  switch (kind) {
    case "flipPrefix":
      flipBytes(rng, bytes, 0, 8, desc, 3);
      return bytes;
    case "flipHeader":
      flipBytes(rng, bytes, 8, hEnd, desc);
      return bytes;
    case "setHeaderByte": {
      const k = 1 + rng.int(4);
      const set: string[] = [];
      for (let i = 0; i < k && hEnd > 8; i++) {
        const pos = 8 + rng.int(hEnd - 8);
        bytes[pos] = pick(rng, INTERESTING_BYTES);
        set.push(`${pos}=0x${bytes[pos].toString(16)}`);
      }
      desc.push(`set header bytes ${set.join(",")}`);
      return bytes;
    }
    case "truncate": {
      const at = pick(rng, [
        0,
        rng.int(8),
        8 + rng.int(Math.max(1, n)),
        8 + n,
        8 + n + rng.int(Math.max(1, bytes.length - 8 - n)),
        bytes.length - 1,
      ]);
      desc.push(`truncate to ${at} of ${bytes.length} bytes`);
      return bytes.slice(0, Math.min(at, bytes.length));
    }
    case "extend": {
      const k = pick(rng, [1, 7, 8, 1 + rng.int(64), 4096]);
      const out = new Uint8Array(bytes.length + k);
      out.set(bytes);
      const zero = rng.int(2) === 0;
      if (!zero) { for (let i = bytes.length; i < out.length; i++) out[i] = rng.int(256); }
      desc.push(`append ${k} ${zero ? "zero" : "random"} bytes`);
      return out;
    }
    case "lenField": {
      const size = bytes.length;
      const v = pick(rng, [
        0n,
        1n,
        2n,
        7n,
        BigInt(n - 1),
        BigInt(n + 1),
        BigInt(n + 8),
        BigInt(size - 8),
        BigInt(size - 7),
        2n ** 31n,
        2n ** 32n,
        2n ** 32n + BigInt(n),
        2n ** 53n,
        2n ** 53n + 1n,
        2n ** 63n,
        2n ** 64n - 1n,
        BigInt(MAX_HEADER_BYTES),
        BigInt(MAX_HEADER_BYTES) + 1n,
        BigInt(rng.nextU32()) << 32n | BigInt(rng.nextU32()),
      ]);
      new DataView(bytes.buffer).setBigUint64(0, v < 0n ? 0n : v, true);
      desc.push(`header length field = ${v}`);
      return bytes;
    }
    case "flipData":
      flipBytes(rng, bytes, hEnd, bytes.length, desc);
      return bytes;
    case "splice": {
      const a = 8 + rng.int(Math.max(1, hEnd - 8));
      const len = 1 + rng.int(64);
      const cut = rng.int(2) === 0;
      desc.push(`${cut ? "delete" : "duplicate"} ${len} header bytes at ${a}`);
      const piece = cut ? new Uint8Array(0) : bytes.slice(a, a + len);
      const rest = bytes.subarray(cut ? Math.min(a + len, bytes.length) : a);
      const out = new Uint8Array(a + piece.length + rest.length);
      out.set(bytes.subarray(0, a));
      out.set(piece, a);
      out.set(rest, a + piece.length);
      return out;
    }
  }
}

/** Opens `path` and reads every tensor, checking each lies inside the file. */
async function loadAllTensors(path: string, size: number): Promise<void> {
  using f = await SafetensorsFile.open(path);
  let total = 0;
  for (const name of f.names()) {
    const info = f.info(name);
    assert.ok(info.byteOffset + info.byteLength <= size, `${name} lies beyond the end of ${path}`);
    total += info.byteLength;
    const t = await f.read(name);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    assert.equal(
      t.data.length,
      numel,
      `${path}: ${name} read ${t.data.length} elements, shape needs ${numel}`,
    );
  }
  assert.ok(total <= size, `${path}: tensors total ${total} bytes, file is ${size}`);
}

// ---------------------------------------------------------------------------------------------------
// (b) model.safetensors.index.json
// ---------------------------------------------------------------------------------------------------

const SHARD1 = "model-00001-of-00002.safetensors";
const SHARD2 = "model-00002-of-00002.safetensors";

interface IndexBase {
  /** weight_map of the valid index. */
  weightMap: Record<string, string>;
  totalSize: number;
  shard1: Uint8Array;
  shard2: Uint8Array;
  full: Uint8Array;
}

async function buildIndexBase(): Promise<IndexBase> {
  using f = await SafetensorsFile.open(KERNEL_FIXTURE);
  const names = f.names();
  const a = new Map<string, HostTensor>();
  const b = new Map<string, HostTensor>();
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (const [i, name] of names.entries()) {
    const t = await f.read(name);
    (i % 2 === 0 ? a : b).set(name, t);
    weightMap[name] = i % 2 === 0 ? SHARD1 : SHARD2;
    totalSize += t.data.byteLength;
  }
  return {
    weightMap,
    totalSize,
    shard1: encodeSafetensors(a),
    shard2: encodeSafetensors(b),
    full: await Deno.readFile(KERNEL_FIXTURE),
  };
}

function shardValues(dir: string, outside: string): unknown[] {
  return [
    join(dir, SHARD1),
    join(Deno.realPathSync(dir), SHARD1),
    outside,
    "/etc/passwd",
    `../${dir.split("/").at(-1)}/${SHARD1}`,
    `sub/../${SHARD1}`,
    `./${SHARD1}`,
    `.//${SHARD1}`,
    "sub/shard.safetensors",
    "sub/",
    "etc/passwd",
    `etc/../${SHARD1}`,
    "link-in.safetensors",
    "outside.safetensors",
    "passwd.safetensors",
    "loop.safetensors",
    "dangling.safetensors",
    "dir.safetensors",
    "fifo.safetensors",
    "missing.safetensors",
    "config.json",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "C:\\Windows\\win.ini",
    "C:model.safetensors",
    "a\\..\\b",
    "\\\\server\\share\\x",
    "",
    " ",
    ".",
    "..",
    "/",
    "~/x",
    "file:///etc/passwd",
    "%2e%2e/x",
    `${SHARD1}/`,
    `${SHARD1}\u0000`,
    "\u0000",
    "x".repeat(300),
    "a/".repeat(3000) + "b",
    SHARD2,
    1,
    null,
    true,
    [],
    {},
    [SHARD1],
  ];
}

/** The index text (or bytes) for one case. */
function mutateIndex(
  rng: Rng,
  base: IndexBase,
  dir: string,
  outside: string,
  desc: string[],
): string | Uint8Array {
  const raw = new RawJson();
  const wm: Obj = { ...base.weightMap };
  const idx: Obj = { metadata: { total_size: base.totalSize }, weight_map: wm };
  const names = Object.keys(wm);
  const kind = weighted(rng, {
    value: 40,
    key: 10,
    weightMap: 8,
    metadata: 3,
    huge: 1,
    truncate: 8,
    damage: 6,
    root: 3,
  });
  switch (kind) {
    case "value": {
      const k = 1 + rng.int(3);
      for (let i = 0; i < k; i++) {
        const name = pick(rng, names);
        wm[name] = pick(rng, shardValues(dir, outside));
        desc.push(`weight_map[${short(name)}] = ${short(wm[name])}`);
      }
      break;
    }
    case "key": {
      const op = rng.int(4);
      const name = pick(rng, names);
      if (op === 0) {
        delete wm[name];
        desc.push(`delete weight_map entry ${short(name)}`);
      } else if (op === 1) {
        const to = pick(rng, [
          "",
          "__proto__",
          "constructor",
          "not.a.tensor",
          name.toUpperCase(),
          `${name} `,
        ]);
        wm[to] = wm[name];
        delete wm[name];
        desc.push(`rename weight_map key ${short(name)} to ${short(to)}`);
      } else if (op === 2) {
        wm[name] = wm[name] === SHARD1 ? SHARD2 : SHARD1;
        desc.push(`map ${short(name)} to the other shard`);
      } else {
        for (const n of names) wm[n] = "sub/shard.safetensors";
        desc.push("map every tensor to sub/shard.safetensors");
      }
      break;
    }
    case "weightMap": {
      const op = rng.int(3);
      if (op === 0) {
        delete idx.weight_map;
        desc.push("delete weight_map");
      } else if (op === 1) {
        idx.weight_map = garbage(rng, raw);
        desc.push(`weight_map = ${short(idx.weight_map)}`);
      } else {
        idx.weight_map = {};
        desc.push("weight_map = {}");
      }
      break;
    }
    case "metadata": {
      idx.metadata = garbage(rng, raw);
      desc.push(`metadata = ${short(idx.metadata)}`);
      break;
    }
    case "huge": {
      const n = 5_000 + rng.int(15_000);
      for (let i = 0; i < n; i++) wm[`model.layers.${i}.w`] = pick(rng, [SHARD1, SHARD2]);
      desc.push(`${n} extra weight_map entries for tensors the shards lack`);
      break;
    }
    case "truncate":
      return truncateText(rng, JSON.stringify(idx, null, 2), desc);
    case "damage":
      return damageText(rng, JSON.stringify(idx, null, 2), desc);
    case "root": {
      const t = pick(rng, [
        "[]",
        "null",
        "1",
        '"x"',
        "",
        deepArray(50_000),
        `{"weight_map":${deepObject(5000)}}`,
      ]);
      desc.push(`index text = ${short(t)}`);
      return t;
    }
  }
  return raw.stringify(idx, 2);
}

async function setupIndexSlot(slot: string, base: IndexBase, outside: string, hasFifo: boolean) {
  const dir = join(slot, "ckpt");
  await Deno.mkdir(join(dir, "sub"), { recursive: true });
  await Deno.mkdir(join(dir, "dir.safetensors"), { recursive: true });
  await Deno.copyFile(join(TINY, "config.json"), join(dir, "config.json"));
  await Deno.writeFile(join(dir, SHARD1), base.shard1);
  await Deno.writeFile(join(dir, SHARD2), base.shard2);
  await Deno.writeFile(join(dir, "sub/shard.safetensors"), base.full);
  await Deno.writeFile(join(dir, "pytorch_model.bin"), PICKLE_BYTES);
  await Deno.symlink(SHARD1, join(dir, "link-in.safetensors"));
  await Deno.symlink(outside, join(dir, "outside.safetensors"));
  await Deno.symlink("/etc", join(dir, "etc"));
  await Deno.symlink("/etc/passwd", join(dir, "passwd.safetensors"));
  await Deno.symlink("loop.safetensors", join(dir, "loop.safetensors"));
  await Deno.symlink("nope.safetensors", join(dir, "dangling.safetensors"));
  if (hasFifo) {
    const r = await new Deno.Command("mkfifo", { args: [join(dir, "fifo.safetensors")] }).output();
    assert.ok(r.success, "mkfifo failed");
  }
}

/** The opening bytes of a pickle (protocol 2, a GLOBAL opcode): never to be read. */
const PICKLE_BYTES = new Uint8Array([0x80, 0x02, 0x63, ...encoder.encode("os\nsystem\n"), 0x2e]);

async function loadCheckpointFully(dir: string): Promise<void> {
  using ckpt = await Checkpoint.open(dir);
  for (const name of ckpt.names()) {
    const info = ckpt.info(name);
    const t = await ckpt.read(name);
    assert.equal(t.data.byteLength, info.byteLength);
  }
}

// ---------------------------------------------------------------------------------------------------
// (c) config.json
// ---------------------------------------------------------------------------------------------------

/** A Llama-3.2-1B config.json as transformers 4 writes it (top-level rope_theta, llama3 rope_scaling). */
const LLAMA_32_1B = {
  architectures: ["LlamaForCausalLM"],
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_act: "silu",
  hidden_size: 2048,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
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
  vocab_size: 128256,
};

const REQUIRED = [
  "hidden_size",
  "num_attention_heads",
  "vocab_size",
  "intermediate_size",
  "num_hidden_layers",
  "rms_norm_eps",
];
const NUMERIC = [
  ...REQUIRED,
  "num_key_value_heads",
  "head_dim",
  "max_position_embeddings",
  "bos_token_id",
  "eos_token_id",
  "rope_theta",
];

function mutateConfig(rng: Rng, bases: Obj[], desc: string[]): string | Uint8Array {
  const raw = new RawJson();
  const bi = rng.int(bases.length);
  const cfg = structuredClone(bases[bi]) as Obj;
  desc.push(`base ${["tiny-llama", "brown-llama-6m", "llama-3.2-1b (v4)"][bi]}`);
  const keys = Object.keys(cfg);
  const steps = 1 + (rng.int(3) === 0 ? 1 : 0);
  for (let s = 0; s < steps; s++) {
    const kind = weighted(rng, {
      deleteKey: 8,
      retype: 14,
      numeric: 12,
      heads: 10,
      literal: 8,
      rope: 10,
      tokens: 4,
      nested: 4,
      truncate: 6,
      damage: 4,
      root: 2,
      hugeString: 1,
    });
    switch (kind) {
      case "deleteKey": {
        const k = rng.int(2) === 0 ? pick(rng, REQUIRED) : pick(rng, keys);
        delete cfg[k];
        desc.push(`delete ${k}`);
        break;
      }
      case "retype": {
        const k = rng.int(2) === 0 ? pick(rng, NUMERIC) : pick(rng, keys);
        cfg[k] = garbage(rng, raw);
        desc.push(`${k} = ${short(cfg[k])}`);
        break;
      }
      case "numeric": {
        const k = pick(rng, NUMERIC);
        cfg[k] = pick(rng, [
          0,
          -1,
          -4,
          -0,
          0.5,
          1e-300,
          1e300,
          2 ** 53,
          2 ** 53 + 2,
          2 ** 31,
          1e308,
          3,
          7,
          1,
        ]);
        desc.push(`${k} = ${cfg[k]}`);
        break;
      }
      case "heads": {
        const h = cfg.hidden_size as number;
        cfg.num_attention_heads = pick(rng, [-4, 0, 3, 5, 7, 64, h + 1, h * 2, 1e9, 2 ** 53]);
        if (rng.int(2) === 0) cfg.num_key_value_heads = pick(rng, [-2, 0, 3, 5, 1, 2, 16, 1e9]);
        if (rng.int(2) === 0) delete cfg.head_dim;
        desc.push(
          `heads ${cfg.num_attention_heads} kv ${cfg.num_key_value_heads} head_dim ${cfg.head_dim} hidden ${h}`,
        );
        break;
      }
      case "literal": {
        const k = pick(rng, NUMERIC);
        cfg[k] = raw.mark(pick(rng, ODD_LITERALS));
        desc.push(`${k} = ${short(cfg[k])}`);
        break;
      }
      case "rope": {
        const block = "rope_parameters" in cfg ? "rope_parameters" : "rope_scaling";
        const op = rng.int(5);
        if (op === 0) {
          cfg[block] = garbage(rng, raw);
          desc.push(`${block} = ${short(cfg[block])}`);
        } else if (op === 1) {
          cfg[block] = {
            rope_type: pick(rng, ["llama3", "linear", "yarn", "dynamic", "", 1, null, "default"]),
            rope_theta: pick(rng, [10000, -1, 0, "1e4"]),
          };
          desc.push(`${block} = ${short(cfg[block])}`);
        } else if (op === 2) {
          cfg[block] = {
            rope_type: "llama3",
            factor: pick(rng, [32, 0, -1, "8"]),
            low_freq_factor: pick(rng, [1, 4, 8, null]),
            high_freq_factor: pick(rng, [4, 1, 0.5]),
            original_max_position_embeddings: pick(rng, [8192, 0, 1.5, -1]),
          };
          desc.push(`${block} = ${short(cfg[block], 160)}`);
        } else if (op === 3) {
          cfg[block] = { type: pick(rng, ["linear", "default", "su"]), factor: pick(rng, [2, 0, null]) };
          desc.push(`${block} = ${short(cfg[block])}`);
        } else {
          cfg.rope_theta = garbage(rng, raw);
          desc.push(`rope_theta = ${short(cfg.rope_theta)}`);
        }
        break;
      }
      case "tokens": {
        const k = pick(rng, ["bos_token_id", "eos_token_id"]);
        cfg[k] = pick(rng, [[], [1, -1], "0", [0.5], [[0]], 1e20, [0, 1], -1, null]);
        desc.push(`${k} = ${short(cfg[k])}`);
        break;
      }
      case "nested": {
        const k = pick(rng, keys);
        cfg[k] = raw.mark(pick(rng, [deepArray(1 + rng.int(100_000)), deepObject(1 + rng.int(10_000))]));
        desc.push(`${k} = deeply nested garbage`);
        break;
      }
      case "truncate":
        return truncateText(rng, raw.stringify(cfg, 2), desc);
      case "damage":
        return damageText(rng, raw.stringify(cfg, 2), desc);
      case "root": {
        const t = pick(rng, ["[]", "null", "1", '"x"', "", "{", deepArray(1 + rng.int(100_000))]);
        desc.push(`config text = ${short(t)}`);
        return t;
      }
      case "hugeString": {
        const k = pick(rng, keys);
        cfg[k] = "x".repeat(1 + rng.int(1 << 18));
        desc.push(`${k} = a string of ${(cfg[k] as string).length} chars`);
        break;
      }
    }
  }
  return raw.stringify(cfg, 2);
}

/** What a successfully parsed config promises. */
function checkLoadedConfig(c: ReturnType<typeof parseLlamaConfig>, where: string): void {
  for (
    const [k, v] of Object.entries({
      vocabSize: c.vocabSize,
      hiddenSize: c.hiddenSize,
      intermediateSize: c.intermediateSize,
      numLayers: c.numLayers,
      numHeads: c.numHeads,
      numKvHeads: c.numKvHeads,
      headDim: c.headDim,
      maxPositionEmbeddings: c.maxPositionEmbeddings,
    })
  ) {
    assert.ok(Number.isSafeInteger(v) && v > 0, `${where}: loaded ${k} = ${v}`);
  }
  assert.equal(c.numHeads % c.numKvHeads, 0, `${where}: heads not a multiple of kv heads`);
  assert.ok(Number.isFinite(c.rmsNormEps) && c.rmsNormEps > 0, `${where}: rms_norm_eps ${c.rmsNormEps}`);
  assert.ok(Number.isFinite(c.rope.theta) && c.rope.theta > 0, `${where}: rope theta ${c.rope.theta}`);
}

// ---------------------------------------------------------------------------------------------------
// (d) tokenizer.json / tokenizer_config.json
// ---------------------------------------------------------------------------------------------------

interface TokBase {
  text: string;
  cfgText: string;
}

const TOK_COMPONENTS: unknown[] = [
  null,
  {},
  { type: "X" },
  { type: 1 },
  [],
  "x",
  { type: "Sequence" },
  { type: "Sequence", pretokenizers: null, normalizers: null, decoders: null, processors: null },
  { type: "Sequence", pretokenizers: [{ type: "X" }], normalizers: [1], decoders: [null] },
  { type: "Split", pattern: { Regex: "(" }, behavior: "Isolated" },
  { type: "Split", pattern: { String: 1 }, behavior: "Nope" },
  { type: "Split", pattern: null },
  { type: "Replace", pattern: { String: "a" }, content: 1 },
  { type: "Replace", pattern: { Regex: "[" }, content: "b" },
  { type: "Precompiled", precompiled_charsmap: "!!!not base64" },
  { type: "Precompiled", precompiled_charsmap: null },
  { type: "TemplateProcessing", single: null, pair: null, special_tokens: null },
  { type: "TemplateProcessing", single: [{ SpecialToken: { id: "<x>", type_id: 0 } }], special_tokens: {} },
  { type: "ByteLevel", add_prefix_space: "yes", use_regex: 1 },
  { type: "Metaspace", replacement: null },
  { type: "Metaspace", replacement: "" },
  { type: "Strip", content: null, start: -1 },
  { type: "Prepend", prepend: 1 },
  { type: "BertProcessing", sep: null, cls: 1 },
  { type: "RobertaProcessing", sep: ["</s>"], cls: [] },
  { type: "WordPiece", prefix: null },
  { type: "Fuse" },
  { type: "Digits", individual_digits: "x" },
  { type: "Punctuation", behavior: 1 },
  { type: "FixedLength", length: -1 },
];

const TOK_IDS: unknown[] = [
  -1,
  1.5,
  "7",
  4095,
  0,
  4096,
  1e9,
  2 ** 32 - 2,
  2 ** 32,
  2 ** 53,
  1e300,
  null,
  [],
  {},
];

function mutateTokenizerJson(rng: Rng, base: TokBase, desc: string[]): string | Uint8Array {
  const raw = new RawJson();
  const kind = weighted(rng, {
    truncate: 10,
    damage: 6,
    modelType: 6,
    model: 3,
    vocab: 14,
    merges: 12,
    addedTokens: 10,
    components: 14,
    deleteKey: 5,
    root: 2,
  });
  if (kind === "truncate") return truncateText(rng, base.text, desc);
  if (kind === "damage") return damageText(rng, base.text, desc);
  if (kind === "root") {
    const t = pick(rng, ["[]", "null", "1", '"x"', "{}", deepArray(1 + rng.int(100_000))]);
    desc.push(`tokenizer.json text = ${short(t)}`);
    return t;
  }
  const t = JSON.parse(base.text) as Obj;
  const model = t.model as Obj;
  const vocab = model.vocab as Record<string, unknown>;
  const merges = model.merges as unknown[];
  switch (kind) {
    case "modelType":
      model.type = pick(rng, ["BPE", "WordPiece", "Unigram", "WordLevel", "", "bpe", 1, null, [], {}]);
      desc.push(`model.type = ${short(model.type)}`);
      break;
    case "model":
      t.model = garbage(rng, raw);
      desc.push(`model = ${short(t.model)}`);
      break;
    case "vocab": {
      const op = rng.int(4);
      const tokens = Object.keys(vocab);
      if (op === 0) {
        model.vocab = rng.int(3) === 0 ? [["a", 0.5], ["b", "x"], [1, 2]] : garbage(rng, raw);
        desc.push(`model.vocab = ${short(model.vocab)}`);
      } else if (op === 1) {
        const k = 1 + rng.int(4);
        for (let i = 0; i < k; i++) {
          const tok = pick(rng, tokens);
          vocab[tok] = pick(rng, TOK_IDS);
          desc.push(`vocab[${short(tok)}] = ${short(vocab[tok])}`);
        }
      } else if (op === 2) {
        const k = 1 + rng.int(400);
        for (let i = 0; i < k; i++) delete vocab[pick(rng, tokens)];
        desc.push(`delete up to ${k} vocab entries`);
      } else {
        vocab[pick(rng, ["", "__proto__", "new", "\u0000"])] = pick(rng, TOK_IDS);
        desc.push("add a vocab entry");
      }
      break;
    }
    case "merges": {
      const op = rng.int(4);
      if (op === 0) {
        model.merges = garbage(rng, raw);
        desc.push(`model.merges = ${short(model.merges)}`);
      } else if (op === 1) {
        const k = 1 + rng.int(4);
        for (let i = 0; i < k; i++) {
          const j = rng.int(merges.length);
          merges[j] = pick(rng, [null, 1, "a", "a b c", "", " ", ["a"], ["a", "b", "c"], [1, 2], [], {}, [
            "Ġ",
            "t",
          ]]);
          desc.push(`merges[${j}] = ${short(merges[j])}`);
        }
      } else if (op === 2) {
        model.merges = merges.slice(0, rng.int(merges.length));
        desc.push(`keep the first ${(model.merges as unknown[]).length} merges`);
      } else {
        model.merges = merges.map((m) => (m as string[]).join(" "));
        if (rng.int(2) === 0) (model.merges as unknown[])[0] = 7;
        desc.push(
          `merges in the old "a b" string form${(model.merges as unknown[])[0] === 7 ? ", first = 7" : ""}`,
        );
      }
      break;
    }
    case "addedTokens": {
      const op = rng.int(4);
      const list = t.added_tokens as Obj[];
      if (op === 0) {
        t.added_tokens = garbage(rng, raw);
        desc.push(`added_tokens = ${short(t.added_tokens)}`);
      } else if (op === 1) {
        const field = pick(rng, ["id", "content", "special", "normalized", "lstrip", "single_word"]);
        list[0][field] = field === "id" ? pick(rng, TOK_IDS) : garbage(rng, raw);
        desc.push(`added_tokens[0].${field} = ${short(list[0][field])}`);
      } else if (op === 2) {
        list.push({ id: pick(rng, TOK_IDS), content: pick(rng, ["<x>", "", 1, null, "a"]), special: true });
        desc.push(`add an added token ${short(list.at(-1))}`);
      } else {
        t.added_tokens = [pick(rng, [{}, null, 1, "x", []])];
        desc.push(`added_tokens = ${short(t.added_tokens)}`);
      }
      break;
    }
    case "components": {
      const k = pick(rng, ["normalizer", "pre_tokenizer", "post_processor", "decoder"]);
      t[k] = pick(rng, TOK_COMPONENTS);
      desc.push(`${k} = ${short(t[k], 120)}`);
      break;
    }
    case "deleteKey": {
      const k = pick(rng, [
        "model",
        "decoder",
        "post_processor",
        "pre_tokenizer",
        "normalizer",
        "added_tokens",
      ]);
      delete t[k];
      desc.push(`delete ${k}`);
      break;
    }
  }
  return raw.stringify(t);
}

function mutateTokenizerConfig(rng: Rng, base: TokBase, desc: string[]): string | Uint8Array | null {
  const raw = new RawJson();
  const kind = weighted(rng, {
    truncate: 4,
    damage: 2,
    root: 2,
    special: 6,
    template: 4,
    flags: 6,
    delete: 1,
  });
  if (kind === "truncate") return truncateText(rng, base.cfgText, desc);
  if (kind === "damage") return damageText(rng, base.cfgText, desc);
  if (kind === "delete") {
    desc.push("no tokenizer_config.json");
    return null;
  }
  if (kind === "root") {
    const t = pick(rng, ["[]", "null", "1", '"x"', ""]);
    desc.push(`tokenizer_config.json text = ${short(t)}`);
    return t;
  }
  const c = JSON.parse(base.cfgText) as Obj;
  if (kind === "special") {
    const k = pick(rng, ["bos_token", "eos_token", "unk_token", "pad_token"]);
    c[k] = pick(rng, [1, null, [], {}, { content: 1 }, { content: "<|endoftext|>" }, "not-a-token", "", "a"]);
    desc.push(`${k} = ${short(c[k])}`);
  } else if (kind === "template") {
    c.chat_template = pick(rng, [
      1,
      [],
      [{}],
      [{ name: 1, template: 2 }],
      { default: 1 },
      { a: "x" },
      "{{",
      true,
    ]);
    desc.push(`chat_template = ${short(c.chat_template)}`);
  } else {
    const k = pick(rng, [
      "additional_special_tokens",
      "remove_space",
      "clean_up_tokenization_spaces",
      "do_lowercase_and_remove_accent",
      "model_max_length",
      "added_tokens_decoder",
    ]);
    c[k] = rng.int(3) === 0 ? pick(rng, ["abc", [1, null], ["<x>"], { a: 1 }]) : garbage(rng, raw);
    desc.push(`${k} = ${short(c[k])}`);
  }
  return raw.stringify(c, 2);
}

// ---------------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------------

Deno.test("fuzz: seeded mutations of safetensors, shard index, config.json, tokenizer and JSONL data files", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "io_fuzz_" });
  const restore = instrumentReads();
  const t0 = performance.now();
  let total = 0;
  try {
    // warm up (module loading, the tokenizer library) before taking the RSS baseline
    await loadTokenizer(TINY);
    await loadAllTensors(KERNEL_FIXTURE, (await Deno.stat(KERNEL_FIXTURE)).size);
    rssBase = rssPeak = Deno.memoryUsage().rss;

    const hasFifo = (await new Deno.Command("mkfifo", { args: ["--version"] }).output().catch(() => null))
      ?.success ?? false;

    const finish = (family: string, st: FamilyStats) => {
      total += st.cases;
      console.log(report(family, st));
      assert.deepEqual(st.failures, [], `${st.failures.length} failing cases; first:\n${st.failures[0]}`);
    };

    await t.step(
      "(a) safetensors: byte flips, truncation, length field, JSON-aware header edits",
      async () => {
        const bases = [
          splitSafetensors("selective-scan", await Deno.readFile(KERNEL_FIXTURE)),
          splitSafetensors("header-heavy", buildHeaderHeavy()),
        ];
        const st = await runFamily(
          "safetensors",
          COUNTS.safetensors,
          root,
          async () => {},
          async (rng, slot, desc) => {
            const bytes = mutateSafetensors(rng, pick(rng, bases), desc);
            const path = join(slot, "case.safetensors");
            await Deno.writeFile(path, bytes);
            return { desc, names: [path], run: () => loadAllTensors(path, bytes.length) };
          },
        );
        finish("safetensors", st);
      },
    );

    await t.step("(b) model.safetensors.index.json: paths, symlinks, types, sizes", async () => {
      const base = await buildIndexBase();
      const outsideDir = join(root, "outside");
      await Deno.mkdir(outsideDir, { recursive: true });
      const outside = join(outsideDir, "model.safetensors");
      await Deno.writeFile(outside, base.full);
      const st = await runFamily(
        "index",
        COUNTS.index,
        root,
        (slot) => setupIndexSlot(slot, base, outside, hasFifo),
        async (rng, slot, desc) => {
          const dir = join(slot, "ckpt");
          const path = join(dir, "model.safetensors.index.json");
          if (rng.int(200) === 0) {
            desc.push("index.json is a 65 MB (sparse) file");
            await makeHuge(path, "{", 65 * 1024 * 1024);
          } else {
            const out = mutateIndex(rng, base, dir, outside, desc);
            await Deno.writeFile(path, typeof out === "string" ? encoder.encode(out) : out);
          }
          return { desc, names: [dir], run: () => loadCheckpointFully(dir) };
        },
      );
      finish("index", st);
    });

    await t.step(
      "(c) config.json: deleted/retyped keys, odd numbers, heads, rope, damaged text",
      async () => {
        const bases = [
          JSON.parse(await Deno.readTextFile(join(TINY, "config.json"))) as Obj,
          JSON.parse(await Deno.readTextFile(join(BROWN, "config.json"))) as Obj,
          LLAMA_32_1B,
        ];
        const small = encodeSafetensors({
          "model.norm.weight": { dtype: "F32", shape: [4], data: new Float32Array(4) },
        });
        const st = await runFamily("config", COUNTS.config, root, async (slot) => {
          await Deno.mkdir(join(slot, "ckpt"));
          await Deno.writeFile(join(slot, "ckpt", "model.safetensors"), small);
        }, async (rng, slot, desc) => {
          const dir = join(slot, "ckpt");
          const path = join(dir, "config.json");
          if (rng.int(200) === 0) {
            desc.push("config.json is a 17 MB (sparse) file");
            await makeHuge(path, "{", 17 * 1024 * 1024);
          } else {
            const out = mutateConfig(rng, bases, desc);
            await Deno.writeFile(path, typeof out === "string" ? encoder.encode(out) : out);
          }
          if (rng.int(4) === 0) {
            desc.push("through Checkpoint.open");
            return {
              desc,
              names: [path],
              run: async () => {
                using ckpt = await Checkpoint.open(dir);
                checkLoadedConfig(ckpt.config, path);
              },
            };
          }
          return {
            desc,
            names: [path],
            run: async () => checkLoadedConfig(parseLlamaConfig(await readJsonFile(path), path), path),
          };
        });
        finish("config", st);
      },
    );

    await t.step(
      "(d) tokenizer.json / tokenizer_config.json: truncation, retyped fields, bad model",
      async () => {
        const base: TokBase = {
          text: await Deno.readTextFile(join(TINY, "tokenizer.json")),
          cfgText: await Deno.readTextFile(join(TINY, "tokenizer_config.json")),
        };
        const st = await runFamily(
          "tokenizer",
          COUNTS.tokenizer,
          root,
          async () => {},
          async (rng, slot, desc) => {
            const tokPath = join(slot, "tokenizer.json");
            const cfgPath = join(slot, "tokenizer_config.json");
            const which = rng.int(10);
            const names: string[] = [];
            let tok: string | Uint8Array = base.text;
            let cfg: string | Uint8Array | null = base.cfgText;
            if (which < 6 || which === 9) {
              tok = mutateTokenizerJson(rng, base, desc);
              names.push(tokPath);
            }
            if (which >= 6) {
              cfg = mutateTokenizerConfig(rng, base, desc);
              names.push(cfgPath);
            }
            await Deno.writeFile(tokPath, typeof tok === "string" ? encoder.encode(tok) : tok);
            if (cfg === null) await Deno.remove(cfgPath).catch(() => {});
            else await Deno.writeFile(cfgPath, typeof cfg === "string" ? encoder.encode(cfg) : cfg);
            return {
              desc,
              names,
              run: async () => {
                const tk = await loadTokenizer(slot);
                const ids = tk.encode("The jury said 42 times — ok.");
                if (ids.length > 0) tk.decode(ids);
                assert.ok(
                  Number.isSafeInteger(tk.vocabSize) && tk.vocabSize >= 0,
                  `vocabSize ${tk.vocabSize}`,
                );
              },
            };
          },
        );
        finish("tokenizer", st);
      },
    );

    await t.step(
      "(e) JSONL data: training texts and DPO preference pairs (lines, fields, bytes)",
      async () => {
        const tok: TextTokenizer = await loadTokenizer(TINY);
        const texts = ["The jury said it was fair.", "It was late .", "\u00e9t\u00e9 — ok", "42"];
        const st = await runFamily(
          "jsonl",
          COUNTS.jsonl,
          root,
          async () => {},
          async (rng, slot, desc) => {
            const prefs = rng.int(2) === 1;
            const raw = new RawJson();
            const n = 1 + rng.int(6);
            const rows: Record<string, unknown>[] = Array.from(
              { length: n },
              () =>
                prefs
                  ? { prompt: pick(rng, texts), chosen: pick(rng, texts), rejected: pick(rng, texts) }
                  : { text: pick(rng, texts) },
            );
            const kind = rng.int(6);
            let lines = rows.map((r) => JSON.stringify(r));
            if (kind === 0) {
              const i = rng.int(n);
              const key = pick(rng, prefs ? ["prompt", "chosen", "rejected", "extra"] : ["text", "extra"]);
              rows[i][key] = garbage(rng, raw);
              desc.push(`line ${i + 1}: ${key} = ${short(rows[i][key])}`);
              lines = rows.map((r) => raw.stringify(r));
            } else if (kind === 1) {
              const i = rng.int(n);
              const key = Object.keys(rows[i])[rng.int(Object.keys(rows[i]).length)];
              delete rows[i][key];
              desc.push(`line ${i + 1}: drop ${key}`);
              lines = rows.map((r) => JSON.stringify(r));
            } else if (kind === 2) {
              const i = rng.int(n);
              lines[i] = pick(rng, [
                ...ODD_LITERALS,
                "[]",
                "[1]",
                "null",
                '"text"',
                "{",
                "}",
                deepArray(1 + rng.int(3000)),
              ]);
              desc.push(`line ${i + 1} = ${short(lines[i])}`);
            } else if (kind === 3) {
              desc.push("blank lines and CRLF");
              lines = lines.flatMap((l) => [l + "\r", ""]);
            }
            let text = lines.join("\n");
            if (kind === 4) text = truncateText(rng, text, desc);
            const bytes = kind === 5 ? damageText(rng, text, desc) : encoder.encode(text);
            const path = join(slot, "data.jsonl");
            await Deno.writeFile(path, bytes);
            return {
              desc,
              names: [path],
              run: async () => {
                if (prefs) {
                  const pairs = await loadPreferenceData(path, tok);
                  assert.ok(
                    pairs.length > 0 && pairs.every((p) => p.chosen.length > 0 && p.rejected.length > 0),
                  );
                } else {
                  const ids = await loadTextData(path, tok, 0);
                  assert.ok(ids.length > 0 && ids.every((id) => id >= 0 && id < tok.vocabSize));
                }
              },
            };
          },
        );
        finish("jsonl", st);
      },
    );
  } finally {
    restore();
    await Deno.remove(root, { recursive: true });
  }
  const secs = (performance.now() - t0) / 1000;
  const growth = rssPeak - rssBase;
  const all = new Map<string, number>();
  for (const st of stats.values()) for (const [k, v] of st.outcomes) bump(all, k, v);
  console.log(
    `fuzz total: ${total} cases in ${secs.toFixed(1)} s (seed base ${BASE_SEED}): ` +
      [...all].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ") +
      `; peak RSS growth ${(growth / 2 ** 20).toFixed(1)} MB`,
  );
  assert.deepEqual(readViolations, [], "a reader asked for more bytes than the file holds");
  for (const [family, st] of stats) {
    const g = st.rssPeak - st.rssStart;
    assert.ok(
      g < RSS_LIMIT_FAMILY,
      `RSS grew by ${(g / 2 ** 20).toFixed(1)} MB while the ${family} cases ran`,
    );
  }
  assert.ok(growth < RSS_LIMIT_RUN, `RSS grew by ${(growth / 2 ** 20).toFixed(1)} MB during the run`);
  if (REPLAY === null && ONLY === null) assert.ok(total >= 10_000 * SCALE, `only ${total} cases ran`);
});

Deno.test("odd filesystem objects where the loaders expect files: directories, FIFOs, loops, devices", async () => {
  const root = await Deno.makeTempDir({ prefix: "io_fuzz_fs_" });
  const hasFifo = (await new Deno.Command("mkfifo", { args: ["--version"] }).output().catch(() => null))
    ?.success ?? false;
  const results: string[] = [];
  try {
    const kinds: Record<string, (path: string) => Promise<void>> = {
      "a directory": (p) => Deno.mkdir(p),
      "a symlink loop": (p) => Deno.symlink(p, p),
      "a dangling symlink": (p) => Deno.symlink(`${p}.nowhere`, p),
      "a symlink to /dev/zero": (p) => Deno.symlink("/dev/zero", p),
      "an empty file": (p) => Deno.writeFile(p, new Uint8Array(0)),
      ...(hasFifo
        ? {
          "a FIFO": async (p: string) => {
            assert.ok((await new Deno.Command("mkfifo", { args: [p] }).output()).success);
          },
        }
        : {}),
    };
    const targets: [string, "checkpoint" | "tokenizer"][] = [
      ["config.json", "checkpoint"],
      ["model.safetensors", "checkpoint"],
      ["model.safetensors.index.json", "checkpoint"],
      ["tokenizer.json", "tokenizer"],
      ["tokenizer_config.json", "tokenizer"],
      ["chat_template.jinja", "tokenizer"],
    ];
    let n = 0;
    for (const [target, loader] of targets) {
      for (const [kind, make] of Object.entries(kinds)) {
        const dir = join(root, `case-${n++}`);
        await Deno.mkdir(dir);
        for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"]) {
          if (f !== target) await Deno.copyFile(join(TINY, f), join(dir, f));
        }
        if (target !== "model.safetensors" && target !== "model.safetensors.index.json") {
          await Deno.copyFile(KERNEL_FIXTURE, join(dir, "model.safetensors"));
        }
        await make(join(dir, target));
        const run = loader === "checkpoint"
          ? () => Checkpoint.open(dir).then((c) => c.close())
          : async () => void await loadTokenizer(dir);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<"timeout">((
          res,
        ) => (timer = setTimeout(() => res("timeout"), CASE_BUDGET_MS)));
        let outcome: string;
        try {
          const r = await Promise.race([run().then(() => "loaded"), timeout]);
          outcome = r === "timeout" ? "HANG" : r;
        } catch (e) {
          outcome = e instanceof LabError && e.message.startsWith(dir)
            ? e.name
            : `BAD ${(e as Error)?.stack ?? e}`;
        } finally {
          clearTimeout(timer);
        }
        results.push(`${target} as ${kind}: ${outcome}`);
      }
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  console.log(results.join("\n"));
  const bad = results.filter((r) => /: (HANG|BAD)/.test(r));
  assert.deepEqual(bad, [], "every case must load or fail with a LabError naming the checkpoint directory");
});
