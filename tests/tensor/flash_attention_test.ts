/**
 * kernels/flash_attention.wgsl: the fused attention equals the float64 reference (out, logsumexp,
 * dq, dk, dv) and the materialising path (matmul + causal softmax + matmul, and its backward), with
 * GQA, queries after a cache (L < S, cache capacity > S), L not a multiple of the block, head dims
 * 3, 16, 32 and 128, and several tiles the device fits.
 *
 * @module
 */
import assert from "node:assert/strict";
import { attention as attentionOp } from "../../lib/autograd/ops.ts";
import { GradTape } from "../../lib/autograd/tape.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { attention, attentionBackward } from "../../lib/tensor/attention.ts";
import {
  flashAttention,
  flashAttentionBackward,
  type FlashTile,
  flashTileFits,
} from "../../lib/tensor/flash_attention.ts";
import { attentionBackwardRef, attentionRef } from "../../lib/tensor/ops_ref.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();

type Dims = { B: number; L: number; S: number; Hq: number; Hkv: number; P: number };

function inputs(d: Dims, seed: number, scale = 1) {
  const { B, L, S, Hq, Hkv, P } = d;
  return {
    q: randomArray(B * L * Hq * P, seed, scale),
    k: randomArray(B * S * Hkv * P, seed + 1, scale),
    v: randomArray(B * S * Hkv * P, seed + 2),
    dO: randomArray(B * L * Hq * P, seed + 3),
  };
}

Deno.test("flash attention forward: out and logsumexp equal the reference and the materialising path", async () => {
  const cases: Dims[] = [
    { B: 2, L: 37, S: 37, Hq: 4, Hkv: 2, P: 16 }, // GQA, L not a multiple of any block
    { B: 1, L: 70, S: 70, Hq: 2, Hkv: 2, P: 32 }, // several query and key blocks
    { B: 1, L: 20, S: 20, Hq: 3, Hkv: 1, P: 3 }, // P not a multiple of 4
  ];
  for (const d of cases) {
    const { B, L, S, Hq, Hkv, P } = d;
    const x = inputs(d, 10 * P + L, 2); // scores of a few units: a peaked softmax
    using Q = Tensor.from(x.q, [B, L, Hq, P]);
    using K = Tensor.from(x.k, [B, S, Hkv, P]);
    using V = Tensor.from(x.v, [B, S, Hkv, P]);
    const ref = attentionRef(x.q, x.k, x.v, d);
    const f = flashAttention(Q, K, V);
    const old = attention(Q, K, V, { returnProbs: true });
    using fused = attention(Q, K, V).out; // the public op takes the fused path without returnProbs
    const [out, lse, oldOut, pub] = await readTensors([f.out, f.lse, old.out, fused]);
    const tag = `B${B} L${L} Hq${Hq} Hkv${Hkv} P${P}`;
    assertAllclose(out, ref.out, { name: `fused out ${tag}` });
    assertAllclose(lse, ref.lse, { atol: 1e-5, name: `lse ${tag}` });
    assertAllclose(out, oldOut, { name: `fused vs materialising ${tag}` });
    assert.deepEqual(pub, out, "attention() without returnProbs is the fused kernel");
    for (const t of [f.out, f.lse, old.out, old.probs!]) t.dispose();
  }
});

