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
import { type Binding, dispatch, Params } from "../lib/gpu/commands.ts";
import { dummyBuffer } from "../lib/gpu/buffers.ts";
import { selectiveScan, type SelectiveScanInputs } from "../lib/ssm/selective_scan.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { timeSustained } from "./timing.ts";
import { randomArray } from "../tests/_assert.ts";

const flags = parseFlags("scan_walk", Deno.args, { check: "boolean", quick: "boolean" });
await initGpu();

const FLAGS = { D: 1, Z: 2, BIAS: 4, SOFTPLUS: 8, H0: 16 };

function walkForward(
  inp: SelectiveScanInputs,
  h0: Tensor | undefined,
  S: number,
  T: number,
): { y: Tensor; lastState: Tensor } {
  const [batch, D, L] = inp.u.shape;
  const N = inp.A.shape[1];
  const G = inp.B.shape.length === 4 ? inp.B.shape[1] : 1;
  const R = 128 / (N / S);
  if ((D / G) % R !== 0) throw new Error(`D/G = ${D / G} is not a multiple of R = ${R}`);
  const y = Tensor.empty([batch, D, L]);
  const lastState = Tensor.empty([batch, D, N]);
  const opt = (t?: Tensor) => t ? t.buffer : dummyBuffer();
  const bufs: (Binding | null)[] = [inp.u.buffer, inp.delta.buffer, inp.A.buffer, inp.B.buffer, inp.C.buffer];
  bufs.push(opt(inp.D), opt(inp.z), opt(inp.deltaBias), null, null, y.buffer, opt(h0), lastState.buffer);
  const f = (inp.D ? FLAGS.D : 0) | (inp.z ? FLAGS.Z : 0) | (inp.deltaBias ? FLAGS.BIAS : 0) |
    FLAGS.SOFTPLUS |
    (h0 ? FLAGS.H0 : 0);
  const p = new Params().u32(batch, D, L, N, G, 0, 0, 0, 0, f, 0, 0, 0);
  dispatch({ file: "selective_scan_walk.wgsl", entry: "walk", constants: { S, T, NS: N } }, bufs, p, [
    Math.ceil(D / R),
    batch,
  ]);
  return { y, lastState };
}

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
const CONFIGS: [number, number][] = [[2, 8], [4, 8], [1, 8], [2, 4], [4, 4], [2, 16]];

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
      if (N % S !== 0 || (N / S) > 128 || (128 / (N / S)) * T > 256 || N * T > 256) continue;
      if ((D / G) % (128 / (N / S)) !== 0) continue;
      const w = walkForward(inp, h0, S, T);
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
    if ((128 / (N / S)) * T > 256 || N * T > 256) continue;
    const t = await timeSustained(run(() => walkForward(inp, undefined, S, T)), opts);
    const w = walkForward(inp, undefined, S, T);
    const wy = await w.y.toArray();
    let dy = 0;
    for (let i = 0; i < ry.length; i++) dy = Math.max(dy, Math.abs(ry[i] - wy[i]));
    console.log(JSON.stringify({ shape: `B${B}_L${L}_D${D}_N${N}`, variant: "walk", S, T, ms: t.ms, dy }));
  }
}
