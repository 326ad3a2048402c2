/**
 * The benchmark-only kernels of `kernels/access_patterns.wgsl` (the memory floor of the selective scan's
 * access patterns on (rows, L) tensors, issue #3): their dispatch and a float64 twin of what each
 * computes, so that a test can check that every load reaches its result. `bench/scan_patterns.ts`
 * times them.
 *
 * Shapes: u, δ, z, y (rows, L) with L a multiple of 128 (each invocation owns 128 steps of a row).
 *
 * @module
 */
import { ShapeError } from "../lib/errors.ts";
import { dispatch, Params } from "../lib/gpu/commands.ts";
import type { Tensor } from "../lib/tensor/tensor.ts";

/** Steps of a row one invocation owns (the three-pass scan's chunk Q). */
export const PATTERN_STEPS = 128;

/** Invocations per workgroup (the kernels' WG). */
const WG = 128;

/** The entry points: which invocation owns which (row, chunk), and whether z is read and y written. */
export const PATTERN_ENTRIES = [
  "flat_state",
  "rows_state",
  "rows_state_pf",
  "chunks_state",
  "flat_out",
  "rows_out",
  "rows_out_pf",
  "chunks_out",
] as const;

/** One entry of {@linkcode PATTERN_ENTRIES}. */
export type PatternEntry = typeof PATTERN_ENTRIES[number];

/** The grid of an entry at `rows` rows of `L` steps, and the sink's length (one float per invocation). */
export function patternGrid(
  entry: PatternEntry,
  rows: number,
  L: number,
): { grid: [number, number]; sink: number } {
  if (L % PATTERN_STEPS !== 0 || rows < 1) {
    throw new ShapeError(
      "access_patterns",
      `rows ≥ 1 and L a multiple of ${PATTERN_STEPS}; got (${rows}, ${L})`,
    );
  }
  const chunks = L / PATTERN_STEPS;
  const grid: [number, number] = entry.startsWith("rows")
    ? [Math.ceil(rows / WG), chunks]
    : [Math.ceil((rows * chunks) / WG), 1];
  if (grid[0] > 65535) {
    throw new ShapeError("access_patterns", `${grid[0]} workgroups along x (at most 65535)`);
  }
  return { grid, sink: grid[0] * grid[1] * WG };
}

/** Bytes an entry moves: u and δ read, plus z read and y written for the `_out` entries. */
export function patternBytes(entry: PatternEntry, rows: number, L: number): number {
  return (entry.includes("out") ? 4 : 2) * rows * L * 4;
}

/** Records one dispatch of `entry`; `sink` holds at least {@linkcode patternGrid}'s `sink` floats. */
export function runPattern(
  entry: PatternEntry,
  rows: number,
  L: number,
  t: { u: Tensor; delta: Tensor; z: Tensor; y: Tensor; sink: Tensor },
): void {
  const { grid } = patternGrid(entry, rows, L);
  dispatch(
    { file: "access_patterns.wgsl", entry },
    [t.u.buffer, t.delta.buffer, t.z.buffer, t.y.buffer, t.sink.buffer],
    new Params().u32(rows, L / 4, grid[0], 0),
    grid,
  );
}

/**
 * Float64 twin of `entry`: y (the `_out` entries; untouched entries of y are left NaN) and the sink
 * (NaN where no invocation writes).
 */
export function patternRef(
  entry: PatternEntry,
  rows: number,
  L: number,
  u: ArrayLike<number>,
  delta: ArrayLike<number>,
  z: ArrayLike<number>,
): { y: Float64Array; sink: Float64Array } {
  const { grid, sink: sinkLen } = patternGrid(entry, rows, L);
  const chunks = L / PATTERN_STEPS;
  const nl4 = L / 4;
  const qv = PATTERN_STEPS / 4;
  const out = entry.includes("out");
  const y = new Float64Array(rows * L).fill(NaN);
  const sink = new Float64Array(sinkLen).fill(NaN);
  const acc = new Float64Array(4);
  if (entry.startsWith("flat")) {
    // Invocation g reads vec4 k·n + g, k < 32, n = rows · chunks.
    const n = rows * chunks;
    for (let g = 0; g < n; g++) {
      acc.fill(0);
      for (let k = 0; k < qv; k++) {
        const e = (k * n + g) * 4;
        for (let c = 0; c < 4; c++) {
          acc[c] += u[e + c] * delta[e + c];
          if (out) y[e + c] = acc[c] * z[e + c];
        }
      }
      sink[g] = acc[0] + acc[1] + acc[2] + acc[3];
    }
    return { y, sink };
  }
  for (let row = 0; row < rows; row++) {
    for (let ch = 0; ch < chunks; ch++) {
      const base = row * nl4 + ch * qv;
      acc.fill(0);
      // Two vec4 of steps at a time: acc ← acc + u·δ over both, then y of both from that acc.
      for (let k = 0; k < qv; k += 2) {
        for (let c = 0; c < 4; c++) {
          const e0 = (base + k) * 4 + c;
          acc[c] += u[e0] * delta[e0] + u[e0 + 4] * delta[e0 + 4];
          if (out) {
            y[e0] = acc[c] * z[e0];
            y[e0 + 4] = acc[c] * z[e0 + 4];
          }
        }
      }
      const g = entry.startsWith("rows") ? ch * grid[0] * WG + row : row * chunks + ch;
      sink[g] = acc[0] + acc[1] + acc[2] + acc[3];
    }
  }
  return { y, sink };
}
