/**
 * GPU timings of causal GQA attention (issue #8): the fused FlashAttention-2 kernels
 * (`lib/tensor/flash_attention.ts`) forward and forward + backward at Llama-3.2-1B head shapes
 * (H_q 32, H_kv 8, P 64) and brown-llama-6m's (8, 4, 32), B = 1..8, L = 256..4096; beside them the
 * materialising path (matmul + causal softmax + matmul, probabilities (B, H_q, L, L) stored) where its
 * probabilities fit one binding. Then, time permitting: a sweep of the fused kernels' tiles and of the
 * backward's GQA head split at one shape (for tuning `flashTile`), decode-step shapes through both
 * paths (for `FUSED_MIN_QUERIES`), and the autograd op at B = 8, L = 2048 with 1B heads (the shape
 * whose 4 GiB probabilities per layer the materialising path cannot hold). PyTorch's figures come
 * from bench/pytorch_attention.py.
 *
 * FLOPs: the forward's two products QKᵀ and PV cost 4·B·H_q·L²·P, halved by the causal mask; the
 * backward's five products 2.5× that (FlashAttention-2's count; the fused backward recomputes QKᵀ and
 * dO·Vᵀ in both of its kernels, so it does 7/5 of that work), so forward + backward is 3.5×.
 *
 * `deno run -A --cached-only bench/attention.ts [--quick]` prints the rows as JSON lines.
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
import { readTensors, Tensor } from "../lib/tensor/tensor.ts";
import { FULL, QUICK, timeSustained, type Timing } from "./timing.ts";

/** One benchmark row (prefill, tile sweep, decode or autograd). */
export type AttentionBenchResult = {
  /** e.g. `attention_fused_fwd_B8_L2048_Hq32_Hkv8_P64`. */
  name: string;
  path: "fused" | "materialised";
  /** Forward, forward + backward, or the backward alone. */
  pass: "fwd" | "fwdbwd" | "bwd";
  B: number;
  /** Queries. */
  L: number;
  /** Keys (decode rows; prefill: S = L). */
  S: number;
  Hq: number;
  Hkv: number;
  P: number;
  /** Causal FLOPs per call (see the module doc). */
  flops: number;
  tflop_per_s: number;
  /** Queries per second. */
  tokens_per_s: number;
  /** Tiles of the fused kernels (forward, dq, dkv), or the tile a sweep row tried. */
  tiles?: string;
  /**
   * Fused rows where the materialising path also runs: max |fused − materialising| of out (and of
   * dq, dk, dv for fwd+bwd) on this GPU for the same random inputs (a correctness check on the device).
   */
  max_abs_diff?: Record<string, number>;
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

const tileName = (t: FlashTile | null) => (t ? `${t.tx}x${t.ty}${t.pf === false ? "-nopf" : ""}` : "none");

/**
 * Causal forward FLOPs of attention, two products of 2·P FLOPs per (query, key) pair and head:
 * prefill (S = L) counts L²/2 pairs, as the issue does (4·B·H_q·L²·P/2); L queries after a cache
 * of S − L keys count their exact pairs L·(S − L) + L(L + 1)/2.
 */
export function attentionFlops(B: number, L: number, Hq: number, P: number, S = L): number {
  const pairs = S === L ? (L * L) / 2 : L * (S - L) + (L * (L + 1)) / 2;
  return 4 * B * Hq * P * pairs;
}

type Time = (fn: () => void) => Promise<Timing>;

function row(
  name: string,
  d: { path: "fused" | "materialised"; pass: "fwd" | "fwdbwd" | "bwd"; B: number; L: number; S?: number },
  shape: { Hq: number; Hkv: number; P: number },
  flops: number,
  t: Timing,
  tiles?: string,
): AttentionBenchResult {
  return {
    name,
    ...d,
    S: d.S ?? d.L,
    ...shape,
    flops,
    tflop_per_s: flops / (t.ms / 1e3) / 1e12,
    tokens_per_s: (d.B * d.L) / (t.ms / 1e3),
    tiles,
    ...t,
  };
}

/** max |fused − materialising| of out, dq, dk, dv for these inputs (one readback). */
async function fusedVsMaterialised(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  dO: Tensor,
): Promise<Record<string, number>> {
  const f = flashAttention(q, k, v);
  const g = flashAttentionBackward(q, k, v, f.out, f.lse, dO);
  const m = attention(q, k, v, { returnProbs: true });
  const mg = attentionBackward(q, k, v, m.probs!, dO);
  const all = [f.out, g.dq, g.dk, g.dv, m.out, mg.dq, mg.dk, mg.dv];
  const host = await readTensors(all);
  for (const x of [...all, f.lse, m.probs!]) x.dispose();
  const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let e = 0;
    for (let i = 0; i < a.length; i++) {
      const d = Math.abs(a[i] - b[i]);
      e = Math.max(e, Number.isNaN(d) ? Infinity : d);
    }
    return e;
  };
  return {
    out: maxAbs(host[0], host[4]),
    dq: maxAbs(host[1], host[5]),
    dk: maxAbs(host[2], host[6]),
    dv: maxAbs(host[3], host[7]),
  };
}

