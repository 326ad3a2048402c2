/**
 * GPU timing with timestamp queries: the dispatches recorded inside `timeGpu(fn)` go into one compute
 * pass whose start and end write GPU timestamps, so the measured time is the GPU's own, not the host's
 * (which would include the ≥ 11 ms readback floor).
 *
 * @module
 */
import { GpuError } from "../errors.ts";
import { gpu } from "./device.ts";
import { beginTimedPass, encoder, endPass } from "./commands.ts";
import { readBuffers } from "./transfer.ts";
import { alignedSize } from "./buffers.ts";

/**
 * Records `fn`'s dispatches in a timed pass and returns the GPU time in milliseconds.
 * `fn` must only record work (no uploads or readbacks inside).
 */
export async function timeGpu(fn: () => void): Promise<number> {
  const { device, hasTimestamps } = gpu();
  if (!hasTimestamps) throw new GpuError("webgpu", "this adapter has no timestamp-query feature");
  const querySet = device.createQuerySet({ type: "timestamp", count: 2 });
  const resolve = device.createBuffer({
    size: alignedSize(16),
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  beginTimedPass({ querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 });
  fn();
  endPass();
  encoder().resolveQuerySet(querySet, 0, 2, resolve, 0);
  const [bytes] = await readBuffers([{ buffer: resolve }]);
  querySet.destroy();
  resolve.destroy();
  const t = new BigUint64Array(bytes);
  return Number(t[1] - t[0]) / 1e6;
}
