/**
 * GPU correctness check of the fused attention at model shapes (too large for the software adapter's
 * test suite): fused vs materialising path, forward and backward, at Llama-3.2-1B heads (32, 8, 64)
 * and brown-llama-6m's (8, 4, 32) with L not a multiple of any block, plus a decode step after a KV
 * cache; and fused vs the float64 reference on a shape the CPU can afford. Prints one JSON line per
 * case with the max abs errors; exits 1 when any exceeds its tolerance.
 *
 * `deno run -A --cached-only bench/attention_check.ts`
 *
 * @module
 */
import { gpu, initGpu } from "../lib/gpu/device.ts";
import { attention, attentionBackward } from "../lib/tensor/attention.ts";
import { flashAttention, flashAttentionBackward, flashTile } from "../lib/tensor/flash_attention.ts";
import { attentionBackwardRef, attentionRef } from "../lib/tensor/ops_ref.ts";
import { readTensors, Tensor } from "../lib/tensor/tensor.ts";
import { randomArray } from "../tests/_assert.ts";

await initGpu();

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    m = Math.max(m, Number.isNaN(d) ? Infinity : d);
  }
  return m;
}

let failed = false;
function report(name: string, errs: Record<string, number>, tol: number) {
  const ok = Object.values(errs).every((e) => e <= tol);
  failed ||= !ok;
  console.log(JSON.stringify({ name, ok, tol, ...errs }));
}

console.log(JSON.stringify({
  device: gpu().info,
  tiles: [16, 32, 64, 128].map((p) => ({
    P: p,
    forward: flashTile("forward", p),
    dq: flashTile("dq", p),
    dkv: flashTile("dkv", p),
  })),
}));

for (const [Hq, Hkv, Pd] of [[32, 8, 64], [8, 4, 32]]) {
  for (const [B, L] of [[2, 1000], [1, 2047]]) {
    const q = randomArray(B * L * Hq * Pd, 1, 2);
    const k = randomArray(B * L * Hkv * Pd, 2, 2);
    const v = randomArray(B * L * Hkv * Pd, 3);
    const dOut = randomArray(B * L * Hq * Pd, 4);
    using Q = Tensor.from(q, [B, L, Hq, Pd]);
    using K = Tensor.from(k, [B, L, Hkv, Pd]);
    using V = Tensor.from(v, [B, L, Hkv, Pd]);
    using dO = Tensor.from(dOut, [B, L, Hq, Pd]);
    const f = flashAttention(Q, K, V);
    const g = flashAttentionBackward(Q, K, V, f.out, f.lse, dO);
    const old = attention(Q, K, V, { returnProbs: true });
    const og = attentionBackward(Q, K, V, old.probs!, dO);
    const [a, b, c, d, e, f2, g2, h2] = await readTensors([
      f.out,
      old.out,
      g.dq,
      og.dq,
      g.dk,
      og.dk,
      g.dv,
      og.dv,
    ]);
    report(`fused_vs_materialised_B${B}_L${L}_Hq${Hq}_Hkv${Hkv}_P${Pd}`, {
      out: maxAbs(a, b),
      dq: maxAbs(c, d),
      dk: maxAbs(e, f2),
      dv: maxAbs(g2, h2),
    }, 2e-4);
    for (const t of [f.out, f.lse, g.dq, g.dk, g.dv, old.out, old.probs!, og.dq, og.dk, og.dv]) t.dispose();
  }
}

