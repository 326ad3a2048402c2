/**
 * Gradient checks: an op's GPU backward against central finite differences of its float64 CPU
 * reference, for the gradient of Σ out · r with a random r.
 *
 * @module
 */
import { GradTape } from "../lib/autograd/tape.ts";
import { readTensors, Tensor } from "../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "./_assert.ts";

/** A float64 reference of an op: inputs → output values. */
export type Ref = (xs: Float64Array[]) => ArrayLike<number>;

/** d(Σ f(xs) · r)/d xs[k] by central differences (h = 1e-4, float64). */
export function finiteDiff(f: Ref, xs: Float64Array[], r: ArrayLike<number>, k: number): Float64Array {
  const h = 1e-4;
  const g = new Float64Array(xs[k].length);
  const dot = (y: ArrayLike<number>) => {
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i] * r[i];
    return s;
  };
  for (let j = 0; j < g.length; j++) {
    const keep = xs[k][j];
    xs[k][j] = keep + h;
    const up = dot(f(xs));
    xs[k][j] = keep - h;
    const down = dot(f(xs));
    xs[k][j] = keep;
    g[j] = (up - down) / (2 * h);
  }
  return g;
}

/**
 * Runs `op` on GPU tensors of `shapes` (inputs listed in `diff` require grad), back-propagates r and
 * compares each differentiable input's gradient with finite differences of `ref`.
 */
export async function checkOp(
  name: string,
  shapes: number[][],
  diff: number[],
  op: (ts: Tensor[]) => Tensor,
  ref: Ref,
  opts: { values?: Float64Array[]; atol?: number } = {},
) {
  const values = opts.values ??
    shapes.map((s, i) => Float64Array.from(randomArray(s.reduce((a, b) => a * b, 1), 7 + i)));
  const ts = values.map((v, i) => Tensor.from(Float32Array.from(v), shapes[i]));
  for (const k of diff) ts[k].requiresGrad = true;
  using tape = new GradTape();
  const out = tape.run(() => op(ts));
  const r = randomArray(out.size, 99);
  using rt = Tensor.from(r, out.shape);
  tape.backward(out, rt);
  const grads = await readTensors(diff.map((k) => ts[k].grad!));
  diff.forEach((k, i) => {
    const want = finiteDiff(ref, values.map((v) => Float64Array.from(Float32Array.from(v))), r, k);
    assertAllclose(grads[i], want, { atol: opts.atol ?? 2e-3, rtol: 2e-3, name: `${name}: d/d input ${k}` });
  });
  out.dispose();
  for (const t of ts) t.dispose();
}
