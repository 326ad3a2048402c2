/**
 * Reverse-mode automatic differentiation with an explicit tape.
 *
 * While a {@linkcode GradTape} is recording (`tape.run(fn)`), every differentiable op (see `ops.ts`)
 * whose inputs include a tensor with `requiresGrad` appends a node: its inputs, its output and a
 * backward closure that maps the output's gradient to its inputs' gradients using GPU kernels. Nodes
 * retain the tensors their backward needs, so model code may dispose intermediates eagerly.
 * `tape.backward(loss)` walks the nodes in reverse, accumulates gradients, adds the gradients of the
 * leaves (parameters) into `param.grad`, and frees everything the tape held. Outside a recording
 * tape, the same ops run forward only, at no cost.
 *
 * GPU memory is explicit: a tape holds activations until `backward` or `dispose`; gradients of
 * parameters live in `param.grad` until the optimizer or the caller frees them.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { add } from "../tensor/elementwise.ts";
import { reshape, Tensor } from "../tensor/tensor.ts";

/** One recorded op. */
interface Node {
  /** Inputs, in the order `backward` returns their gradients (null: not differentiable). */
  inputs: (Tensor | null)[];
  /** The op's output. */
  output: Tensor;
  /** Gradients of the inputs given the output's gradient (undefined where an input needs none). */
  backward: (gradOut: Tensor) => (Tensor | undefined)[];
  /** Tensors retained for backward, released after it runs. */
  saved: Tensor[];
}

let active: GradTape | null = null;

/** The tape currently recording, if any. */
export function activeTape(): GradTape | null {
  return active;
}

/** Whether an op on these inputs must be recorded. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  return active !== null && inputs.some((t) => t?.requiresGrad);
}

/**
 * Records `output = op(inputs)` on the active tape (when any input requires grad). `save` lists
 * tensors the backward closure reads; they are retained until backward has run.
 */
export function record(
  inputs: (Tensor | null | undefined)[],
  output: Tensor,
  save: Tensor[],
  backward: (gradOut: Tensor, saved: Tensor[]) => (Tensor | undefined)[],
): Tensor {
  if (!needsGrad(...inputs)) return output;
  output.requiresGrad = true;
  const saved = save.map((t) => t.retain());
  active!.push({
    inputs: inputs.map((t) => t ?? null),
    output: output.retain(),
    saved,
    backward: (g) => backward(g, saved),
  });
  return output;
}

/** A recording of differentiable ops. */
export class GradTape implements Disposable {
  #nodes: Node[] = [];

  /** Appends a node (used by `record`). */
  push(node: Node): void {
    this.#nodes.push(node);
  }

  /** Number of nodes recorded. */
  get length(): number {
    return this.#nodes.length;
  }

  /** Runs `fn` with this tape recording (tapes do not nest). */
  run<T>(fn: () => T): T {
    if (active) throw new ShapeError("autograd", "a tape is already recording");
    active = this;
    try {
      return fn();
    } finally {
      active = null;
    }
  }

  /**
   * Back-propagates from `loss` (seeded with `gradLoss`, default ones) and adds each parameter's
   * gradient into its `grad` (created at the first backward). Frees everything the tape held.
   */
  backward(loss: Tensor, gradLoss?: Tensor): void {
    const grads = new Map<Tensor, Tensor>();
    const keyOf = (t: Tensor) => t.base;
    const seed = gradLoss ? gradLoss.retain() : Tensor.from(new Float32Array(loss.size).fill(1), loss.shape);
    grads.set(keyOf(loss), seed);
    const accumulate = (t: Tensor, g: Tensor) => {
      const k = keyOf(t);
      const prev = grads.get(k);
      if (!prev) {
        grads.set(k, g);
        return;
      }
      const sum = add(prev, g);
      prev.dispose();
      g.dispose();
      grads.set(k, sum);
    };
    for (let i = this.#nodes.length - 1; i >= 0; i--) {
      const node = this.#nodes[i];
      const k = keyOf(node.output);
      const g = grads.get(k);
      if (g) {
        grads.delete(k);
        const gv = g.shape.join() === node.output.shape.join() ? g : g.view(node.output.shape);
        const gin = node.backward(gv);
        g.dispose();
        node.inputs.forEach((input, j) => {
          const gi = gin[j];
          if (!gi) return;
          if (!input?.requiresGrad) {
            gi.dispose();
            return;
          }
          accumulate(input, gi.shape.join() === input.shape.join() ? gi : reshape(gi, input.shape));
        });
      }
      for (const s of node.saved) s.dispose();
      node.output.dispose();
    }
    this.#nodes = [];
    // What is left are the leaves' gradients: parameters (and any input that required grad).
    for (const [leaf, g] of grads) {
      if (leaf.grad) {
        const sum = add(leaf.grad, g);
        leaf.grad.dispose();
        g.dispose();
        leaf.grad = sum;
      } else {
        leaf.grad = g.shape.join() === leaf.shape.join() ? g : reshape(g, leaf.shape);
      }
    }
  }

  /** Frees the recording without back-propagating (e.g. an evaluation pass under a tape). */
  dispose(): void {
    for (const node of this.#nodes) {
      for (const s of node.saved) s.dispose();
      node.output.dispose();
    }
    this.#nodes = [];
  }

  /** `using tape = new GradTape()`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