/** The tiles the fused kernels take for head dim P on this device, as "fwd,dq,dkv". */
function defaultTiles(P: number): string {
  return (["forward", "dq", "dkv"] as const).map((k) => tileName(flashTile(k, P))).join(",");
}

/**
 * Prefill rows: fused (and, where the probabilities fit one binding, materialising) attention forward
 * and forward + backward over every head shape, length and batch.
 */
export async function benchAttentionPrefill(
  time: Time,
  batches: number[],
  lengths: number[],
  onRow: (r: AttentionBenchResult) => void,
  materialised = true,
): Promise<void> {
  const rng = new Rng(0);
  for (const L of lengths) {
    for (const shape of ATTENTION_SHAPES) {
      const { Hq, Hkv, P } = shape;
      const tiles = defaultTiles(P);
      for (const B of batches) {
        using q = random([B, L, Hq, P], rng);
        using k = random([B, L, Hkv, P], rng);
        using v = random([B, L, Hkv, P], rng);
        using dO = random([B, L, Hq, P], rng);
        const fwd = attentionFlops(B, L, Hq, P);
        const tag = `B${B}_L${L}_Hq${Hq}_Hkv${Hkv}_P${P}`;
        // the old path needs probs and dP (B, H_q, L, L) at once, each within one binding
        const probsBytes = 4 * B * Hq * L * L;
        const old = materialised && probsBytes <= gpu().maxBindingBytes && B * L <= 8192;
        const diff = old ? await fusedVsMaterialised(q, k, v, dO) : undefined;
        let t = await time(() => {
          const r = flashAttention(q, k, v);
          r.out.dispose();
          r.lse.dispose();
        });
        onRow({
          ...row(`attention_fused_fwd_${tag}`, { path: "fused", pass: "fwd", B, L }, shape, fwd, t, tiles),
          max_abs_diff: diff ? { out: diff.out } : undefined,
        });
        t = await time(() => {
          const r = flashAttention(q, k, v);
          const g = flashAttentionBackward(q, k, v, r.out, r.lse, dO);
          for (const x of [r.out, r.lse, g.dq, g.dk, g.dv]) x.dispose();
        });
        onRow({
          ...row(
            `attention_fused_fwdbwd_${tag}`,
            { path: "fused", pass: "fwdbwd", B, L },
            shape,
            3.5 * fwd,
            t,
            tiles,
          ),
          max_abs_diff: diff,
        });
        if (!old) continue;
        t = await time(() => {
          const r = attention(q, k, v, { returnProbs: true });
          r.out.dispose();
          r.probs!.dispose();
        });
        onRow(
          row(
            `attention_materialised_fwd_${tag}`,
            { path: "materialised", pass: "fwd", B, L },
            shape,
            fwd,
            t,
          ),
        );
        t = await time(() => {
          const r = attention(q, k, v, { returnProbs: true });
          const g = attentionBackward(q, k, v, r.probs!, dO);
          for (const x of [r.out, r.probs!, g.dq, g.dk, g.dv]) x.dispose();
        });
        onRow(
          row(
            `attention_materialised_fwdbwd_${tag}`,
            { path: "materialised", pass: "fwdbwd", B, L },
            shape,
            3.5 * fwd,
            t,
          ),
        );
      }
    }
  }
}

