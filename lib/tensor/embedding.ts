/**
 * Token embedding gather (`kernels/embedding.wgsl`), over a table that may be split into row blocks.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, encoder, Params } from "../gpu/commands.ts";
import { fmtShape, Tensor } from "./tensor.ts";
import type { Weight } from "./matmul.ts";

/** Rows of `table` for each id: ids (…) i32 → (…, D). */
export function embedding(ids: Tensor, table: Weight): Tensor {
  if (ids.dtype !== "i32") throw new ShapeError("embedding", `ids must be i32, got ${ids.dtype}`);
  const D = table.shape[1];
  const T = ids.size;
  const out = Tensor.empty([...ids.shape, D]);
  const zrow = Math.min(T, 65535);
  let lo = 0;
  for (const part of table.parts) {
    const hi = lo + part.shape[0];
    if (part.shape[1] !== D) {
      throw new ShapeError("embedding", `block ${fmtShape(part.shape)} is not (·, ${D})`);
    }
    dispatch(
      { file: "embedding.wgsl" },
      [ids.buffer, part.buffer, out.buffer],
      new Params().u32(T, D, lo, hi, zrow),
      [Math.ceil(D / 256), zrow, Math.ceil(T / zrow)],
    );
    lo = hi;
  }
  return out;
}

/** dW of the gather (one tensor per block of `table`), given dy (…, D): scatter-added rows. */
export function embeddingBackward(ids: Tensor, dy: Tensor, table: Weight): Tensor[] {
  const D = table.shape[1];
  const T = ids.size;
  const zrow = Math.min(T, 65535);
  let lo = 0;
  return table.parts.map((part) => {
    const hi = lo + part.shape[0];
    // zeroed on the GPU (clearBuffer, in order with the dispatches): no host array and upload of a
    // table's size every step (a Llama-3 embedding is 1 GB)
    const dW = Tensor.empty(part.shape);
    encoder().clearBuffer(dW.buffer, 0, dW.size * 4);
    dispatch(
      { file: "embedding.wgsl", entry: "backward" },
      [ids.buffer, null, null, dy.buffer, dW.buffer],
      new Params().u32(T, D, lo, hi, zrow),
      [Math.ceil(D / 256), zrow, Math.ceil(T / zrow)],
    );
    lo = hi;
    return dW;
  });
}
