/**
 * Security properties of the checkpoint loaders: no code execution from checkpoints (pickle weights are
 * refused and never opened), shard paths confined to the checkpoint directory, and size caps on JSON
 * files enforced before they are read.
 *
 * File accesses are observed by wrapping `Deno.open`/`Deno.readFile`/`Deno.readTextFile` (and their
 * sync forms): "never opened" is checked directly, not only through file permissions (the tests may
 * run as root, which `chmod 000` does not stop).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CheckpointError, ConfigError, LabError } from "../../lib/errors.ts";
import { Checkpoint } from "../../lib/io/checkpoint.ts";
import { parseLlamaConfig, readJsonFile } from "../../lib/io/config.ts";
import { type HostTensor, SafetensorsFile, writeSafetensors } from "../../lib/io/safetensors.ts";
import { loadTokenizer } from "../../lib/io/tokenizer.ts";

const TINY = "tests/fixtures/tiny-llama";
const MiB = 1024 * 1024;

/**
 * A pickle (protocol 2) that would run `touch <marker>` when unpickled: GLOBAL posix.system, the
 * argument tuple, REDUCE, STOP.
 */
function maliciousPickle(marker: string): Uint8Array {
  const text = `cposix\nsystem\n(S'touch ${marker}'\ntR.`;
  return new Uint8Array([0x80, 0x02, ...new TextEncoder().encode(text)]);
}

/** Records every path given to the file-reading APIs while it is alive. */
class ReadSpy implements Disposable {
  readonly paths: string[] = [];
  #restore: (() => void)[] = [];

  constructor() {
    const d = Deno as unknown as Record<string, (...args: unknown[]) => unknown>;
    for (const name of ["open", "openSync", "readFile", "readFileSync", "readTextFile", "readTextFileSync"]) {
      const orig = d[name];
      d[name] = (...args: unknown[]) => {
        this.paths.push(String(args[0]));
        return orig.apply(Deno, args);
      };
      this.#restore.push(() => (d[name] = orig));
    }
  }

  /** Whether any recorded path ends with `suffix` (paths are recorded as passed, relative or not). */
  touched(suffix: string): boolean {
    return this.paths.some((p) => p === suffix || p.endsWith(`/${suffix}`) || p.endsWith(suffix));
  }

