/**
 * GPU timings of the Mamba kernels at research sizes (issue: Mamba kernels), with effective memory
 * bandwidth: the bytes each op must move at least (inputs read once, outputs written once) over its
 * GPU time. PyTorch's figures come from bench/pytorch_ssm.py in the same run.
 *
 * @module
 */
import { SCAN_CHUNK, selectiveScan, selectiveScanBackward } from "../lib/ssm/selective_scan.ts";
import { ssdBackward, ssdChunked } from "../lib/ssm/ssd.ts";
import { Rng } from "../lib/random.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import type { Timing } from "./timing.ts";

/** One benchmark row: the timing, and the least bytes the op moves over its median time. */
export type SsmResult = { name: string; bytes: number; gb_per_s: number } & Timing;

/** One kernel call to time: its name, the least bytes it moves, and the call (records GPU work only). */
export interface SsmWorkload {
  name: string;
  bytes: number;
  run: () => void;
}

function random(shape: number[], rng: Rng, lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(Float32Array.from({ length: n }, () => rng.uniformRange(lo, hi)), shape);
}

/**
 * The four workloads (selective scan and SSD, forward and backward) on random inputs, at research
 * sizes (Mamba-1: B4 L2048 D2048 N16; SSD: B4 L2048 H32 P64 N64, chunk 64) or small ones for `quick`.
 * Dispose the returned stack to free the inputs.
 */
export function ssmWorkloads(quick: boolean): { workloads: SsmWorkload[]; inputs: DisposableStack } {
  const inputs = new DisposableStack();
  const rng = new Rng(0);
  const rand = (shape: number[], lo = -1, hi = 1) => inputs.use(random(shape, rng, lo, hi));
  const workloads: SsmWorkload[] = [];
  {
    const [B, L, D, N] = quick ? [1, 256, 256, 16] : [4, 2048, 2048, 16];
    const [u, delta, z, dy] = [rand([B, D, L]), rand([B, D, L]), rand([B, D, L]), rand([B, D, L])];
    const inp = { u, delta, z, A: rand([D, N], -1.5, -0.5), B: rand([B, N, L]), C: rand([B, N, L]) };
    const full = { ...inp, D: rand([D]), deltaBias: rand([D]) };
    const tag = `B${B}_L${L}_D${D}_N${N}`;
    // reads u, δ, z (B, D, L) and B, C (B, N, L); writes y (B, D, L)
    const fwdBytes = (4 * B * D * L + 2 * B * N * L) * 4;
    workloads.push({
      name: `selective_scan_fwd_${tag}`,
      bytes: fwdBytes,
      run: () => {
        const r = selectiveScan(full, { deltaSoftplus: true });
        r.y.dispose();
        r.lastState.dispose();
      },
    }, {
      // the same forward in the three chunk passes (the one-pass walk above is the default at these sizes)
      name: `selective_scan_three_pass_fwd_${tag}`,
      bytes: fwdBytes,
      run: () => {
        const r = selectiveScan(full, { deltaSoftplus: true, chunkLength: SCAN_CHUNK });
        r.y.dispose();
        r.lastState.dispose();
      },
    }, {
      name: `selective_scan_bwd_${tag}`,
      // reads the forward's inputs and dy, writes a gradient of each
      bytes: (5 * B * D * L + 2 * B * N * L + 4 * B * D * L + 2 * B * N * L) * 4,
      run: () => {
        const g = selectiveScanBackward(full, dy, { deltaSoftplus: true });
        for (const t of Object.values(g)) t?.dispose();
      },
    });
  }
  {
    const [B, L, H, P, N] = quick ? [1, 256, 4, 64, 64] : [4, 2048, 32, 64, 64];
    const inp = {
      X: rand([B, L, H, P]),
      A: rand([B, L, H], -0.1, 0),
      B: rand([B, L, H, N]),
      C: rand([B, L, H, N]),
    };
    const dY = rand([B, L, H, P]);
    const tag = `B${B}_L${L}_H${H}_P${P}_N${N}_Q64`;
    // forward: reads X, A, B, C, writes Y; backward: twice that (dY in, a gradient of each out)
    const bytes = (2 * B * L * H * P + 2 * B * L * H * N + B * L * H) * 4;
    workloads.push({
      name: `ssd_fwd_${tag}`,
      bytes,
      run: () => {
        const r = ssdChunked(inp, { blockLen: 64 });
        r.Y.dispose();
        r.finalState.dispose();
      },
    }, {
      name: `ssd_bwd_${tag}`,
      bytes: 2 * bytes,
      run: () => {
        const g = ssdBackward(inp, dY, { blockLen: 64 });
        for (const t of Object.values(g)) t?.dispose();
      },
    });
  }
  return { workloads, inputs };
}

/** Times the selective scan and SSD forward and backward; `time` measures GPU time per call. */
export async function benchSsm(
  time: (fn: () => void) => Promise<Timing>,
  quick: boolean,
): Promise<SsmResult[]> {
  const { workloads, inputs } = ssmWorkloads(quick);
  using _ = inputs;
  const out: SsmResult[] = [];
  for (const w of workloads) {
    const t = await time(w.run);
    out.push({ name: w.name, bytes: w.bytes, gb_per_s: w.bytes / (t.ms / 1e3) / 1e9, ...t });
  }
  return out;
}
