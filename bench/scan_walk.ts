/**
 * `deno run -A bench/scan_walk.ts [--check] [--quick]`: launch choices of the one-pass forward
 * `kernels/selective_scan_walk.wgsl` (S states per invocation, T steps per stage; the library runs S = 2
 * at N = 16, T = 8) against the three-pass forward. `--check`: small ragged shapes with every option, max
 * |difference| of y and the last state per (S, T) from the three passes. Otherwise: GPU time at B4 L2048
 * D2048 N16 per (S, T), the three passes in the same run. One JSON line per row.
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { initGpu } from "../lib/gpu/device.ts";
import {
  type ScanTuning,
  selectiveScan,
  type SelectiveScanInputs,
  walkForwardFits,
} from "../lib/ssm/selective_scan.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { timeSustained } from "./timing.ts";
import { randomArray } from "../tests/_assert.ts";

const flags = parseFlags("scan_walk", Deno.args, { check: "boolean", quick: "boolean" });
await initGpu();

let seed = 0;
const rand = (...shape: number[]) => Tensor.from(randomArray(shape.reduce((a, b) => a * b), ++seed), shape);
function inputs(B: number, D: number, L: number, N: number, G: number): SelectiveScanInputs {
  const bc = G > 1 ? [B, G, N, L] : [B, N, L];
  return {
    u: rand(B, D, L),
    delta: rand(B, D, L),
    z: rand(B, D, L),
    A: Tensor.from(randomArray(D * N, 99, 0.5).map((v) => v - 1), [D, N]),
    B: rand(...bc),
    C: rand(...bc),
    D: rand(D),
    deltaBias: rand(D),
  };
}
// [S, T]
const CONFIGS: [1 | 2 | 4, 4 | 8 | 16][] = [[2, 8], [4, 8], [1, 8], [2, 4], [4, 4], [2, 16]];
const launch = ([S, T]: [1 | 2 | 4, 4 | 8 | 16]): ScanTuning => ({ walkStates: S, walkSteps: T });

if (flags.check) {
  for (
    const [B, D, L, N, G, withH0] of [[2, 64, 37, 16, 2, true], [1, 32, 100, 16, 1, false], [
      2,
      64,
      64,
      8,
      2,
      true,
    ]] as const
  ) {
    const inp = inputs(B, D, L, N, G);
    const h0 = withH0 ? rand(B, D, N) : undefined;
    const ref = selectiveScan(inp, { deltaSoftplus: true, initialState: h0, chunkLength: 128 });
    const ry = await ref.y.toArray(), rl = await ref.lastState.toArray();
    for (const [S, T] of CONFIGS) {
      if (!walkForwardFits(N, D, G, launch([S, T]))) continue;
      const w = selectiveScan(inp, { deltaSoftplus: true, initialState: h0 }, launch([S, T]));
      const wy = await w.y.toArray(), wl = await w.lastState.toArray();
      let dy = 0, dl = 0, my = 0;
      for (let i = 0; i < ry.length; i++) {
        dy = Math.max(dy, Math.abs(ry[i] - wy[i]));
        my = Math.max(my, Math.abs(ry[i]));
      }
      for (let i = 0; i < rl.length; i++) dl = Math.max(dl, Math.abs(rl[i] - wl[i]));
      console.log(
        JSON.stringify({ shape: `B${B}_D${D}_L${L}_N${N}_G${G}`, h0: withH0, S, T, dy, dl, max_y: my }),
      );
    }
  }
} else {
  const [B, L, D, N] = flags.quick ? [1, 256, 256, 16] : [4, 2048, 2048, 16];
  const inp = inputs(B, D, L, N, 1);
  const opts = { warmMs: 300, sampleMs: 10, samples: 5, singles: 1 };
  const run = (f: () => { y: Tensor; lastState: Tensor }) => () => {
    const r = f();
    r.y.dispose();
    r.lastState.dispose();
  };
  const three = await timeSustained(
    run(() => selectiveScan(inp, { deltaSoftplus: true, chunkLength: 128 })),
    opts,
  );
  console.log(JSON.stringify({ shape: `B${B}_L${L}_D${D}_N${N}`, variant: "three passes", ms: three.ms }));
  const ref = selectiveScan(inp, { deltaSoftplus: true, chunkLength: 128 });
  const ry = await ref.y.toArray();
  for (const [S, T] of CONFIGS) {
    if (!walkForwardFits(N, D, 1, launch([S, T]))) continue;
    const w = selectiveScan(inp, { deltaSoftplus: true }, launch([S, T]));
    const t = await timeSustained(
      run(() => selectiveScan(inp, { deltaSoftplus: true }, launch([S, T]))),
      opts,
    );
    const wy = await w.y.toArray();
    let dy = 0;
    for (let i = 0; i < ry.length; i++) dy = Math.max(dy, Math.abs(ry[i] - wy[i]));
    console.log(JSON.stringify({ shape: `B${B}_L${L}_D${D}_N${N}`, variant: "walk", S, T, ms: t.ms, dy }));
  }
}
