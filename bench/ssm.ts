/**
 * GPU timings of the Mamba kernels at research sizes (issue: Mamba kernels), with effective memory
 * bandwidth: the bytes each op must move at least (inputs read once, outputs written once) over its
 * GPU time. PyTorch's figures come from bench/pytorch_ssm.py in the same run.
 *
 * @module
 */
import { selectiveScan, selectiveScanBackward } from "../lib/ssm/selective_scan.ts";
import { ssdBackward, ssdChunked } from "../lib/ssm/ssd.ts";
import { Rng } from "../lib/random.ts";
import { Tensor } from "../lib/tensor/tensor.ts";

/** One benchmark row. */
export type SsmResult = {
  name: string;
  ms: number;
  gb_per_s?: number;
};

function random(shape: number[], rng: Rng, lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(Float32Array.from({ length: n }, () => rng.uniformRange(lo, hi)), shape);
}

/** Times the selective scan and SSD forward and backward; `time` is a GPU-timestamp median. */
export async function benchSsm(
  time: (fn: () => void) => Promise<number>,
  quick: boolean,
): Promise<SsmResult[]> {
  const out: SsmResult[] = [];
  const rng = new Rng(0);
  {
    const [B, L, D, N] = quick ? [1, 256, 256, 16] : [4, 2048, 2048, 16];
    using u = random([B, D, L], rng);
    using delta = random([B, D, L], rng);
    using z = random([B, D, L], rng);
    using A = random([D, N], rng, -1.5, -0.5);
    using Bm = random([B, N, L], rng);
    using Cm = random([B, N, L], rng);
    using Dv = random([D], rng);
    using bias = random([D], rng);
    using dy = random([B, D, L], rng);
    const inp = { u, delta, A, B: Bm, C: Cm, D: Dv, z, deltaBias: bias };
    const fwdBytes = (4 * B * D * L + 2 * B * N * L) * 4;
    const tag = `B${B}_L${L}_D${D}_N${N}`;
    const fwd = await time(() => {
      const r = selectiveScan(inp, { deltaSoftplus: true });
      r.y.dispose();
      r.lastState.dispose();
    });
    out.push({ name: `selective_scan_fwd_${tag}`, ms: fwd, gb_per_s: fwdBytes / (fwd / 1e3) / 1e9 });
    const bwd = await time(() => {
      const g = selectiveScanBackward(inp, dy, { deltaSoftplus: true });
      for (const t of Object.values(g)) t?.dispose();
    });
    // backward: reads the forward's inputs and dy, writes a gradient of each
    const bwdBytes = (5 * B * D * L + 2 * B * N * L + 4 * B * D * L + 2 * B * N * L) * 4;
    out.push({ name: `selective_scan_bwd_${tag}`, ms: bwd, gb_per_s: bwdBytes / (bwd / 1e3) / 1e9 });
  }
  {
    const [B, L, H, P, N] = quick ? [1, 256, 4, 64, 64] : [4, 2048, 32, 64, 64];
    using X = random([B, L, H, P], rng);
    using A = random([B, L, H], rng, -0.1, 0);
    using Bs = random([B, L, H, N], rng);
    using Cs = random([B, L, H, N], rng);
    using dY = random([B, L, H, P], rng);
    const inp = { X, A, B: Bs, C: Cs };
    const tag = `B${B}_L${L}_H${H}_P${P}_N${N}_Q64`;
    const bytes = (2 * B * L * H * P + 2 * B * L * H * N + B * L * H) * 4;
    const fwd = await time(() => {
      const r = ssdChunked(inp, { blockLen: 64 });
      r.Y.dispose();
      r.finalState.dispose();
    });
    out.push({ name: `ssd_fwd_${tag}`, ms: fwd, gb_per_s: bytes / (fwd / 1e3) / 1e9 });
    const bwd = await time(() => {
      const g = ssdBackward(inp, dY, { blockLen: 64 });
      for (const t of Object.values(g)) t?.dispose();
    });
    out.push({ name: `ssd_bwd_${tag}`, ms: bwd, gb_per_s: 2 * bytes / (bwd / 1e3) / 1e9 });
  }
  return out;
}