  [Symbol.dispose](): void {
    for (const r of this.#restore.reverse()) r();
  }
}

/** A temporary directory, removed when disposed. */
async function tempDir(prefix: string) {
  const dir = await Deno.makeTempDir({ prefix });
  return {
    dir,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function f32(shape: number[], start: number): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: "F32", shape, data: Float32Array.from({ length: n }, (_, i) => start + i) };
}

/** Asserts that `fn` rejects with `cls`, a message starting with `where` and matching every `res`. */
async function rejects(
  fn: () => Promise<unknown>,
  cls: typeof LabError,
  where: string,
  ...res: RegExp[]
): Promise<Error> {
  let err: Error | null = null;
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.stack ?? e}`);
    assert.ok(e.message.startsWith(`${where}: `), `message should start with ${where}: ${e.message}`);
    for (const re of res) assert.match(e.message, re);
    err = e;
    return true;
  });
  return err!;
}

// ---------------------------------------------------------------------------------------------------
// No code execution: pickle weights
// ---------------------------------------------------------------------------------------------------

Deno.test("a pickle-only checkpoint is refused with a conversion hint, and the pickle is never opened", async () => {
  for (
    const names of [["pytorch_model.bin"], ["model.pt"], ["weights.pth"], ["last.ckpt"], [
      "pytorch_model-00001-of-00002.bin",
      "pytorch_model-00002-of-00002.bin",
      "pytorch_model.bin.index.json",
    ]]
  ) {
    await using tmp = await tempDir("io_sec_pickle_");
    const marker = join(tmp.dir, "PWNED");
    await Deno.copyFile(join(TINY, "config.json"), join(tmp.dir, "config.json"));
    for (const n of names) {
      await Deno.writeFile(
        join(tmp.dir, n),
        n.endsWith(".json") ? new Uint8Array([0x7b, 0x7d]) : maliciousPickle(marker),
      );
    }
    using spy = new ReadSpy();
    const pickles = names.filter((n) => !n.endsWith(".json"));
    const e = await rejects(
      () => Checkpoint.open(tmp.dir),
      CheckpointError,
      tmp.dir,
      new RegExp(escapeRe(`has only pickle weights (${pickles.join(", ")})`)),
      /unpickling .* can run arbitrary code/,
      /convert it with: python -c .*from_pretrained\('DIR'\)\.save_pretrained\('OUT', safe_serialization=True\)/,
    );
    assert.ok(!e.message.includes("\n"), "one-line message");
    for (const n of names) assert.ok(!spy.touched(n), `${n} was opened: ${spy.paths.join(", ")}`);
    await assert.rejects(() => Deno.stat(marker), Deno.errors.NotFound);
  }
});

Deno.test("a checkpoint with both .bin and .safetensors loads the safetensors; the .bin is never opened", async () => {
  await using tmp = await tempDir("io_sec_both_");
  await Deno.copyFile(join(TINY, "config.json"), join(tmp.dir, "config.json"));
  await writeSafetensors(join(tmp.dir, "model.safetensors"), { "w": f32([2, 3], 0), "b": f32([3], 10) });
  const bin = join(tmp.dir, "pytorch_model.bin");
  await Deno.writeFile(bin, maliciousPickle(join(tmp.dir, "PWNED")));
  await Deno.chmod(bin, 0o000);
  if (Deno.uid() !== 0) {
    await assert.rejects(() => Deno.readFile(bin), Deno.errors.PermissionDenied); // the chmod bites
  }
  using spy = new ReadSpy();
  {
    using ckpt = await Checkpoint.open(tmp.dir);
    assert.deepEqual(ckpt.names(), ["b", "w"]);
    assert.deepEqual(Array.from(await ckpt.readF32("w")), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(Array.from(await ckpt.readF32("b")), [10, 11, 12]);
  }
  assert.ok(spy.touched("model.safetensors"), "the safetensors file was read");
  assert.ok(!spy.touched("pytorch_model.bin"), `the .bin was opened: ${spy.paths.join(", ")}`);

  // the same with sharded safetensors next to sharded pickles
  await Deno.remove(join(tmp.dir, "model.safetensors"));
  await writeSafetensors(join(tmp.dir, "model-00001-of-00002.safetensors"), { "w": f32([2, 3], 0) });
  await writeSafetensors(join(tmp.dir, "model-00002-of-00002.safetensors"), { "b": f32([3], 10) });
  await Deno.writeTextFile(
    join(tmp.dir, "model.safetensors.index.json"),
    JSON.stringify({
      weight_map: { w: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" },
    }),
  );
  await Deno.writeTextFile(join(tmp.dir, "pytorch_model.bin.index.json"), "{}");
  await Deno.chmod(join(tmp.dir, "pytorch_model.bin.index.json"), 0o000);
  {
    using ckpt = await Checkpoint.open(tmp.dir);
    assert.deepEqual(Array.from(await ckpt.readF32("b")), [10, 11, 12]);
  }
  assert.ok(!spy.touched("pytorch_model.bin"), `the .bin was opened: ${spy.paths.join(", ")}`);
  assert.ok(!spy.touched("pytorch_model.bin.index.json"), "the pickle index was opened");
});

// ---------------------------------------------------------------------------------------------------
// Shard paths confined to the checkpoint directory
// ---------------------------------------------------------------------------------------------------

Deno.test("shard paths are confined to the checkpoint directory: absolute, '..', symlinks out", async () => {
  await using outside = await tempDir("io_sec_outside_");
  await using tmp = await tempDir("io_sec_shards_");
  const dir = join(tmp.dir, "ckpt");
  await Deno.mkdir(join(dir, "sub"), { recursive: true });
  await Deno.copyFile(join(TINY, "config.json"), join(dir, "config.json"));
  // a perfectly valid shard outside the directory: it would load if it were reachable
  const victim = join(outside.dir, "model.safetensors");
  await writeSafetensors(victim, { "w": f32([2], 7) });
  await writeSafetensors(join(dir, "model-00001-of-00001.safetensors"), { "w": f32([2], 0) });
  await Deno.symlink(victim, join(dir, "ext.safetensors"));
  await Deno.symlink(outside.dir, join(dir, "extdir"));
  await Deno.symlink("/etc/passwd", join(dir, "passwd.safetensors"));
  await Deno.symlink("/etc", join(dir, "etc"));
  await Deno.symlink(
    "../../" + outside.dir.split("/").pop() + "/model.safetensors",
    join(dir, "rel.safetensors"),
  );
  const indexPath = join(dir, "model.safetensors.index.json");
  const outName = outside.dir.split("/").pop();

  using spy = new ReadSpy();
  for (
    const shard of [
      victim, // absolute, outside
      join(dir, "model-00001-of-00001.safetensors"), // absolute, even though inside
      `../../${outName}/model.safetensors`,
      `sub/../../../${outName}/model.safetensors`,
      `sub/../model-00001-of-00001.safetensors`, // '..' is refused even when it stays inside
      "ext.safetensors", // symlink to a file outside
      "rel.safetensors", // relative symlink to a file outside
      "extdir/model.safetensors", // through a directory symlink
      "passwd.safetensors", // symlink to /etc/passwd
      "etc/passwd", // through a symlink to /etc
      "C:\\Windows\\win.ini",
      "C:model.safetensors",
      "sub\\..\\model-00001-of-00001.safetensors",
      "",
    ]
  ) {
    await Deno.writeTextFile(indexPath, JSON.stringify({ weight_map: { w: shard } }));
    await rejects(
      () => Checkpoint.open(dir),
      CheckpointError,
      indexPath,
      new RegExp(escapeRe(`shard path ${JSON.stringify(shard)}`)),
      /leaves the checkpoint directory/,
    );
  }
  assert.ok(!spy.touched(victim), `the outside shard was opened: ${spy.paths.join(", ")}`);
  assert.ok(!spy.paths.some((p) => p.startsWith("/etc")), `a file under /etc was opened: ${spy.paths}`);

  // what stays inside still loads: a plain name, "./name", a symlink within the directory, and the
  // whole checkpoint reached through a symlinked directory
  await Deno.symlink("model-00001-of-00001.safetensors", join(dir, "alias.safetensors"));
  await Deno.symlink(dir, join(tmp.dir, "ckpt-link"));
  for (
    const [d, shard] of [[dir, "model-00001-of-00001.safetensors"], [dir, "./alias.safetensors"], [
      join(tmp.dir, "ckpt-link"),
      "model-00001-of-00001.safetensors",
    ]]
  ) {
    await Deno.writeTextFile(indexPath, JSON.stringify({ weight_map: { w: shard } }));
    using ckpt = await Checkpoint.open(d);
    assert.deepEqual(Array.from(await ckpt.readF32("w")), [0, 1]);
  }
});

Deno.test("shard names that cannot be resolved fail as CheckpointError (loop, NUL, too long, not a dir)", async () => {
  await using tmp = await tempDir("io_sec_names_");
  await Deno.copyFile(join(TINY, "config.json"), join(tmp.dir, "config.json"));
  await writeSafetensors(join(tmp.dir, "model-00001-of-00001.safetensors"), { "w": f32([2], 0) });
  await Deno.symlink("loop.safetensors", join(tmp.dir, "loop.safetensors"));
  await Deno.mkdir(join(tmp.dir, "dir.safetensors"));
  const indexPath = join(tmp.dir, "model.safetensors.index.json");
  for (
    const [shard, re] of [
      ["loop.safetensors", /cannot be resolved/],
      ["model-00001-of-00001.safetensors\u0000", /contains a NUL character/],
      ["x".repeat(300), /cannot be resolved/],
      ["a/".repeat(3000) + "b", /cannot be resolved|is missing/],
      ["model-00001-of-00001.safetensors/", /cannot be resolved/],
      ["dir.safetensors", /not a regular file/],
    ] as const
  ) {
    await Deno.writeTextFile(indexPath, JSON.stringify({ weight_map: { w: shard } }));
    await assert.rejects(() => Checkpoint.open(tmp.dir), (e: unknown) => {
      assert.ok(e instanceof LabError, `${JSON.stringify(shard).slice(0, 40)}: got ${(e as Error)?.stack}`);
      assert.ok(e.message.startsWith(tmp.dir), e.message);
      assert.match(e.message, re);
      return true;
    });
  }
});

Deno.test("a FIFO where a safetensors file should be is refused without blocking", async () => {
  await using tmp = await tempDir("io_sec_fifo_");
  const fifo = join(tmp.dir, "model.safetensors");
  const made = await new Deno.Command("mkfifo", { args: [fifo] }).output().catch(() => null);
  if (!made?.success) return; // no mkfifo on this system
  await Deno.copyFile(join(TINY, "config.json"), join(tmp.dir, "config.json"));
  // opening a FIFO for reading would wait for a writer forever
  await rejects(() => SafetensorsFile.open(fifo), LabError, fifo, /not a regular file/);
  await rejects(() => Checkpoint.open(tmp.dir), LabError, fifo, /not a regular file/);
});

// ---------------------------------------------------------------------------------------------------
// Size limits on JSON
// ---------------------------------------------------------------------------------------------------

Deno.test("a 20 MB config.json is refused with ConfigError before it is read or parsed", async () => {
  await using tmp = await tempDir("io_sec_json_");
  const config = JSON.parse(await Deno.readTextFile(join(TINY, "config.json")));
  const path = join(tmp.dir, "config.json");
  // a valid config, padded to 20 MB: it would parse and validate if it were read
  const text = JSON.stringify({ ...config, pad: "" });
  const padded = text.replace('"pad":""', `"pad":"${"x".repeat(20 * MiB - text.length)}"`);
  assert.equal(padded.length, 20 * MiB);
  await Deno.writeTextFile(path, padded);
  await writeSafetensors(join(tmp.dir, "model.safetensors"), { "w": f32([2], 0) });
  using spy = new ReadSpy();
  const limit = /file is 20971520 bytes, more than the 16777216-byte limit for JSON/;
  await rejects(() => readJsonFile(path), ConfigError, path, limit);
  await rejects(() => Checkpoint.open(tmp.dir), ConfigError, path, limit);
  assert.ok(!spy.touched(path), `config.json was read: ${spy.paths.join(", ")}`);
  // the same file under a larger cap is read, parsed and accepted: the refusal was the size alone
  assert.equal(parseLlamaConfig(await readJsonFile(path, 32 * MiB), path).hiddenSize, 64);
});

Deno.test("readJsonFile's cap: exactly the limit is read, one byte more is refused; per-file caps", async () => {
  await using tmp = await tempDir("io_sec_cap_");
  const path = join(tmp.dir, "x.json");
  const exact = (n: number) => `{"a":"${"y".repeat(n - 8)}"}`;
  await Deno.writeTextFile(path, exact(16 * MiB));
  assert.equal(((await readJsonFile(path)) as { a: string }).a.length, 16 * MiB - 8);
  await Deno.writeTextFile(path, exact(16 * MiB + 1));
  await rejects(
    () => readJsonFile(path),
    ConfigError,
    path,
    /16777217 bytes, more than the 16777216-byte limit/,
  );
  await Deno.writeTextFile(path, exact(100));
  await rejects(() => readJsonFile(path, 99), ConfigError, path, /100 bytes, more than the 99-byte limit/);

  // the shard index and tokenizer.json may be up to 64 MiB; above that they are refused unread
  // (sparse files: only the size is looked at)
  const ckpt = join(tmp.dir, "ckpt");
  await Deno.mkdir(ckpt);
  await Deno.copyFile(join(TINY, "config.json"), join(ckpt, "config.json"));
  const index = join(ckpt, "model.safetensors.index.json");
  await Deno.writeTextFile(index, "{");
  await Deno.truncate(index, 64 * MiB + 1);
  const tok = join(ckpt, "tokenizer.json");
  await Deno.writeTextFile(tok, "{");
  await Deno.truncate(tok, 64 * MiB + 1);
  const tokCfg = join(tmp.dir, "tokenizer_config.json");
  await Deno.copyFile(join(TINY, "tokenizer.json"), join(tmp.dir, "tokenizer.json"));
  await Deno.writeTextFile(tokCfg, "{");
  await Deno.truncate(tokCfg, 16 * MiB + 1);
  using spy = new ReadSpy();
  await rejects(() => Checkpoint.open(ckpt), ConfigError, index, /more than the 67108864-byte limit/);
  await rejects(() => loadTokenizer(ckpt), ConfigError, tok, /more than the 67108864-byte limit/);
  await rejects(() => loadTokenizer(tmp.dir), ConfigError, tokCfg, /more than the 16777216-byte limit/);
  for (const p of [index, tok, tokCfg]) assert.ok(!spy.touched(p), `${p} was read`);
});
