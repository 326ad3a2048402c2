/**
 * GPU timings of causal GQA attention prefill (issue #8): the fused FlashAttention-2 kernels
 * (`lib/tensor/flash_attention.ts`) forward and forward + backward at Llama-3.2-1B head shapes
 * (H_q 32, H_kv 8, P 64) and brown-llama-6m's (8, 4, 32), B = 1..8, L = 256..4096; beside them the
 * materialising path (matmul + causal softmax + matmul, probabilities (B, H_q, L, L) stored) where its
 * probabilities fit one binding. PyTorch's figures come from bench/pytorch_attention.py.
 *
 * FLOPs: the forward's two products QKᵀ and PV cost 4·B·H_q·L²·P, halved by the causal mask; the
 * backward's five products 2.5× that (FlashAttention-2's count), so forward + backward is 3.5×.
 *
 * `deno run -A --cached-only bench/attention.ts [--quick] [--tiles] [--train] [--decode]` prints the
 * rows as JSON lines; `--tiles` adds a sweep of the fused kernels' tiles at one shape (for tuning
 * `flashTile`), `--train` the autograd op at B = 8, L = 2048 (1B heads), `--decode` decode-step shapes.
 *
 * @module
 */
import { GradTape } from "../lib/autograd/tape.ts";
import { attention as attentionOp } from "../lib/autograd/ops.ts";
import { gpu, initGpu } from "../lib/gpu/device.ts";
import { Rng } from "../lib/random.ts";
import {
  flashAttention,
  flashAttentionBackward,
  type FlashTile,
  flashTile,
  flashTileFits,
} from "../lib/tensor/flash_attention.ts";
import { attention, attentionBackward } from "../lib/tensor/attention.ts";
import { Tensor } from "../lib/tensor/tensor.ts";
import { FULL, QUICK, timeSustained, type Timing } from "./timing.ts";

/** One benchmark row. */
export type AttentionBenchResult = {
  /** e.g. `attention_fused_fwd_B8_L2048_Hq32_Hkv8_P64`. */
  name: string;
  path: "fused" | "materialised";
  pass: "fwd" | "fwdbwd";
  B: number;
  L: number;
  Hq: number;
  Hkv: number;
  P: number;
  /** Causal FLOPs per call (see the module doc). */
  flops: number;
  tflop_per_s: number;
  tokens_per_s: number;
  /** Tiles used by the fused kernels (forward, dq, dkv). */
  tiles?: string;
} & Timing;

/** Head shapes timed: Llama-3.2-1B's and brown-llama-6m's. */
export const ATTENTION_SHAPES: { label: string; Hq: number; Hkv: number; P: number }[] = [
  { label: "llama-3.2-1b", Hq: 32, Hkv: 8, P: 64 },
  { label: "brown-llama-6m", Hq: 8, Hkv: 4, P: 32 },
];

function random(shape: number[], rng: Rng): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(Float32Array.from({ length: n }, () => rng.uniformRange(-1, 1)), shape);
}

const tileName = (
  t: FlashTile | null,
) => (t ? `${t.tx}x${t.ty}${t.pf === false ? "-nopf" : ""}` : "none");

/** Causal forward FLOPs of attention over (B, L) with H_q heads of dim P. */
export function attentionFlops(B: number, L: number, Hq: number, P: number): number {
  return (4 * B * Hq * L * L * P) / 2;
}

/**
 * Times fused (and, where the probabilities fit one binding, materialising) attention prefill forward
 * and forward + backward; `time` measures GPU time per call. `quick`: B ∈ {1, 8}; otherwise
 * B ∈ {1, 2, 4, 8}; L = 256 … 4096 either way.
 */
