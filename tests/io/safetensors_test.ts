import assert from "node:assert/strict";
import { join } from "node:path";
import { SafetensorsError } from "../../lib/errors.ts";
import {
  bf16ToF32,
  type Dtype,
  encodeSafetensors,
  f16ToF32,
  f32ToBf16,
  type HostTensor,
  SafetensorsFile,
  writeSafetensors,
} from "../../lib/io/safetensors.ts";

const TINY = "tests/fixtures/tiny-llama/model.safetensors";
const BROWN = "data/brown-llama-6m/model.safetensors";

/** Asserts that `fn` rejects with `cls` and a message naming `path` (and matching `re`). */
async function rejects(
  fn: () => Promise<unknown>,
  cls: typeof SafetensorsError,
  path: string,
  re: RegExp,
): Promise<void> {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert.ok(e.message.startsWith(path), `message should name ${path}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

/** Builds a safetensors file from a raw header (object or text) and `dataLength` zero bytes. */
function rawFile(header: unknown, dataLength: number, declaredLength?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredLength ?? json.length), true);
  out.set(json, 8);
  return out;
}

/** A temporary directory removed at the end of the test (`await using tmp = await tempDir()`). */
async function tempDir() {
  const dir = await Deno.makeTempDir({ prefix: "io_st_" });
  let count = 0;
  return {
    dir,
    /** Writes `bytes` to a fresh `model<N>.safetensors` and returns its path. */
    async file(bytes: Uint8Array): Promise<string> {
      const path = join(dir, `model${count++}.safetensors`);
      await Deno.writeFile(path, bytes);
      return path;
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("tiny-llama model.norm.weight reads as F32 [64] with finite values", async () => {
  using f = await SafetensorsFile.open(TINY);
  assert.deepEqual(f.metadata, { format: "pt" });
  assert.equal(f.names().length, 21);
  assert.ok(f.has("model.norm.weight"));
  const info = f.info("model.norm.weight");
  assert.equal(info.dtype, "F32");
  assert.deepEqual(info.shape, [64]);
  assert.equal(info.byteLength, 256);
  const t = await f.read("model.norm.weight");
  assert.ok(t.data instanceof Float32Array);
  assert.equal(t.data.length, 64);
  assert.ok(Array.from(t.data as Float32Array).every(Number.isFinite));
  const f32 = await f.readF32("model.norm.weight");
  assert.deepEqual(Array.from(f32), Array.from(t.data as Float32Array));
  assert.equal((await f.readBytes("model.norm.weight")).length, 256);
});

Deno.test("brown-llama bf16 weights widen to finite floats", async () => {
  using f = await SafetensorsFile.open(BROWN);
  assert.equal(f.names().length, 57);
  const emb = f.info("model.embed_tokens.weight");
  assert.equal(emb.dtype, "BF16");
  assert.deepEqual(emb.shape, [4096, 256]);
  const raw = await f.read("model.layers.0.self_attn.k_proj.weight");
  assert.ok(raw.data instanceof Uint16Array);
  assert.deepEqual(raw.shape, [128, 256]);
  const w = await f.readF32("model.layers.0.self_attn.k_proj.weight");
  assert.equal(w.length, 128 * 256);
  assert.ok(w.every(Number.isFinite));
  assert.ok(w.some((x) => x !== 0));
  assert.deepEqual(w, bf16ToF32(raw.data as Uint16Array));
  const norm = await f.readF32("model.norm.weight");
  assert.ok(norm.every((x) => Number.isFinite(x) && x !== 0));
});

Deno.test("kernel fixtures expose __metadata__ and concurrent reads stay correct", async () => {
  using f = await SafetensorsFile.open("tests/fixtures/kernels/ssd.safetensors");
  assert.equal(f.metadata.block_len, "16");
  const names = f.names();
  const one = [];
  for (const n of names) one.push(await f.readBytes(n));
  const all = await Promise.all(names.map((n) => f.readBytes(n)));
  assert.deepEqual(all, one);
});

Deno.test("re-encoding the fixtures reproduces the Rust writer's bytes", async () => {
  for (
    const p of [
      TINY,
      "tests/fixtures/kernels/selective-scan.safetensors",
      "tests/fixtures/brown-val-ids.safetensors",
    ]
  ) {
    using f = await SafetensorsFile.open(p);
    const tensors = new Map<string, HostTensor>();
    for (const n of f.names()) tensors.set(n, await f.read(n));
    const bytes = encodeSafetensors(tensors, f.metadata);
    assert.deepEqual(bytes, await Deno.readFile(p), p);
  }
});

const ALL: Record<Dtype, HostTensor> = {
  F64: { dtype: "F64", shape: [2, 2], data: new Float64Array([1.5, -2, 1e300, Math.PI]) },
  F32: { dtype: "F32", shape: [3], data: new Float32Array([0.25, -1, 3e38]) },
  F16: { dtype: "F16", shape: [2], data: new Uint16Array([0x3c00, 0xc000]) },
  BF16: { dtype: "BF16", shape: [1, 3], data: new Uint16Array([0x3f80, 0x4049, 0xff80]) },
  I64: { dtype: "I64", shape: [2], data: new BigInt64Array([-(2n ** 62n), 7n]) },
  I32: { dtype: "I32", shape: [3], data: new Int32Array([-5, 0, 2 ** 31 - 1]) },
  I16: { dtype: "I16", shape: [1], data: new Int16Array([-300]) },
  I8: { dtype: "I8", shape: [2], data: new Int8Array([-128, 127]) },
  U64: { dtype: "U64", shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) },
  U32: { dtype: "U32", shape: [2], data: new Uint32Array([0, 2 ** 32 - 1]) },
  U16: { dtype: "U16", shape: [1, 1], data: new Uint16Array([65535]) },
  U8: { dtype: "U8", shape: [4], data: new Uint8Array([0, 1, 254, 255]) },
  BOOL: { dtype: "BOOL", shape: [3], data: new Uint8Array([1, 0, 1]) },
};

Deno.test("write → read round trip of every dtype with __metadata__, 8-byte aligned header", async () => {
  await using tmp = await tempDir();
  const dir = tmp.dir;
  const path = join(dir, "all.safetensors");
  const tensors: Record<string, HostTensor> = {};
  for (const [d, t] of Object.entries(ALL)) tensors[`t_${d.toLowerCase()}`] = t;
  tensors["scalar"] = { dtype: "F32", shape: [], data: new Float32Array([42]) };
  tensors["empty"] = { dtype: "I32", shape: [0, 5], data: new Int32Array(0) };
  const meta = { format: "pt", note: "ünïcode ✓" };
  await writeSafetensors(path, tensors, meta);

  const bytes = await Deno.readFile(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert.match(headerText, /^\{"__metadata__":/);
  assert.match(headerText, /\}\s*$/);

  using f = await SafetensorsFile.open(path);
  assert.deepEqual(f.metadata, meta);
  assert.equal(f.names().length, Object.keys(tensors).length);
  for (const [name, t] of Object.entries(tensors)) {
    const got = await f.read(name);
    assert.equal(got.dtype, t.dtype, name);
    assert.deepEqual(got.shape, t.shape, name);
    assert.equal(got.data.constructor, t.data.constructor, name);
    assert.deepEqual(
      Array.from(got.data as ArrayLike<unknown>),
      Array.from(t.data as ArrayLike<unknown>),
      name,
    );
  }
  // Rust order: descending dtype (U64, I64, F64, F32, ...), then name.
  assert.deepEqual(f.names().slice(0, 4), ["t_u64", "t_i64", "t_f64", "scalar"]);
  assert.deepEqual(f.names().slice(-3), ["t_i8", "t_u8", "t_bool"]);

  assert.deepEqual(Array.from(await f.readF32("t_f16")), [1, -2]);
  assert.deepEqual(Array.from(await f.readF32("t_bf16")), [1, 3.140625, -Infinity]);
  assert.deepEqual(Array.from(await f.readF32("t_i64")), [-(2 ** 62), 7]);
  assert.deepEqual(Array.from(await f.readF32("t_bool")), [1, 0, 1]);
  assert.deepEqual(Array.from(await f.readF32("t_f64")), [1.5, -2, Infinity, Math.fround(Math.PI)]);
  assert.deepEqual(Array.from(await f.readF32("scalar")), [42]);
});

Deno.test("atomic write leaves no temporary file and replaces an existing file", async () => {
  await using tmp = await tempDir();
  const dir = tmp.dir;
  const path = join(dir, "w.safetensors");
  await Deno.writeTextFile(path, "old contents");
  await writeSafetensors(path, { x: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
  const entries = [];
  for await (const e of Deno.readDir(dir)) entries.push(e.name);
  assert.deepEqual(entries, ["w.safetensors"]);
  using f = await SafetensorsFile.open(path);
  assert.deepEqual(Array.from(await f.readF32("x")), [1, 2]);
});

Deno.test("a failed write leaves no temporary file and no target", async () => {
  await using tmp = await tempDir();
  const dir = tmp.dir;
  const path = join(dir, "bad.safetensors");
  await assert.rejects(
    () => writeSafetensors(path, { x: { dtype: "F32", shape: [3], data: new Float32Array(2) } }),
    (e: unknown) =>
      e instanceof SafetensorsError && /bad\.safetensors: tensor "x": data has 2 elements/.test(e.message),
  );
  assert.throws(
    () => encodeSafetensors({ x: { dtype: "BF16", shape: [1], data: new Float32Array(1) } }),
    (e: unknown) => e instanceof SafetensorsError && /BF16 data must be a Uint16Array/.test(e.message),
  );
  const entries = [];
  for await (const e of Deno.readDir(dir)) entries.push(e.name);
  assert.deepEqual(entries, []);
});

Deno.test("bf16/f16 conversions: exact widening and round-to-nearest-even", () => {
  assert.deepEqual(Array.from(bf16ToF32(new Uint16Array([0x3f80, 0xc000, 0x0000, 0x7f80]))), [
    1,
    -2,
    0,
    Infinity,
  ]);
  const h = f16ToF32(new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x8000]));
  assert.deepEqual(Array.from(h.subarray(0, 6)), [1, -2, 2 ** -24, 65504, Infinity, -Infinity]);
  assert.ok(Number.isNaN(h[6]));
  assert.ok(Object.is(h[7], -0));
  const u = new Uint32Array([
    0x3f808000,
    0x3f818000,
    0x3f808001,
    0x3f807fff,
    0x7f7fffff,
    0x7fc00001,
    0xffa00000,
  ]);
  const b = f32ToBf16(new Float32Array(u.buffer));
  // ties go to even (0x3f80 stays, 0x3f81 → 0x3f82); max float rounds to inf; NaNs stay NaN.
  assert.deepEqual(Array.from(b), [0x3f80, 0x3f82, 0x3f81, 0x3f80, 0x7f80, 0x7fc0, 0xffe0]);
  const x = new Float32Array([1, -3.5, 0.15625, 65280]);
  assert.deepEqual(bf16ToF32(f32ToBf16(x)), x);
});

Deno.test("error: truncated file", async () => {
  await using tmp = await tempDir();
  const full = encodeSafetensors({ a: { dtype: "F32", shape: [4], data: new Float32Array(4) } });
  const path = await tmp.file(full.subarray(0, full.length - 3));
  await rejects(
    () => SafetensorsFile.open(path),
    SafetensorsError,
    path,
    /data section is 13 bytes, header needs 16/,
  );
  const tiny = await tmp.file(new Uint8Array([1, 2, 3]));
  await rejects(() => SafetensorsFile.open(tiny), SafetensorsError, tiny, /3 bytes, shorter than the 8-byte/);
});

Deno.test("error: empty file", async () => {
  await using tmp = await tempDir();
  const path = await tmp.file(new Uint8Array(0));
  await rejects(() => SafetensorsFile.open(path), SafetensorsError, path, /file is empty/);
});

Deno.test("error: header length beyond the file", async () => {
  await using tmp = await tempDir();
  const path = await tmp.file(rawFile({}, 0, 4096));
  await rejects(() => SafetensorsFile.open(path), SafetensorsError, path, /header length 4096 goes beyond/);
  const huge = await tmp.file(rawFile({}, 0, 100_000_001));
  await rejects(() => SafetensorsFile.open(huge), SafetensorsError, huge, /exceeds the 100000000-byte limit/);
});

Deno.test("error: header not JSON", async () => {
  await using tmp = await tempDir();
  const path = await tmp.file(rawFile('{"a": {"dtype": "F32",', 0));
  await rejects(() => SafetensorsFile.open(path), SafetensorsError, path, /header is not valid JSON/);
  const arr = await tmp.file(rawFile("[1, 2]  ", 0));
  await rejects(() => SafetensorsFile.open(arr), SafetensorsError, arr, /header is not a JSON object/);
  const bin = await tmp.file(rawFile("\xff\xfe", 0).map((b, i) => (i >= 8 ? 0xff : b)));
  await rejects(() => SafetensorsFile.open(bin), SafetensorsError, bin, /not valid UTF-8/);
});

Deno.test("error: offsets out of range", async () => {
  await using tmp = await tempDir();
  const path = await tmp.file(rawFile({ w: { dtype: "F32", shape: [100], data_offsets: [0, 400] } }, 8));
  await rejects(
    () => SafetensorsFile.open(path),
    SafetensorsError,
    path,
    /data section is 8 bytes, header needs 400 \(tensor "w" data_offsets \[0, 400\]\)/,
  );
  const back = await tmp.file(rawFile({ w: { dtype: "U8", shape: [0], data_offsets: [4, 0] } }, 4));
  await rejects(
    () => SafetensorsFile.open(back),
    SafetensorsError,
    back,
    /tensor "w": data_offsets \[4, 0\] begin after end/,
  );
});

Deno.test("error: overlapping offsets (and gaps)", async () => {
  await using tmp = await tempDir();
  const header = {
    a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
  };
  const path = await tmp.file(rawFile(header, 12));
  await rejects(
    () => SafetensorsFile.open(path),
    SafetensorsError,
    path,
    /tensor "b" data_offsets \[4, 12\] overlaps tensor "a"/,
  );
  const gap = await tmp.file(rawFile({ a: header.a, b: { ...header.b, data_offsets: [12, 20] } }, 20));
  await rejects(() => SafetensorsFile.open(gap), SafetensorsError, gap, /leaves a gap after tensor "a"/);
  const trailing = await tmp.file(rawFile({ a: header.a }, 16));
  await rejects(
    () => SafetensorsFile.open(trailing),
    SafetensorsError,
    trailing,
    /cover only 8 \(trailing bytes\)/,
  );
});

Deno.test("error: shape × dtype ≠ byte length", async () => {
  await using tmp = await tempDir();
  const path = await tmp.file(rawFile({ x: { dtype: "F32", shape: [2, 3], data_offsets: [0, 20] } }, 20));
  await rejects(
    () => SafetensorsFile.open(path),
    SafetensorsError,
    path,
    /: tensor "x": shape \[2, 3\] × F32 needs 24 bytes, offsets give 20$/,
  );
  const overflow = await tmp.file(
    rawFile({ x: { dtype: "F64", shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 8] } }, 8),
  );
  await rejects(() => SafetensorsFile.open(overflow), SafetensorsError, overflow, /overflows the byte count/);
  const neg = await tmp.file(rawFile({ x: { dtype: "F32", shape: [-1], data_offsets: [0, 0] } }, 0));
  await rejects(() => SafetensorsFile.open(neg), SafetensorsError, neg, /not a non-negative integer/);
  const noOffsets = await tmp.file(rawFile({ x: { dtype: "F32", shape: [1] } }, 4));
  await rejects(() => SafetensorsFile.open(noOffsets), SafetensorsError, noOffsets, /has no "data_offsets"/);
});

Deno.test("error: unknown dtype", async () => {
  await using tmp = await tempDir();
  const path = await tmp.file(rawFile({ q: { dtype: "F8_E4M3", shape: [4], data_offsets: [0, 4] } }, 4));
  await rejects(
    () => SafetensorsFile.open(path),
    SafetensorsError,
    path,
    /tensor "q": unknown dtype "F8_E4M3"/,
  );
});

Deno.test("error: __metadata__ not a string map", async () => {
  await using tmp = await tempDir();
  const path = await tmp.file(rawFile({ __metadata__: { step: 3 } }, 0));
  await rejects(
    () => SafetensorsFile.open(path),
    SafetensorsError,
    path,
    /"__metadata__" must be a string→string map/,
  );
});

Deno.test("error: a missing tensor", async () => {
  using f = await SafetensorsFile.open(TINY);
  assert.throws(
    () => f.info("model.layers.9.mlp.up_proj.weight"),
    (e: unknown) =>
      e instanceof SafetensorsError && e.message.startsWith(TINY) &&
      e.message.includes('no tensor "model.layers.9.mlp.up_proj.weight"'),
  );
  await rejects(() => f.read("nope"), SafetensorsError, TINY, /no tensor "nope"/);
  await rejects(
    () => SafetensorsFile.open("tests/io/nope.safetensors"),
    SafetensorsError,
    "tests/io/nope",
    /not found/,
  );
});
