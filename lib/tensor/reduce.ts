/**
 * Row sums (`kernels/reduce.wgsl`).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, Params } from "../gpu/commands.ts";
import type { Tensor } from "./tensor.ts";

/**
 * Sums x (R, C) over C into `out[offset … offset + R)` (accumulating when asked). Keeping per-batch
 * sums in one GPU buffer lets a whole evaluation run with a single readback at the end.
 */
export function sumRowsInto(x: Tensor, out: Tensor, offset = 0, accumulate = false): void {
  const C = x.shape[x.shape.length - 1];
  const R = x.size / C;
  if (offset + R > out.size) {
    throw new ShapeError("sumRows", `${R} sums at ${offset} overflow ${out.size} slots`);
  }
  if (R > 65535) throw new ShapeError("sumRows", `${R} rows exceed 65535`);
  dispatch(
    { file: "reduce.wgsl", entry: "sum_rows" },
    [x.buffer, out.buffer],
    new Params().u32(R, C, offset, accumulate ? 1 : 0),
    [R],
  );
}
