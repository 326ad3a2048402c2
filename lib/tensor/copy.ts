/**
 * Buffer-to-buffer copies of contiguous element ranges (recorded in order with the dispatches).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { copyBuffer } from "../gpu/commands.ts";
import type { Tensor } from "./tensor.ts";

/** Copies `n` elements from `src[srcOffset…]` to `dst[dstOffset…]` (element offsets). */
export function copyElements(
  src: Tensor,
  srcOffset: number,
  dst: Tensor,
  dstOffset: number,
  n: number,
): void {
  if (srcOffset + n > src.size || dstOffset + n > dst.size) {
    throw new ShapeError("copy", `range of ${n} elements out of bounds (${src.size} → ${dst.size})`);
  }
  if (n > 0) copyBuffer(src.buffer, srcOffset * 4, dst.buffer, dstOffset * 4, n * 4);
}
