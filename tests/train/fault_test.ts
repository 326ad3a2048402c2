/**
 * Faults around checkpoints: a training process killed with SIGKILL in the middle of a checkpoint
 * write (at three points of the write, made deterministic by `_fault_child.ts`), then resumed; damaged
 * checkpoint files given to resume; the order of the writer's file operations.
 */
import assert from "node:assert/strict";
import { CheckpointError, type LabError, SafetensorsError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import {
  encodeSafetensors,
  type HostTensor,
  SafetensorsFile,
  writeSafetensors,
} from "../../lib/io/safetensors.ts";
import { Rng } from "../../lib/random.ts";
import { CHECKPOINT_FILE, loadCheckpoint } from "../../lib/train/checkpoint.ts";
import { train, type TrainResult } from "../../lib/train/loop.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose } from "../_assert.ts";
import { FAULT_OPTS, faultModel, faultTask, FILLER_SIZE } from "./_fault_child.ts";

await initGpu();

const child = new URL("./_fault_child.ts", import.meta.url).pathname;

let fullRun: TrainResult | null = null;
/** The uninterrupted run without checkpoints (computed once). */
async function uninterrupted(): Promise<TrainResult> {
  if (!fullRun) {
    using m = faultModel(1);
    fullRun = await train(faultTask(m), FAULT_OPTS);
  }
  return fullRun;
}

/** Temporary files of the checkpoint writer in `dir`. */
async function temps(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.startsWith(`${CHECKPOINT_FILE}.tmp-`)) out.push(e.name);
  return out;
}

/**
 * Starts the child run in `dir`, waits until it has paused inside its `save`-th checkpoint write at
 * `point`, kills it with SIGKILL and returns what it printed.
 */
async function killDuringSave(dir: string, save: number, point: string): Promise<string[]> {
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--cached-only", child, dir],
    env: { NO_COLOR: "1", FAULT_SAVE: String(save), FAULT_POINT: point },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const timer = setTimeout(() => proc.kill("SIGKILL"), 60_000);
  try {
    while (!lines.some((l) => l.startsWith("PAUSED"))) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      const parts = buf.split("\n");
      buf = parts.pop()!;
      lines.push(...parts);
    }
    proc.kill("SIGKILL");
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  const status = await proc.status;
  await proc.stdout.cancel().catch(() => {});
  const stderr = new TextDecoder().decode(await new Response(proc.stderr).arrayBuffer());
  assert.ok(
    lines.some((l) => l.startsWith("PAUSED")),
    `the child never paused:\n${lines.join("\n")}\n${stderr}`,
  );
  assert.equal(status.signal, "SIGKILL", "killed by the signal, not finished");
  return lines;
}

for (const point of ["head", "data", "synced"]) {
  Deno.test(`fault: kill -9 inside a checkpoint write (${point}), then resume from the previous one`, async () => {
    const full = await uninterrupted();
    const dir = await Deno.makeTempDir();
    const lines = await killDuringSave(dir, 2, point); // the second save: after step 8
    const path = `${dir}/${CHECKPOINT_FILE}`;

    // The child ran the same steps as the uninterrupted run up to the kill.
    const childLosses = lines.filter((l) => l.startsWith("LOSS")).map((l) => Number(l.split(" ")[2]));
    assert.equal(childLosses.length, 8);
    assertAllclose(childLosses, full.events.slice(0, 8).map((e) => e.loss), {
      atol: 1e-5,
      rtol: 1e-5,
      name: "child losses",
    });
    assert.deepEqual(lines.filter((l) => l.startsWith("SAVED")), ["SAVED 4"]);

    // The kill happened inside the write: its temporary file is there, partly or (synced) fully written.
    const [, tmpPath, written] = lines.find((l) => l.startsWith("PAUSED"))!.split(" ");
    assert.deepEqual(await temps(dir), [tmpPath.slice(dir.length + 1)]);
    const tmpSize = (await Deno.stat(tmpPath)).size;
    assert.equal(tmpSize, Number(written));
    const good = await Deno.readFile(`${dir}/good-4.safetensors`);
    if (point === "synced") assert.equal(tmpSize, good.length, "a complete file, only the rename missing");
    else assert.ok(tmpSize > 0 && tmpSize < good.length, `${tmpSize} of ${good.length} bytes written`);

    // The previous checkpoint is intact, byte for byte.
    assert.deepEqual(await Deno.readFile(path), good);
    {
      using f = await SafetensorsFile.open(path);
      assert.equal(f.metadata.step, "4");
    }

    // Resume (other initial weights: everything must come from the checkpoint of step 4).
    using m = faultModel(2);
    const resumed = await train(faultTask(m), { ...FAULT_OPTS, checkpointDir: dir, resume: true });
    assert.deepEqual(resumed.events.map((e) => e.step), [5, 6, 7, 8, 9, 10, 11, 12]);
    assertAllclose(resumed.events.map((e) => e.loss), full.events.slice(4).map((e) => e.loss), {
      atol: 1e-5,
      rtol: 1e-5,
      name: "losses after the resume",
    });
    // The resumed run's first save removed the dead process's temporary file.
    assert.deepEqual(await temps(dir), []);
    {
      using f = await SafetensorsFile.open(path);
      assert.equal(f.metadata.step, "12");
    }
    await Deno.remove(dir, { recursive: true });
  });
}

