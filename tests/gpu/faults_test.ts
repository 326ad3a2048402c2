/**
 * GPU faults: tensors beyond the device's buffer limits and bindings beyond one storage binding give a
 * typed error with the size asked and the limit; a lost device gives a typed error at the next call or
 * readback (checked in subprocesses, the device being a per-process singleton).
 */
import assert from "node:assert/strict";
import { GpuError } from "../../lib/errors.ts";
import { alignedSize, BUFFER_ALIGN, bufferSize, dummyBuffer, gpuMemory } from "../../lib/gpu/buffers.ts";
import { gpu, initGpu } from "../../lib/gpu/device.ts";
import { scale } from "../../lib/tensor/elementwise.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { Rng } from "../../lib/random.ts";
import { loadCheckpoint } from "../../lib/train/checkpoint.ts";
import { faultModel } from "../train/_fault_child.ts";

await initGpu();

Deno.test("limits: a tensor beyond maxBufferSize is a GpuError with the shape, the size and the limit", () => {
  const { maxBufferBytes } = gpu();
  const n = Math.floor(maxBufferBytes / 4) + 1;
  const before = gpuMemory();
  for (
    const make of [
      () => Tensor.empty([n]),
      () => Tensor.zeros([n, 1]),
      () => Tensor.empty([1 << 20, 1 << 20]),
    ]
  ) {
    assert.throws(make, (e: Error) => {
      assert.ok(e instanceof GpuError, `${e.constructor.name}: ${e.message}`);
      assert.match(e.message, /needs \d+ bytes; the device's maxBufferSize is \d+ bytes/);
      assert.ok(e.message.includes(String(maxBufferBytes)), e.message);
      return true;
    });
  }
  assert.throws(() => Tensor.empty([n]), {
    message: `tensor: a tensor of shape (${n}) needs ${n * 4} bytes; ` +
      `the device's maxBufferSize is ${maxBufferBytes} bytes`,
  });
  const after = gpuMemory();
  assert.equal(after.inUse, before.inUse, "nothing was allocated");
  assert.equal(after.created, before.created);
});

Deno.test("limits: pooled buffer sizes never exceed the limit a request fits under", () => {
  const rng = new Rng(9);
  const limits: [number, number][] = [
    [134217728, 2147483647], // lavapipe
    [2147483647, 2147483647],
    [4294967292, 4294967292],
    [134217732, 268435460], // limits that are not pool classes
    [100_000_004, 100_000_004],
  ];
  let cases = 0;
  for (const [binding, buffer] of limits) {
    const edges = [1, 4, 4096, 4100, binding - 4, binding - 1, binding, binding + 1, buffer - 4, buffer - 3];
    const random = Array.from({ length: 400 }, () => Math.floor(2 ** (rng.uniform() * Math.log2(buffer))));
    for (const bytes of [...edges, ...random]) {
      if (Math.ceil(bytes / 4) * 4 > Math.floor(buffer / 4) * 4) {
        assert.throws(() => bufferSize(bytes, binding, buffer), GpuError);
        continue;
      }
      const size = bufferSize(bytes, binding, buffer);
      assert.ok(size >= bytes && size % 4 === 0, `${bytes} → ${size}`);
      assert.ok(size <= buffer, `${bytes} → ${size} > maxBufferSize ${buffer}`);
      if (bytes <= binding) assert.ok(size <= binding, `${bytes} → ${size} > maxBinding ${binding}`);
      // Whole granules, so that no buffer shifts the next off its sectors; only a request past the last
      // granule under its cap gets its own (4-byte multiple) size
      const need = Math.ceil(Math.max(4, bytes) / 4) * 4;
      assert.ok(size % BUFFER_ALIGN === 0 || size === need, `${bytes} → ${size}: not a multiple of 256`);
      cases++;
    }
  }
  assert.ok(cases > 1500);
  assert.throws(() => bufferSize(2 ** 31, 2 ** 27, 2 ** 31 - 1, "w"), {
    name: "GpuError",
    message: "w: a buffer of 2147483648 bytes was asked for; the device's maxBufferSize is 2147483647 bytes",
  });
  assert.throws(() => bufferSize(NaN, 2 ** 27, 2 ** 31 - 1), GpuError);
});

Deno.test("limits: buffers made outside the pool are whole granules of BUFFER_ALIGN bytes too", () => {
  assert.equal(dummyBuffer().size % BUFFER_ALIGN, 0);
  for (const bytes of [0, 1, 4, 16, 255, 256, 257, 4096, 100_003]) {
    const s = alignedSize(bytes);
    assert.ok(
      s >= Math.max(1, bytes) && s % BUFFER_ALIGN === 0 && s - Math.max(1, bytes) < BUFFER_ALIGN,
      `${bytes} → ${s}`,
    );
  }
});

Deno.test("limits: binding a tensor larger than maxStorageBufferBindingSize is a GpuError naming the kernel", async () => {
  const { maxBindingBytes, maxBufferBytes } = gpu();
  const n = maxBindingBytes / 4 + 1;
  if (n * 4 > maxBufferBytes) return; // a device whose buffers all fit one binding
  using big = Tensor.empty([n]);
  assert.equal(big.bindable, false);
  assert.throws(() => scale(big, 2), (e: Error) => {
    assert.ok(e instanceof GpuError, `${e.constructor.name}: ${e.message}`);
    assert.match(
      e.message,
      /^elementwise\.wgsl:scale: binding 1 is a buffer of \d+ bytes; the device's maxStorageBufferBindingSize/,
    );
    assert.ok(e.message.includes(`${maxBindingBytes} bytes`), e.message);
    return true;
  });
  // Nothing was recorded: the device has no error to report at the next readback.
  using small = Tensor.from([1, 2], [2]);
  using ok = scale(small, 3);
  assert.deepEqual([...await ok.toArray()], [3, 6]);
});

/** Runs the device-lost child in `mode` and returns its JSON lines. */
async function lostChild(...args: string[]): Promise<{ call: string; error: string; message?: string }[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--cached-only",
      new URL("./_device_lost_child.ts", import.meta.url).pathname,
      ...args,
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, `${text}\n${new TextDecoder().decode(out.stderr)}`);
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

const LOST = /the GPU device was lost \(destroyed: .*\); restart the process$/;

for (const mode of ["in-flight", "immediate", "later"]) {
  Deno.test(`device lost (${mode}): the next GPU call or readback is a GpuError saying so`, async () => {
    const lines = await lostChild(mode);
    assert.deepEqual(lines[0], { call: "before", error: "none" });
    assert.ok(lines.length >= 2, JSON.stringify(lines));
    for (const l of lines.slice(1)) {
      assert.equal(l.error, "GpuError", JSON.stringify(l));
      assert.match(l.message!, LOST, JSON.stringify(l));
    }
    if (mode === "later") {
      assert.deepEqual(lines.map((l) => l.call), [
        "before",
        "empty",
        "dispatch",
        "write",
        "sync",
        "readback",
      ]);
    }
  });
}

Deno.test("device lost during training: the run fails with the GpuError and the last checkpoint stays good", async () => {
  const dir = await Deno.makeTempDir();
  const lines = await lostChild("train", dir);
  assert.equal(lines.length, 2, JSON.stringify(lines));
  assert.equal(lines[1].call, "train");
  assert.equal(lines[1].error, "GpuError", JSON.stringify(lines[1]));
  assert.match(lines[1].message!, LOST);
  // The checkpoint of step 4 (written before the loss) is complete and passes its checksums here.
  using m = faultModel(2);
  const meta = await loadCheckpoint(dir, m.namedParameters());
  assert.equal(meta.step, 4);
  await Deno.remove(dir, { recursive: true });
});