/**
 * Tile sweep at B = 1, L = 2048, 1B heads: each fitting tile of the forward alone, and of dq and dkv
 * as the whole backward with the other kernels at their default tiles; then the backward with the
 * GQA group in one workgroup or split over query heads, at B = 1 and 8.
 */
export async function benchAttentionTiles(
  time: Time,
  onRow: (r: AttentionBenchResult) => void,
  L = 2048,
): Promise<void> {
  const B = 1;
  const shape = ATTENTION_SHAPES[0];
  const { Hq, Hkv, P } = shape;
  const rng = new Rng(1);
  using q = random([B, L, Hq, P], rng);
  using k = random([B, L, Hkv, P], rng);
  using v = random([B, L, Hkv, P], rng);
  using dO = random([B, L, Hq, P], rng);
  const f = flashAttention(q, k, v);
  using _o = f.out;
  using _l = f.lse;
  const candidates: FlashTile[] = [[8, 16], [8, 8], [4, 16], [16, 4], [4, 8], [8, 4]].map(([tx, ty]) => ({
    tx,
    ty,
  }));
  // without the register prefetch of the next block, for the first two
  candidates.push(...candidates.slice(0, 2).map((t) => ({ ...t, pf: false })));
  const fwd = attentionFlops(B, L, Hq, P);
  const tag = `B${B}_L${L}_Hq${Hq}_Hkv${Hkv}_P${P}`;
  for (const kernel of ["forward", "dq", "dkv"] as const) {
    for (const t of candidates) {
      if (!flashTileFits(kernel, P, t)) continue;
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
      const pass = kernel === "forward" ? "fwd" : "bwd";
      onRow(row(
        `attention_tile_${kernel}_${tileName(t)}_${tag}`,
        { path: "fused", pass, B, L },
        shape,
        kernel === "forward" ? fwd : 2.5 * fwd,
        timing,
        tileName(t),
      ));
    }
  }
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
      onRow(row(
        `attention_bwd_split_${splitHeads}_B${Bs}_L${L}_Hq${Hq}_Hkv${Hkv}_P${P}`,
        { path: "fused", pass: "bwd", B: Bs, L },
        shape,
        2.5 * attentionFlops(Bs, L, Hq, P),
        timing,
        defaultTiles(P),
      ));
    }
    f2.out.dispose();
    f2.lse.dispose();
  }
}

/**
 * Decoding-shaped attention (B = 1; L = 1 and 16 queries after a KV cache of S = 512 or 4096
 * positions, capacity 4096) through the fused kernel and the materialising path.
 */
export async function benchAttentionDecode(
  time: Time,
  onRow: (r: AttentionBenchResult) => void,
): Promise<void> {
  const rng = new Rng(3);
  const [B, cap] = [1, 4096];
  for (const shape of ATTENTION_SHAPES) {
    const { Hq, Hkv, P } = shape;
    using k = random([B, cap, Hkv, P], rng);
    using v = random([B, cap, Hkv, P], rng);
    for (const L of [1, 16]) {
      using q = random([B, L, Hq, P], rng);
      for (const S of [512, 4096]) {
        const flops = attentionFlops(B, L, Hq, P, S);
        const tag = `B${B}_L${L}_S${S}_Hq${Hq}_Hkv${Hkv}_P${P}`;
        let t = await time(() => {
          const r = flashAttention(q, k, v, { keyLength: S });
          r.out.dispose();
          r.lse.dispose();
        });
        onRow(
          row(
            `attention_decode_fused_${tag}`,
            { path: "fused", pass: "fwd", B, L, S },
            shape,
            flops,
            t,
            defaultTiles(P),
          ),
        );
        t = await time(() => {
          const r = attention(q, k, v, { keyLength: S, returnProbs: true });
          r.out.dispose();
          r.probs!.dispose();
        });
        onRow(
          row(
            `attention_decode_materialised_${tag}`,
            { path: "materialised", pass: "fwd", B, L, S },
            shape,
            flops,
            t,
          ),
        );
      }
    }
  }
}