// Against float64 loops, with GQA, L < S (queries after a cache of capacity > S) and P 64.
{
  const d = { B: 1, L: 150, S: 190, Hq: 8, Hkv: 2, P: 64 };
  const cap = 256;
  const q = randomArray(d.L * d.Hq * d.P, 5, 2);
  const k = randomArray(d.S * d.Hkv * d.P, 6, 2);
  const v = randomArray(d.S * d.Hkv * d.P, 7);
  const dOut = randomArray(d.L * d.Hq * d.P, 8);
  const pad = (x: Float32Array) => {
    const full = new Float32Array(cap * d.Hkv * d.P).fill(Number.NaN);
    full.set(x);
    return full;
  };
  using Q = Tensor.from(q, [1, d.L, d.Hq, d.P]);
  using Kc = Tensor.from(pad(k), [1, cap, d.Hkv, d.P]);
  using Vc = Tensor.from(pad(v), [1, cap, d.Hkv, d.P]);
  using K = Tensor.from(k, [1, d.S, d.Hkv, d.P]);
  using V = Tensor.from(v, [1, d.S, d.Hkv, d.P]);
  using dO = Tensor.from(dOut, [1, d.L, d.Hq, d.P]);
  const ref = attentionRef(q, k, v, d);
  const gref = attentionBackwardRef(q, k, v, dOut, d);
  const fc = flashAttention(Q, Kc, Vc, { keyLength: d.S });
  const f = flashAttention(Q, K, V);
  const g = flashAttentionBackward(Q, K, V, f.out, f.lse, dO);
  const [oc, lc, dq, dk, dv] = await readTensors([fc.out, fc.lse, g.dq, g.dk, g.dv]);
  report("fused_vs_float64_cache_L150_S190_cap256_Hq8_Hkv2_P64", {
    out: maxAbs(oc, ref.out),
    lse: maxAbs(lc, ref.lse),
    dq: maxAbs(dq, gref.dq),
    dk: maxAbs(dk, gref.dk),
    dv: maxAbs(dv, gref.dv),
  }, 5e-5);
  for (const t of [fc.out, fc.lse, f.out, f.lse, g.dq, g.dk, g.dv]) t.dispose();
}

// Head dims 16 and 128 against float64 (the tiles differ per head dim).
for (const Pd of [16, 128]) {
  const d = { B: 2, L: 77, S: 77, Hq: 4, Hkv: 2, P: Pd };
  const q = randomArray(d.B * d.L * d.Hq * Pd, 12, 2);
  const k = randomArray(d.B * d.S * d.Hkv * Pd, 13, 2);
  const v = randomArray(d.B * d.S * d.Hkv * Pd, 14);
  const dOut = randomArray(d.B * d.L * d.Hq * Pd, 15);
  using Q = Tensor.from(q, [d.B, d.L, d.Hq, Pd]);
  using K = Tensor.from(k, [d.B, d.S, d.Hkv, Pd]);
  using V = Tensor.from(v, [d.B, d.S, d.Hkv, Pd]);
  using dO = Tensor.from(dOut, [d.B, d.L, d.Hq, Pd]);
  const ref = attentionRef(q, k, v, d);
  const gref = attentionBackwardRef(q, k, v, dOut, d);
  const f = flashAttention(Q, K, V);
  const errs: Record<string, number> = {};
  for (const splitHeads of [false, true]) {
    const g = flashAttentionBackward(Q, K, V, f.out, f.lse, dO, { splitHeads });
    const [o, dq, dk, dv] = await readTensors([f.out, g.dq, g.dk, g.dv]);
    Object.assign(errs, {
      out: maxAbs(o, ref.out),
      [`dq_split_${splitHeads}`]: maxAbs(dq, gref.dq),
      [`dk_split_${splitHeads}`]: maxAbs(dk, gref.dk),
      [`dv_split_${splitHeads}`]: maxAbs(dv, gref.dv),
    });
    for (const t of [g.dq, g.dk, g.dv]) t.dispose();
  }
  report(`fused_vs_float64_B2_L77_Hq4_Hkv2_P${Pd}`, errs, 5e-5);
  f.out.dispose();
  f.lse.dispose();
}

// One decode step (L = 1) after 1500 cached positions at 1B heads, fused vs materialising.
{
  const [Hq, Hkv, Pd, S, cap] = [32, 8, 64, 1500, 2048];
  using Q = Tensor.from(randomArray(Hq * Pd, 9, 2), [1, 1, Hq, Pd]);
  using K = Tensor.from(randomArray(cap * Hkv * Pd, 10, 2), [1, cap, Hkv, Pd]);
  using V = Tensor.from(randomArray(cap * Hkv * Pd, 11), [1, cap, Hkv, Pd]);
  const f = flashAttention(Q, K, V, { keyLength: S });
  const old = attention(Q, K, V, { keyLength: S, returnProbs: true });
  const [x, y] = await readTensors([f.out, old.out]);
  report("decode_L1_S1500_cap2048_Hq32_Hkv8_P64", { out: maxAbs(x, y) }, 2e-5);
  for (const t of [f.out, f.lse, old.out, old.probs!]) t.dispose();
}

if (failed) Deno.exit(1);