Deno.test("flash attention forward: queries after a KV cache (L < S ≤ capacity), one-token decode", async () => {
  for (const [L, S, cap] of [[5, 23, 32], [1, 40, 48], [33, 40, 40], [16, 50, 64]]) {
    const d = { B: 2, L, S, Hq: 4, Hkv: 1, P: 16 };
    const x = inputs(d, L + S);
    // the cache holds S of cap positions; the rest is garbage that must not be read
    const pad = (a: Float32Array) => {
      const full = new Float32Array(2 * cap * 16).fill(Number.NaN);
      for (let b = 0; b < 2; b++) full.set(a.subarray(b * S * 16, (b + 1) * S * 16), b * cap * 16);
      return full;
    };
    using Q = Tensor.from(x.q, [2, L, 4, 16]);
    using K = Tensor.from(pad(x.k), [2, cap, 1, 16]);
    using V = Tensor.from(pad(x.v), [2, cap, 1, 16]);
    const ref = attentionRef(x.q, x.k, x.v, d);
    const f = flashAttention(Q, K, V, { keyLength: S });
    using pub = attention(Q, K, V, { keyLength: S }).out; // fused from FUSED_MIN_QUERIES on
    const old = attention(Q, K, V, { keyLength: S, returnProbs: true });
    const [o, lse, po, oo] = await readTensors([f.out, f.lse, pub, old.out]);
    assertAllclose(o, ref.out, { name: `cached fused L${L} S${S}` });
    assertAllclose(lse, ref.lse, { atol: 1e-5, name: `cached lse L${L} S${S}` });
    assertAllclose(o, oo, { name: `cached fused vs materialising L${L} S${S}` });
    assertAllclose(po, ref.out, { name: `cached attention() L${L} S${S}` });
    for (const t of [f.out, f.lse, old.out, old.probs!]) t.dispose();
  }
});

Deno.test("flash attention backward: dq, dk, dv equal the reference and the materialising backward", async () => {
  const cases: (Dims & { cap?: number })[] = [
    { B: 1, L: 19, S: 19, Hq: 4, Hkv: 2, P: 16 },
    { B: 2, L: 45, S: 45, Hq: 2, Hkv: 1, P: 32 },
    { B: 1, L: 6, S: 21, Hq: 2, Hkv: 1, P: 16 }, // queries after earlier keys: those get dK, dV too
    { B: 2, L: 9, S: 13, Hq: 4, Hkv: 2, P: 16, cap: 20 }, // a cache with room past S: those rows get 0
    { B: 1, L: 21, S: 21, Hq: 2, Hkv: 1, P: 128 },
  ];
  for (const d of cases) {
    const { B, L, S, Hq, Hkv, P } = d;
    const cap = d.cap ?? S;
    const x = inputs(d, 3 * P + L, 1.5);
    // cache rows past S hold NaN, which must never be read
    const pad = (a: Float32Array) => {
      const full = new Float32Array(B * cap * Hkv * P).fill(Number.NaN);
      for (let b = 0; b < B; b++) {
        full.set(a.subarray(b * S * Hkv * P, (b + 1) * S * Hkv * P), b * cap * Hkv * P);
      }
      return full;
    };
    // the reference's dK, dV (B, S, …) placed in (B, cap, …) with zeros past S
    const place = (a: Float64Array) => {
      const full = new Float64Array(B * cap * Hkv * P);
      for (let b = 0; b < B; b++) {
        full.set(a.subarray(b * S * Hkv * P, (b + 1) * S * Hkv * P), b * cap * Hkv * P);
      }
      return full;
    };
    using Q = Tensor.from(x.q, [B, L, Hq, P]);
    using K = Tensor.from(pad(x.k), [B, cap, Hkv, P]);
    using V = Tensor.from(pad(x.v), [B, cap, Hkv, P]);
    using dO = Tensor.from(x.dO, [B, L, Hq, P]);
    const ref = attentionBackwardRef(x.q, x.k, x.v, x.dO, d);
    const f = flashAttention(Q, K, V, { keyLength: S });
    for (const splitHeads of [false, true]) {
      const g = flashAttentionBackward(Q, K, V, f.out, f.lse, dO, { splitHeads, keyLength: S });
      const got = await readTensors([g.dq, g.dk, g.dv]);
      const tag = `B${B} L${L} S${S} cap${cap} Hq${Hq} Hkv${Hkv} P${P} split ${splitHeads}`;
      assertAllclose(got[0], ref.dq, { atol: 1e-5, name: `dq ${tag}` });
      assertAllclose(got[1], place(ref.dk), { atol: 1e-5, name: `dk ${tag}` });
      assertAllclose(got[2], place(ref.dv), { atol: 1e-5, name: `dv ${tag}` });
      if (S === L) {
        // the old backward (probabilities kept) gives the same gradients
        const old = attention(Q, K, V, { returnProbs: true });
        const o = attentionBackward(Q, K, V, old.probs!, dO);
        const want = await readTensors([o.dq, o.dk, o.dv]);
        got.forEach((gi, i) =>
          assertAllclose(gi, want[i], { atol: 1e-5, name: `fused vs old grad ${i} ${tag}` })
        );
        for (const t of [old.out, old.probs!, o.dq, o.dk, o.dv]) t.dispose();
      }
      for (const t of [g.dq, g.dk, g.dv]) t.dispose();
    }
    f.out.dispose();
    f.lse.dispose();
  }
});