export async function benchAttention(
  time: (fn: () => void) => Promise<Timing>,
  quick: boolean,
  opts: {
    batches?: number[];
    lengths?: number[];
    materialised?: boolean;
    onRow?: (r: AttentionBenchResult) => void;
  } = {},
): Promise<AttentionBenchResult[]> {
  const batches = opts.batches ?? (quick ? [1, 8] : [1, 2, 4, 8]);
  // the shapes first (a run cut short by a time limit keeps them)
  const lengths = opts.lengths ?? [2048, 4096, 1024, 512, 256];
  const out: AttentionBenchResult[] = [];
  const rng = new Rng(0);
  for (const L of lengths) {
    for (const s of ATTENTION_SHAPES) {
      const { Hq, Hkv, P } = s;
      const tiles = ["forward", "dq", "dkv"].map((k) => tileName(flashTile(k as "forward", P))).join(",");
      for (const B of batches) {
        using q = random([B, L, Hq, P], rng);
        using k = random([B, L, Hkv, P], rng);
        using v = random([B, L, Hkv, P], rng);
        using dO = random([B, L, Hq, P], rng);
        const fwdFlops = attentionFlops(B, L, Hq, P);
        const row = (path: "fused" | "materialised", pass: "fwd" | "fwdbwd", t: Timing) => {
          const flops = pass === "fwd" ? fwdFlops : 3.5 * fwdFlops;
          const r: AttentionBenchResult = {
            name: `attention_${path}_${pass}_B${B}_L${L}_Hq${Hq}_Hkv${Hkv}_P${P}`,
            path,
            pass,
            B,
            L,
            Hq,
            Hkv,
            P,
            flops,
            tflop_per_s: flops / (t.ms / 1e3) / 1e12,
            tokens_per_s: (B * L) / (t.ms / 1e3),
            tiles: path === "fused" ? tiles : undefined,
            ...t,
          };
          out.push(r);
          opts.onRow?.(r);
        };
        row(
          "fused",
          "fwd",
          await time(() => {
            const r = flashAttention(q, k, v);
            r.out.dispose();
            r.lse.dispose();
          }),
        );
        row(
          "fused",
          "fwdbwd",
          await time(() => {
            const r = flashAttention(q, k, v);
            const g = flashAttentionBackward(q, k, v, r.out, r.lse, dO);
            for (const t of [r.out, r.lse, g.dq, g.dk, g.dv]) t.dispose();
          }),
        );
        const probsBytes = 4 * B * Hq * L * L;
        if ((opts.materialised ?? true) && 2 * probsBytes <= gpu().maxBindingBytes && B * L <= 8192) {
          row(
            "materialised",
            "fwd",
            await time(() => {
              const r = attention(q, k, v, { returnProbs: true });
              r.out.dispose();
              r.probs!.dispose();
            }),
          );
          row(
            "materialised",
            "fwdbwd",
            await time(() => {
              const r = attention(q, k, v, { returnProbs: true });
              const g = attentionBackward(q, k, v, r.probs!, dO);
              for (const t of [r.out, r.probs!, g.dq, g.dk, g.dv]) t.dispose();
            }),
          );
        }
      }
    }
  }
  return out;
}

/** One row of the tile sweep: the kernel, its tile and its time at one shape. */
export type TileSweepResult = { kernel: string; tile: string; B: number; L: number; P: number } & Timing;

/**
 * Times each fitting tile of the three fused kernels at one shape (forward alone; dq and dkv as the
 * backward with the other kernel at its default tile), for choosing `flashTile`'s order.
 */
export async function benchAttentionTiles(
  time: (fn: () => void) => Promise<Timing>,
  shape = { B: 1, L: 2048, Hq: 32, Hkv: 8, P: 64 },
): Promise<TileSweepResult[]> {
  const { B, L, Hq, Hkv, P } = shape;
  const rng = new Rng(1);
  using q = random([B, L, Hq, P], rng);
  using k = random([B, L, Hkv, P], rng);
  using v = random([B, L, Hkv, P], rng);
  using dO = random([B, L, Hq, P], rng);
  const f = flashAttention(q, k, v);
  using _o = f.out;
  using _l = f.lse;
  const candidates: FlashTile[] = [
    [8, 16],
    [8, 8],
    [4, 16],
    [4, 32],
    [16, 8],
    [16, 4],
    [8, 32],
    [4, 8],
    [8, 4],
  ].map(([tx, ty]) => ({ tx, ty }));
  // without the register prefetch of the next block, for the first three candidates
  candidates.push(...candidates.slice(0, 3).map((t) => ({ ...t, pf: false })));
  const out: TileSweepResult[] = [];
  for (const kernel of ["forward", "dq", "dkv"] as const) {
    for (const t of candidates) {
      if (!flashTileFits(kernel, P, t) || t.tx * t.ty < 32) continue;
      const tiles = { [kernel]: t };
      const timing = kernel === "forward"
        ? await time(() => {
          const r = flashAttention(q, k, v, { tiles });
          r.out.dispose();
          r.lse.dispose();
        })
        : await time(() => {
          const g = flashAttentionBackward(q, k, v, f.out, f.lse, dO, { tiles });
          for (const x of [g.dq, g.dk, g.dv]) x.dispose();
        });
      out.push({ kernel, tile: tileName(t), B, L, P, ...timing });
    }
  }
  // The backward with the GQA group in one workgroup or split over query heads, at B = 1 and 8.
  for (const Bs of [1, 8]) {
    using q2 = random([Bs, L, Hq, P], rng);
    using k2 = random([Bs, L, Hkv, P], rng);
    using v2 = random([Bs, L, Hkv, P], rng);
    using d2 = random([Bs, L, Hq, P], rng);
    const f2 = flashAttention(q2, k2, v2);
    for (const splitHeads of [false, true]) {
      const timing = await time(() => {
        const g = flashAttentionBackward(q2, k2, v2, f2.out, f2.lse, d2, { splitHeads });
        for (const x of [g.dq, g.dk, g.dv]) x.dispose();
      });
      out.push({ kernel: `backward_split_${splitHeads}`, tile: "default", B: Bs, L, P, ...timing });
    }
    f2.out.dispose();
    f2.lse.dispose();
  }
  return out;
}

