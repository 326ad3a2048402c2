/**
 * `deno run -A bench/scan_arith.ts [--json FILE] [--groups G] [--steps S] [--quick] [--warm-ms MS] [--samples N]`:
 * the arithmetic floor of one walk of the selective-scan recurrence (issue #3), from the benchmark-only
 * kernel `kernels/scan_arith.wgsl`: G workgroups of 128 invocations (default 1,024, the grid of a chunk
 * pass at B4 L2048 D2048 N16), each walking S steps (default 128, the chunk Q) of 16 states with no memory
 * traffic, in every {@linkcode ARITH_MODES} (what a step costs: exponentials or not, B and C from
 * workgroup memory, y, softplus and silu). Prints JSON: per mode the GPU time (sustained, timestamp
 * medians) and state-steps per second. The module also holds the kernel's dispatch and its float64 twin
 * (tests/gpu/scan_arith_test.ts).
 *
 * @module
 */
import { ShapeError } from "../lib/errors.ts";
import { parseFlags } from "../lib/cli/args.ts";
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { dispatch, Params } from "../lib/gpu/commands.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { timeSustained, TIMING_FLAGS, timingOptions } from "./timing.ts";

/** Invocations per workgroup of the kernel. */
export const ARITH_WG = 128;

/**
 * The modes timed, as the kernel's MODE bits: decay (& 7: 0 δA, 1 exp2, 2 polynomial exp2, 3 half and
 * half), 8 B and C from workgroup memory with a barrier per 8 steps, 16 y formed, 32 softplus and silu.
 * 33 is chunk_state's arithmetic; 49 chunk_out's; 57 chunk_out's with its staging.
 */
export const ARITH_MODES = [0, 1, 2, 3, 16, 17, 18, 19, 9, 25, 33, 49, 51, 57] as const;

/** Records one dispatch of mode `mode`: `groups` workgroups, each invocation walking `steps` steps. */
export function runArith(mode: number, groups: number, steps: number, sink: Tensor): void {
  if (steps % 8 !== 0 || steps < 8 || groups < 1 || groups > 65535 || sink.size < groups * ARITH_WG) {
    throw new ShapeError(
      "scan_arith",
      `steps a positive multiple of 8, 1 … 65535 groups and a sink of ≥ groups · ${ARITH_WG} floats; ` +
        `got steps ${steps}, groups ${groups}, sink ${sink.size}`,
    );
  }
  dispatch(
    { file: "scan_arith.wgsl", entry: "main", constants: { MODE: mode } },
    [sink.buffer],
    new Params().u32(steps, 0, 0, 0),
    [groups],
  );
}

/** 2^x for x ≤ 0 as the kernel's exp2p: 2^round(x) times the degree-6 Taylor polynomial of 2^f. */
function exp2p(x: number): number {
  const xc = Math.max(x, -125);
  const n = Math.round(xc);
  const f = xc - n;
  let q = f * 1.540353e-4 + 1.3333558e-3;
  for (const c of [9.6181291e-3, 5.5504109e-2, 2.4022651e-1, 6.9314718e-1, 1]) q = q * f + c;
  return q * 2 ** n;
}

/** Float64 twin of the kernel: the sink value of every invocation. */
export function arithRef(mode: number, groups: number, steps: number): Float64Array {
  const out = new Float64Array(groups * ARITH_WG);
  const wgm = (mode & 8) !== 0, withY = (mode & 16) !== 0, trans = (mode & 32) !== 0;
  const m = mode & 7;
  const f32 = Math.fround;
  // The registers of invocation g: rates a[k][i] of state 4k + i, and the four vec4 of b.
  const regs = (g: number) => {
    const s = f32((g & 1023) * f32(1e-4));
    const a0 = [1, 2, 3, 4].map((v) => -v - s);
    const a = [a0, a0.map((v) => v - 4), a0.map((v) => v - 8), a0.map((v) => v - 12)];
    const b0 = [0.1, 0.2, 0.3, 0.4].map((v) => f32(v) + s);
    const b = [b0, b0.map((v) => v + 0.5), b0.map((v) => v - 0.5), b0.map((v) => v * 0.5)];
    return { s, a, b };
  };
  const decay = (x: number, k: number) => m === 0 ? x : m === 1 || (m === 3 && k >= 2) ? 2 ** x : exp2p(x);
  for (let wg = 0; wg < groups; wg++) {
    // The stages: bs[li] = b0 + li, bs[li + 128] = b1 − li, cs[li] = b2 · li, cs[li + 128] = b3 + li.
    const bs: number[][] = [], cs: number[][] = [];
    for (let li = 0; li < ARITH_WG; li++) {
      const { b } = regs(wg * ARITH_WG + li);
      bs[li] = b[0].map((v) => v + li);
      cs[li] = b[2].map((v) => v * li);
    }
    for (let li = 0; li < ARITH_WG; li++) {
      const g = wg * ARITH_WG + li;
      const { s, a, b } = regs(g);
      const x = [0, 1, 2, 3].map(() => [0, 0, 0, 0]);
      let dt = 0.01 + s;
      let yacc = 0;
      for (let t = 0; t < steps; t++) {
        dt = dt * 0.999 + 0.00002;
        const dte = trans ? (dt > 20 ? dt : Math.log(1 + Math.exp(dt))) : dt;
        const du = dte * 0.5 + s;
        const j = (t & 31) * 4;
        const e = wgm ? [bs[j], bs[j + 1], bs[j + 2], bs[j + 3]] : b;
        const c = wgm ? [cs[j], cs[j + 1], cs[j + 2], cs[j + 3]] : [b[2], b[3], b[0], b[1]];
        let yt = 0;
        for (let k = 0; k < 4; k++) {
          for (let i = 0; i < 4; i++) {
            x[k][i] = decay(dte * a[k][i], k) * x[k][i] + du * e[k][i];
            yt += x[k][i] * c[k][i];
          }
        }
        if (withY) {
          if (trans) yt *= (dt - 0.5) / (1 + Math.exp(-(dt - 0.5)));
          yacc += yt;
        }
      }
      out[g] = x.flat().reduce((p, v) => p + v, 0) + yacc;
    }
  }
  return out;
}

if (import.meta.main) {
  const flags = parseFlags("scan_arith", Deno.args, {
    json: "string",
    groups: "number",
    steps: "number",
    ...TIMING_FLAGS,
  });
  const opts = timingOptions(flags);
  const ctx = await initGpu();
  const groups = (flags.groups as number | undefined) ?? 1024;
  const steps = (flags.steps as number | undefined) ?? 128;
  using sink = Tensor.empty([groups * ARITH_WG]);
  const stateSteps = groups * ARITH_WG * steps * 16;
  const modes = [];
  for (const mode of ARITH_MODES) {
    const t = await timeSustained(() => runArith(mode, groups, steps, sink), opts);
    modes.push({
      mode,
      us: +(t.ms * 1000).toFixed(2),
      g_state_steps_per_s: +(stateSteps / t.ms / 1e6).toFixed(0),
    });
  }
  const json = JSON.stringify({ adapter: adapterName(ctx), groups, steps, modes }, null, 2) + "\n";
  if (typeof flags.json === "string") await Deno.writeTextFile(flags.json, json);
  else console.log(json);
}