Deno.test("fault: kill -9 inside the first checkpoint write leaves no checkpoint; resume starts afresh", async () => {
  const full = await uninterrupted();
  const dir = await Deno.makeTempDir();
  await killDuringSave(dir, 1, "data");
  assert.equal((await temps(dir)).length, 1);
  await assert.rejects(Deno.stat(`${dir}/${CHECKPOINT_FILE}`), Deno.errors.NotFound);
  using m = faultModel(1);
  const resumed = await train(faultTask(m), { ...FAULT_OPTS, checkpointDir: dir, resume: true });
  assert.equal(resumed.events[0].step, 1, "the temporary file is not a checkpoint");
  assertAllclose(resumed.events.map((e) => e.loss), full.events.map((e) => e.loss), {
    atol: 1e-5,
    rtol: 1e-5,
    name: "losses",
  });
  assert.deepEqual(await temps(dir), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("fault: kill -9 at random moments of back-to-back checkpoint writes never leaves a bad checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const rng = new Rng(17);
  using m = faultModel(2);
  using filler = Tensor.empty([FILLER_SIZE]);
  const params = [...m.namedParameters(), ["filler", filler] as [string, Tensor]];
  const base = await (async () => {
    using b = faultModel(1);
    return await readTensors(b.namedParameters().map(([, t]) => t));
  })();
  const outcomes: string[] = [];
  const deadline = performance.now() + 8_000;
  while (outcomes.length < 3 || (outcomes.length < 10 && performance.now() < deadline)) {
    const proc = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--cached-only", child, dir],
      env: { NO_COLOR: "1", FAULT_MODE: "save-loop" },
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const text = proc.stdout.pipeThrough(new TextDecoderStream());
    let out = "";
    const reading = (async () => {
      for await (const chunk of text) out += chunk;
    })();
    while (!out.includes("SAVED 1\n")) await new Promise((r) => setTimeout(r, 5));
    const delay = rng.uniform() * 120;
    await new Promise((r) => setTimeout(r, delay));
    proc.kill("SIGKILL");
    assert.equal((await proc.status).signal, "SIGKILL");
    await reading;
    const saved = out.split("\n").filter((l) => l.startsWith("SAVED")).map((l) => Number(l.slice(6)));
    const last = saved.at(-1)!;
    // The file is the last announced checkpoint, or the one whose rename happened just before the kill.
    const meta = await loadCheckpoint(dir, params);
    assert.ok(
      meta.step === last || meta.step === last + 1,
      `checkpoint of step ${meta.step}, last saved ${last}`,
    );
    const values = await readTensors(params.map(([, t]) => t));
    base.forEach((b, i) =>
      assert.deepEqual(
        values[i],
        (b as Float32Array).map((x) => x * meta.step),
        `${params[i][0]} of step ${meta.step}`,
      )
    );
    assert.ok(values.at(-1)!.every((x) => x === meta.step), `filler of step ${meta.step}`);
    const left = await temps(dir);
    assert.ok(left.length <= 1, `temporary files: ${left}`);
    outcomes.push(`${delay.toFixed(0)} ms: ${last} saved, file ${meta.step}, ${left.length} temp`);
  }
  console.log(`${outcomes.length} kills: ${outcomes.join("; ")}`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("fault: a damaged checkpoint.safetensors is refused on resume with a typed error naming it", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/${CHECKPOINT_FILE}`;
  {
    using m = faultModel(1);
    await train(faultTask(m), { ...FAULT_OPTS, steps: 4, checkpointDir: dir });
  }
  const good = await Deno.readFile(path);
  const headerEnd = 8 + Number(new DataView(good.buffer).getBigUint64(0, true));
  const { tensors, meta } = await (async () => {
    using f = await SafetensorsFile.open(path);
    const tensors: Record<string, HostTensor> = {};
    for (const name of f.names()) tensors[name] = await f.read(name);
    return { tensors, meta: f.metadata };
  })();
  /** The good checkpoint's tensors with some metadata replaced. */
  const withMeta = (m: Record<string, string>) => encodeSafetensors(tensors, { ...meta, ...m });
  const damage: [string, (b: Uint8Array) => Uint8Array, typeof LabError][] = [
    ["empty", () => new Uint8Array(0), SafetensorsError],
    ["cut in the prefix", (b) => b.slice(0, 5), SafetensorsError],
    ["cut in the header", (b) => b.slice(0, headerEnd - 40), SafetensorsError],
    [
      "cut in the data",
      (b) => b.slice(0, headerEnd + Math.floor((b.length - headerEnd) / 2)),
      SafetensorsError,
    ],
    ["last byte missing", (b) => b.slice(0, b.length - 1), SafetensorsError],
    ["header bytes garbled", (b) => b.map((x, i) => (i >= 20 && i < 60 ? 0x7b : x)), SafetensorsError],
    ["one bit flipped in the data", (b) => {
      const c = b.slice();
      c[headerEnd + Math.floor((b.length - headerEnd) * 0.7)] ^= 0x10;
      return c;
    }, CheckpointError],
    ["zeros over a tensor", (b) => b.fill(0, b.length - 256), CheckpointError],
    ["RNG state all zeros", () => withMeta({ rng: "[0,0,0,0]" }), CheckpointError],
    ["RNG state not JSON", () => withMeta({ rng: "[1,2," }), CheckpointError],
    ["negative step", () => withMeta({ step: "-1" }), CheckpointError],
    ["checksums not a map", () => withMeta({ checksums: "[]" }), CheckpointError],
    ["a checksum changed", () => {
      const sums = JSON.parse(meta.checksums);
      sums["model.norm.weight"] = "00000000";
      return withMeta({ checksums: JSON.stringify(sums) });
    }, CheckpointError],
  ];
  for (const [what, edit, type] of damage) {
    await Deno.writeFile(path, edit(good.slice()));
    using m = faultModel(2);
    const before = await readTensors(m.namedParameters().map(([, t]) => t));
    await assert.rejects(
      train(faultTask(m), { ...FAULT_OPTS, checkpointDir: dir, resume: true }),
      (e: Error) => {
        assert.ok(e instanceof type, `${what}: ${e.constructor.name} ${e.message}`);
        assert.ok(e.message.includes(path), `${what}: the message names the file: ${e.message}`);
        return true;
      },
    );
    const after = await readTensors(m.namedParameters().map(([, t]) => t));
    assert.deepEqual(after, before, `${what}: no weight was overwritten by the damaged file`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("fault: the writer fsyncs the temporary file before the rename, then the directory", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/x.safetensors`;
  const ops: string[] = [];
  const proto = Deno.FsFile.prototype;
  const { sync, write } = proto;
  const { rename } = Deno;
  proto.sync = function (this: Deno.FsFile) {
    ops.push("sync");
    return sync.call(this);
  };
  proto.write = function (this: Deno.FsFile, p: Uint8Array) {
    if (ops.at(-1) !== "write") ops.push("write");
    return write.call(this, p);
  };
  Deno.rename = (from: string | URL, to: string | URL) => {
    ops.push(
      `rename ${String(from).startsWith(`${path}.tmp-`) ? "tmp" : from} → ${to === path ? "path" : to}`,
    );
    return rename(from, to);
  };
  try {
    await writeSafetensors(path, { a: { dtype: "F32", shape: [3], data: new Float32Array([1, 2, 3]) } });
  } finally {
    Object.assign(proto, { sync, write });
    Deno.rename = rename;
  }
  assert.deepEqual(ops, ["write", "sync", "rename tmp → path", "sync"]);
  await Deno.remove(dir, { recursive: true });
});
