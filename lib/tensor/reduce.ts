/**
 * Row sums (`kernels/reduce.wgsl`).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, Params } from "../gpu/commands.ts";
import { Tensor } from "./tensor.ts";

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

/** Column sums of x (R, C) → (1, C), in passes of 64-row blocks (no atomics, deterministic). */
export function sumColumns(x: Tensor): Tensor {
  const C = x.shape[x.shape.length - 1];
  let R = x.size / C;
  let cur = x.retain();
  do {
    const blocks = Math.ceil(R / 64);
    const next = Tensor.empty([blocks, C]);
    dispatch(
      { file: "reduce.wgsl", entry: "sum_cols" },
      [cur.buffer, next.buffer],
      new Params().u32(R, C, 0, 0),
      [Math.ceil(C / 256), blocks],
    );
    cur.dispose();
    cur = next;
    R = blocks;
  } while (R > 1);
  return cur;
}
