/**
 * Ops with several outputs on the single-output tape of `tape.ts`. One kernel often writes several
 * tensors (a split of columns, the four SSD inputs) and its backward is cheapest as one pass over all
 * their gradients. {@linkcode recordMulti} records:
 *
 *   hub:       inputs → a 1-element token             (its backward runs the op's backward)
 *   output k:  token → outputs[k]                     (its backward keeps d outputs[k] for the hub)
 *
 * Walking the tape in reverse, every consumer of an output runs first, then the output nodes (they
 * stash their gradients and hand the token a 1-element signal), then the hub, which sees every output
 * gradient at once (undefined for an output that got none) and returns the inputs' gradients.
 *
 * @module
 */
import { Tensor } from "../tensor/tensor.ts";
import { needsGrad, record } from "./tape.ts";

/**
 * Records `outputs = op(inputs)` on the active tape (when any input requires grad). `save` lists
 * tensors the backward reads; `backward` gets each output's gradient (or undefined) and the saved
 * tensors, and returns the inputs' gradients (tensors it owns; undefined where none). Returns
 * `outputs` (marked as requiring grad when recorded).
 */
export function recordMulti(
  inputs: (Tensor | null | undefined)[],
  outputs: Tensor[],
  save: Tensor[],
  backward: (gradOuts: (Tensor | undefined)[], saved: Tensor[]) => (Tensor | undefined)[],
): Tensor[] {
  if (!needsGrad(...inputs)) return outputs;
  const pending: (Tensor | undefined)[] = outputs.map(() => undefined);
  let signalled = false;
  const token = record(inputs, Tensor.empty([1]), save, (_signal, saved) => {
    try {
      return backward(pending, saved);
    } finally {
      for (const g of pending) g?.dispose();
      pending.fill(undefined);
    }
  });
  outputs.forEach((out, k) =>
    record([token], out, [], (g) => {
      pending[k] = g.retain();
      if (signalled) return [undefined];
      signalled = true;
      return [Tensor.empty([1])]; // a value the hub ignores: it only makes the tape run the hub
    })
  );
  token.dispose(); // the tape holds its own reference
  return outputs;
}