/**
 * The autograd attention op forward + backward under a tape at B = 8, L = 2048 with 1B heads: it takes
 * the fused path (the materialising one would need 4 GiB of probabilities per layer).
 */
export async function benchAttentionTrainStep(
  time: Time,
  onRow: (r: AttentionBenchResult) => void,
  B = 8,
  L = 2048,
): Promise<void> {
  const shape = ATTENTION_SHAPES[0];
  const { Hq, Hkv, P } = shape;
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
  onRow(row(
    `attention_autograd_fwdbwd_B${B}_L${L}_Hq${Hq}_Hkv${Hkv}_P${P}`,
    { path: "fused", pass: "fwdbwd", B, L },
    shape,
    3.5 * attentionFlops(B, L, Hq, P),
    t,
    defaultTiles(P),
  ));
}

/**
 * Every attention row: prefill first (`quick`: B ∈ {1, 8}, otherwise B ∈ {1, 2, 4, 8}; L = 2048,
 * 4096, 1024, 512, 256), then the tile sweep, decode shapes and the autograd op while the wall-clock
 * budget lasts (`budgetMs`, default 50 s with `quick`, unlimited otherwise; parts that would start
 * past it are left out, and a row saying so is added).
 */
export async function benchAttention(
  time: Time,
  quick: boolean,
  opts: {
    batches?: number[];
    lengths?: number[];
    budgetMs?: number;
    onRow?: (r: AttentionBenchResult) => void;
  } = {},
): Promise<AttentionBenchResult[]> {
  const start = performance.now();
  const budget = opts.budgetMs ?? (quick ? 50_000 : Infinity);
  const out: AttentionBenchResult[] = [];
  const push = (r: AttentionBenchResult) => {
    out.push(r);
    opts.onRow?.(r);
  };
  const batches = opts.batches ?? (quick ? [1, 8] : [1, 2, 4, 8]);
  const lengths = opts.lengths ?? [2048, 4096, 1024, 512, 256];
  await benchAttentionPrefill(time, batches, lengths, push);
  const extras: [string, (time: Time, onRow: (r: AttentionBenchResult) => void) => Promise<void>][] = [
    ["tiles", benchAttentionTiles],
    ["decode", benchAttentionDecode],
    ["autograd", benchAttentionTrainStep],
  ];
  const left: string[] = [];
  for (const [name, part] of extras) {
    if (performance.now() - start > budget) {
      left.push(name);
      continue;
    }
    try {
      await part(time, push);
    } catch (e) {
      // an optional part must not cost the prefill rows (or the sections after this one)
      console.error(`bench/attention: ${name} failed: ${(e as Error).message}`);
    }
  }
  if (left.length) console.error(`bench/attention: left out for time: ${left.join(", ")}`);
  return out;
}

if (import.meta.main) {
  // Rows are printed as JSON lines as they finish (a run cut short keeps what it measured).
  const quick = Deno.args.includes("--quick");
  await initGpu();
  const o = quick ? QUICK : FULL;
  console.log(JSON.stringify({ kind: "header", device: gpu().info, method: o }));
  await benchAttention((fn) => timeSustained(fn, o), quick, { onRow: (r) => console.log(JSON.stringify(r)) });
}