/** One decode-step row: L new queries after S − L cached positions (capacity 4096). */
export type DecodeBenchResult = {
  name: string;
  path: "fused" | "materialised";
  B: number;
  L: number;
  S: number;
  Hq: number;
  Hkv: number;
  P: number;
} & Timing;

/**
 * Decoding-shaped attention (B = 1; L = 1 and 16 queries after a KV cache of S = 512 or 4096
 * positions) through the fused kernel and the materialising path, for choosing which one
 * `attention()` takes at small L.
 */
export async function benchAttentionDecode(
  time: (fn: () => void) => Promise<Timing>,
): Promise<DecodeBenchResult[]> {
  const out: DecodeBenchResult[] = [];
  const rng = new Rng(3);
  const cap = 4096;
  for (const { Hq, Hkv, P } of ATTENTION_SHAPES) {
    const B = 1;
    using k = random([B, cap, Hkv, P], rng);
    using v = random([B, cap, Hkv, P], rng);
    for (const L of [1, 16]) {
      using q = random([B, L, Hq, P], rng);
      for (const S of [512, 4096]) {
        const fused = await time(() => {
          const r = flashAttention(q, k, v, { keyLength: S });
          r.out.dispose();
          r.lse.dispose();
        });
        const mat = await time(() => {
          const r = attention(q, k, v, { keyLength: S, returnProbs: true });
          r.out.dispose();
          r.probs!.dispose();
        });
        for (const [path, t] of [["fused", fused], ["materialised", mat]] as const) {
          out.push({
            name: `attention_decode_${path}_B${B}_L${L}_S${S}_Hq${Hq}_Hkv${Hkv}_P${P}`,
            path,
            B,
            L,
            S,
            Hq,
            Hkv,
            P,
            ...t,
          });
        }
      }
    }
  }
  return out;
}

/** A training-shaped check that the autograd op runs the fused path at 1B shapes (no 4 GiB probs). */
export async function benchAttentionTrainStep(
  time: (fn: () => void) => Promise<Timing>,
  B = 8,
  L = 2048,
): Promise<AttentionBenchResult> {
  const { Hq, Hkv, P } = ATTENTION_SHAPES[0];
  const rng = new Rng(2);
  const [q, k, v] = [random([B, L, Hq, P], rng), random([B, L, Hkv, P], rng), random([B, L, Hkv, P], rng)];
  using dO = random([B, L, Hq, P], rng);
  for (const t of [q, k, v]) t.requiresGrad = true;
  const t = await time(() => {
    using tape = new GradTape();
    const r = tape.run(() => attentionOp(q, k, v));
    tape.backward(r.out, dO);
    r.out.dispose();
    for (const x of [q, k, v]) {
      x.grad?.dispose();
      x.grad = null;
    }
  });
  for (const x of [q, k, v]) x.dispose();
  const flops = 3.5 * attentionFlops(B, L, Hq, P);
  return {
    name: `attention_autograd_fwdbwd_B${B}_L${L}_Hq${Hq}_Hkv${Hkv}_P${P}`,
    path: "fused",
    pass: "fwdbwd",
    B,
    L,
    Hq,
    Hkv,
    P,
    flops,
    tflop_per_s: flops / (t.ms / 1e3) / 1e12,
    tokens_per_s: (B * L) / (t.ms / 1e3),
    ...t,
  };
}

if (import.meta.main) {
  // Rows are printed as JSON lines as they finish (a run cut short keeps what it measured).
  const quick = Deno.args.includes("--quick");
  await initGpu();
  const o = quick ? QUICK : FULL;
  const time = (fn: () => void) => timeSustained(fn, o);
  const print = (kind: string, r: object) => console.log(JSON.stringify({ kind, ...r }));
  print("header", { device: gpu().info, method: o });
  if (Deno.args.includes("--tiles")) { for (const r of await benchAttentionTiles(time)) print("tile", r); }
  if (Deno.args.includes("--train")) print("train_step", await benchAttentionTrainStep(time));
  if (Deno.args.includes("--decode")) {
    for (const r of await benchAttentionDecode(time)) print("decode", r);
  }
  await benchAttention(time, quick, { onRow: (r) => print("row", r) });
}
