/**
 * Small helpers shared by the op wrappers: 1-D launches over n elements (spread over grid y past the
 * 65535-workgroup limit) and one-workgroup-per-row launches.
 *
 * @module
 */
import { type Binding, dispatch, groupsFor, Params } from "../gpu/commands.ts";
import type { KernelSpec } from "../gpu/pipelines.ts";

/**
 * Dispatches `spec` with one invocation per element for `n` elements (workgroups of 256). The kernel
 * reads `p.n` and `p.row` (elements per grid row) as its first two parameters, then `extra`.
 */
export function launchElements(spec: KernelSpec, buffers: Binding[], n: number, extra: number[] = []): void {
  const [gx, gy] = groupsFor(n, 256);
  dispatch(spec, buffers, new Params().u32(n, gx * 256, ...extra), [gx, gy]);
}

/** Grid for one workgroup per row: (x, y) with `yrow` rows per grid row. */
export function rowGrid(rows: number): { groups: [number, number]; yrow: number } {
  const [gx, gy] = groupsFor(rows, 1);
  return { groups: [gx, gy], yrow: gx };
}