Deno.test("flash attention: every tile that fits gives the same result (forward and backward)", async () => {
  const d = { B: 1, L: 50, S: 50, Hq: 2, Hkv: 1, P: 16 };
  const x = inputs(d, 77);
  using Q = Tensor.from(x.q, [1, 50, 2, 16]);
  using K = Tensor.from(x.k, [1, 50, 1, 16]);
  using V = Tensor.from(x.v, [1, 50, 1, 16]);
  using dO = Tensor.from(x.dO, [1, 50, 2, 16]);
  const ref = attentionBackwardRef(x.q, x.k, x.v, x.dO, d);
  const refOut = attentionRef(x.q, x.k, x.v, d).out;
  const tiles: FlashTile[] = [{ tx: 4, ty: 4 }, { tx: 2, ty: 8, pf: false }];
  let tried = 0;
  for (const t of tiles) {
    if (!flashTileFits("forward", 16, t) || !flashTileFits("dq", 16, t) || !flashTileFits("dkv", 16, t)) {
      continue;
    }
    tried++;
    const tilesOpt = { forward: t, dq: t, dkv: t };
    const f = flashAttention(Q, K, V, { tiles: tilesOpt });
    const g = flashAttentionBackward(Q, K, V, f.out, f.lse, dO, { tiles: tilesOpt });
    const [out, dq, dk, dv] = await readTensors([f.out, g.dq, g.dk, g.dv]);
    const tag = `tile ${t.tx}×${t.ty} prefetch ${t.pf ?? true}`;
    assertAllclose(out, refOut, { name: `out ${tag}` });
    assertAllclose(dq, ref.dq, { atol: 1e-5, name: `dq ${tag}` });
    assertAllclose(dk, ref.dk, { atol: 1e-5, name: `dk ${tag}` });
    assertAllclose(dv, ref.dv, { atol: 1e-5, name: `dv ${tag}` });
    for (const t of [f.out, f.lse, g.dq, g.dk, g.dv]) t.dispose();
  }
  assert.ok(tried >= 2, "at least two tiles fit head dim 16");
});

Deno.test("autograd attention: the fused op's gradients equal the materialising op's (returnProbs)", async () => {
  const d = { B: 2, L: 24, S: 24, Hq: 4, Hkv: 2, P: 16 };
  const x = inputs(d, 5);
  const grads: ArrayLike<number>[][] = [];
  for (const returnProbs of [false, true]) {
    const Q = Tensor.from(x.q, [2, 24, 4, 16]);
    const K = Tensor.from(x.k, [2, 24, 2, 16]);
    const V = Tensor.from(x.v, [2, 24, 2, 16]);
    for (const t of [Q, K, V]) t.requiresGrad = true;
    using dO = Tensor.from(x.dO, [2, 24, 4, 16]);
    using tape = new GradTape();
    const r = tape.run(() => attentionOp(Q, K, V, { returnProbs }));
    assert.equal(r.probs !== undefined, returnProbs);
    tape.backward(r.out, dO);
    r.probs?.dispose();
    grads.push(await readTensors([Q.grad!, K.grad!, V.grad!]));
    for (const t of [Q, K, V]) t.dispose();
  }
  const ref = attentionBackwardRef(x.q, x.k, x.v, x.dO, d);
  ["dq", "dk", "dv"].forEach((n, i) => {
    assertAllclose(grads[0][i], grads[1][i], { atol: 1e-5, name: `${n}: fused vs materialising op` });
    assertAllclose(grads[0][i], [ref.dq, ref.dk, ref.dv][i], {
      atol: 1e-5,
      name: `${n}: fused op vs reference`,
    });
  });
});
