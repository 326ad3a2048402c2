import assert from "node:assert/strict";
import { GpuError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import {
  beginCapture,
  captureCommands,
  capturing,
  dispatch,
  dispatchCount,
  endCapture,
  Params,
  releaseCapture,
  replayCommands,
} from "../../lib/gpu/commands.ts";
import { copyElements } from "../../lib/tensor/copy.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";

await initGpu();

/** c = a + b (elementwise.wgsl add). */
function add(a: Tensor, b: Tensor, c: Tensor): void {
  dispatch(
    { file: "elementwise.wgsl", entry: "add" },
    [a.buffer, b.buffer, c.buffer],
    new Params().u32(a.size, 256),
    [
      Math.ceil(a.size / 256),
    ],
  );
}

Deno.test("capture: the captured work runs once, and each replay runs its dispatches and copies again, in order", async () => {
  using a = Tensor.from([1, 2, 3, 4], [4]);
  using b = Tensor.from([10, 20, 30, 40], [4]);
  using c = Tensor.zeros([4]);
  beginCapture();
  assert.ok(capturing());
  add(a, b, c); // c = a + b
  copyElements(c, 0, a, 0, 4); // a = c
  const program = endCapture();
  assert.ok(!capturing());
  assert.equal(program.dispatches, 1);
  assert.equal(program.ops.length, 2);
  const before = dispatchCount();
  for (let i = 0; i < 3; i++) replayCommands(program);
  assert.equal(dispatchCount() - before, 3);
  // Four applications of a ← a + b: the capture's own, then three replays.
  assert.deepEqual(Array.from(await a.toArray()), [41, 82, 123, 164]);
  releaseCapture(program);
});

Deno.test("capture: the captured parameters are the capture's own (later dispatches do not overwrite them)", async () => {
  using a = Tensor.from([1, 1, 1, 1, 1, 1, 1, 1], [8]);
  using b = Tensor.from([1, 1, 1, 1, 1, 1, 1, 1], [8]);
  using c = Tensor.zeros([8]);
  using d = Tensor.zeros([8]);
  beginCapture();
  dispatch(
    { file: "elementwise.wgsl", entry: "add" },
    [a.buffer, b.buffer, c.buffer],
    new Params().u32(2, 256),
    [1],
  );
  const program = endCapture();
  add(a, b, d); // a full-length add through the ring, recorded between capture and replay
  copyElements(d, 0, c, 0, 8);
  replayCommands(program); // writes only c[0..2) again
  assert.deepEqual(Array.from(await c.toArray()), [2, 2, 2, 2, 2, 2, 2, 2]);
  using z = Tensor.zeros([8]);
  copyElements(z, 0, c, 0, 8);
  replayCommands(program);
  assert.deepEqual(Array.from(await c.toArray()), [2, 2, 0, 0, 0, 0, 0, 0]);
  releaseCapture(program);
});

Deno.test("capture: uploads and readbacks inside a capture are refused, nested captures too", async () => {
  using a = Tensor.zeros([4]);
  beginCapture();
  try {
    assert.throws(() => a.write(new Float32Array(4)), GpuError);
    await assert.rejects(() => a.toArray(), GpuError);
    assert.throws(() => beginCapture(), GpuError);
    assert.throws(() => replayCommands({ ops: [], dispatches: 0, uniforms: [], held: [] }), GpuError);
  } finally {
    endCapture();
  }
  assert.throws(() => endCapture(), GpuError);
});

Deno.test("capture: temporaries released during a capture are not handed out again until releaseCapture", () => {
  beginCapture();
  const tmp = Tensor.empty([1000]);
  const buffer = tmp.buffer;
  tmp.dispose();
  const program = endCapture();
  assert.ok(program.held.includes(buffer));
  using other = Tensor.empty([1000]);
  assert.notEqual(other.buffer, buffer, "a held buffer was reused while the capture lives");
  releaseCapture(program);
  using again = Tensor.empty([1000]);
  assert.equal(again.buffer, buffer, "the pool gets the buffer back after releaseCapture");
});

Deno.test("capture: released before anything was submitted, its own recording still runs and later work is valid", async () => {
  using a = Tensor.from([1, 2, 3, 4], [4]);
  using b = Tensor.from([10, 20, 30, 40], [4]);
  using c = Tensor.zeros([4]);
  // The capture's recording sits in the open batch, bound to the capture's uniform buffer, which the
  // release destroys: the batch must reach the GPU before that, or its submit fails validation.
  releaseCapture(captureCommands(() => add(a, b, c)));
  add(c, b, a); // a = c + b, recorded after the release
  assert.deepEqual(Array.from(await c.toArray()), [11, 22, 33, 44]);
  assert.deepEqual(Array.from(await a.toArray()), [21, 42, 63, 84]);
});

Deno.test("captureCommands: returns what fn recorded; when fn throws the capture is closed and its held buffers return to the pool", async () => {
  using a = Tensor.from([1, 2, 3, 4], [4]);
  using b = Tensor.from([10, 20, 30, 40], [4]);
  using c = Tensor.zeros([4]);
  const program = captureCommands(() => add(a, b, c));
  assert.ok(!capturing());
  assert.equal(program.dispatches, 1);
  copyElements(b, 0, a, 0, 4);
  replayCommands(program);
  assert.deepEqual(Array.from(await c.toArray()), [20, 40, 60, 80]);
  releaseCapture(program);
  let held: GPUBuffer | null = null;
  assert.throws(
    () =>
      captureCommands(() => {
        const tmp = Tensor.empty([1000]);
        held = tmp.buffer;
        tmp.dispose();
        throw new Error("boom");
      }),
    /boom/,
  );
  assert.ok(!capturing(), "the capture is closed after fn threw");
  using again = Tensor.empty([1000]);
  assert.equal(again.buffer, held, "the temporary went back to the pool");
});
