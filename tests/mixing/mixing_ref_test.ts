/**
 * Each materialised mixing matrix is the mixer: M·x equals the output of the scan or attention that
 * defines it, on the CPU references and on the GPU kernels (SSD, selective scan, attention).
 * Kernels checked through these references: ssd.wgsl, selective_scan.wgsl, matmul.wgsl, softmax.wgsl.
 */
import assert from "node:assert/strict";
import { initGpu } from "../../lib/gpu/device.ts";
import {
  applyMixingRef,
  discreteMamba2MixingRef,
  linearAttentionMixingRef,
  mamba1MixingRef,
  softmaxAttentionMixingRef,
  ssdMixingRef,
} from "../../lib/mixing/mixing_ref.ts";
import { softplus } from "../../lib/mixing/_numerics.ts";
import { selectiveScanRef } from "../../lib/ssm/selective_scan_ref.ts";
import { ssdMixingMatrixRef, ssdRecurrentRef } from "../../lib/ssm/ssd_ref.ts";
import { ssdChunked } from "../../lib/ssm/ssd.ts";
import { selectiveScan } from "../../lib/ssm/selective_scan.ts";
import { attention } from "../../lib/tensor/attention.ts";
import { attentionRef } from "../../lib/tensor/ops_ref.ts";
import { readTensors, Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();

const TOL = { rtol: 1e-4, atol: 2e-5 };

/** Random SSD inputs for one layer: x, dt > 0, A = −exp(A_log)·dt < 0, B, C per head, D. */
function ssdCase(batch: number, T: number, H: number, P: number, N: number, seed: number) {
  const dt = Float64Array.from(randomArray(batch * T * H, seed), (v) => softplus(v - 1));
  const aLog = Float64Array.from(randomArray(H, seed + 1), (v) => Math.log(1 + 15 * Math.abs(v)));
  const A = dt.map((d, i) => -Math.exp(aLog[i % H]) * d);
  return {
    dims: { batch, T, H, N },
    x: randomArray(batch * T * H * P, seed + 2),
    dt,
    A,
    B: randomArray(batch * T * H * N, seed + 3),
    C: randomArray(batch * T * H * N, seed + 4),
    D: randomArray(H, seed + 5),
  };
}

Deno.test("mixing ref: SSD M·x = the recurrence SSD(x·dt) + D·x, and = ssd_ref's matrix without dt and D", () => {
  const [batch, T, H, P, N] = [2, 11, 3, 4, 5];
  const c = ssdCase(batch, T, H, P, N, 10);
  const M = ssdMixingRef({ dims: c.dims, A: c.A, B: c.B, C: c.C, dt: c.dt, D: c.D });
  const X = Float64Array.from(c.x, (v, i) => v * c.dt[Math.floor(i / P)]);
  const { Y } = ssdRecurrentRef({ dims: { batch, L: T, H, P, N }, X, A: c.A, B: c.B, C: c.C });
  const want = Y.map((y, i) => y + c.D[Math.floor(i / P) % H] * c.x[i]);
  assertAllclose(applyMixingRef(M, c.x, { batch, T, H, P }), want, { rtol: 1e-10, atol: 1e-12, name: "M x" });
  // Without dt and D it is the SSD kernel family's own materialised matrix.
  const plain = ssdMixingRef({ dims: c.dims, A: c.A, B: c.B, C: c.C });
  assertAllclose(plain, ssdMixingMatrixRef(c.A, c.B, c.C, { batch, L: T, H, N }), { rtol: 1e-12, atol: 0 });
  for (let t = 0; t < T; t++) for (let s = t + 1; s < T; s++) assert.equal(M[t * T + s], 0, "causal");
});

Deno.test("mixing ref: SSD M·x equals the GPU chunked SSD kernel (T not a multiple of the chunk)", async () => {
  const [batch, T, H, P, N] = [1, 37, 2, 4, 8];
  const c = ssdCase(batch, T, H, P, N, 20);
  const X = Float32Array.from(c.x, (v, i) => v * c.dt[Math.floor(i / P)]);
  using Xt = Tensor.from(X, [batch, T, H, P]);
  using At = Tensor.from(Float32Array.from(c.A), [batch, T, H]);
  using Bt = Tensor.from(c.B, [batch, T, H, N]);
  using Ct = Tensor.from(c.C, [batch, T, H, N]);
  const { Y, finalState } = ssdChunked({ X: Xt, A: At, B: Bt, C: Ct }, { blockLen: 16 });
  const [y] = await readTensors([Y]);
  Y.dispose();
  finalState.dispose();
  const M = ssdMixingRef({ dims: c.dims, A: c.A, B: c.B, C: c.C, dt: c.dt });
  assertAllclose(applyMixingRef(M, c.x, { batch, T, H, P }), y, { ...TOL, name: "M x vs ssd.wgsl" });
});

Deno.test("mixing ref: Mamba-1 per-channel M_d·u equals the selective scan (CPU reference and GPU kernel)", async () => {
  const [batch, D, T, N, G] = [2, 4, 13, 3, 2];
  const dims = { batch, D, T, N, G };
  const delta = randomArray(batch * D * T, 30);
  const A = Float32Array.from(randomArray(D * N, 31), (v) => -0.2 - Math.abs(v));
  const B = randomArray(batch * G * N * T, 32);
  const C = randomArray(batch * G * N * T, 33);
  const Dskip = randomArray(D, 34);
  const deltaBias = randomArray(D, 35);
  const u = randomArray(batch * D * T, 36);
  const M = mamba1MixingRef({ dims, delta, A, B, C, D: Dskip, deltaBias, deltaSoftplus: true });
  // Channel d is "head" d with P = 1: u (B, D, T) read as x (B, T, D, 1) needs a transpose.
  const ut = new Float64Array(u.length);
  for (let b = 0; b < batch; b++) {
    for (let d = 0; d < D; d++) for (let t = 0; t < T; t++) ut[(b * T + t) * D + d] = u[(b * D + d) * T + t];
  }
  const yt = applyMixingRef(M, ut, { batch, T, H: D, P: 1 });
  const got = new Float64Array(u.length);
  for (let b = 0; b < batch; b++) {
    for (let d = 0; d < D; d++) {
      for (let t = 0; t < T; t++) got[(b * D + d) * T + t] = yt[(b * T + t) * D + d];
    }
  }
  const ref = selectiveScanRef(
    { dims: { batch, D, L: T, N, G }, u, delta, A, B, C, D: Dskip, deltaBias },
    { deltaSoftplus: true },
  );
  assertAllclose(got, ref.y, { rtol: 1e-10, atol: 1e-12, name: "M u vs selectiveScanRef" });
  const t = (a: Float32Array, s: number[]) => Tensor.from(a, s);
  const inp = {
    u: t(u, [batch, D, T]),
    delta: t(delta, [batch, D, T]),
    A: t(A, [D, N]),
    B: t(B, [batch, G, N, T]),
    C: t(C, [batch, G, N, T]),
    D: t(Dskip, [D]),
    deltaBias: t(deltaBias, [D]),
  };
  const { y, lastState } = selectiveScan(inp, { deltaSoftplus: true });
  const [yg] = await readTensors([y]);
  for (const x of [y, lastState, ...Object.values(inp)]) x.dispose();
  assertAllclose(got, yg, { ...TOL, name: "M u vs selective_scan.wgsl" });
});

Deno.test("mixing ref: discrete Mamba-2 M·x = the recurrence h_t = σ(−Â_t) h + x_t B_tᵀ, y = h C_t + D x_t", () => {
  const [batch, T, H, P, N] = [1, 9, 2, 3, 4];
  const dims = { batch, T, H, N };
  const Ahat = randomArray(batch * T * H, 40, 3);
  const B = randomArray(batch * T * H * N, 41);
  const C = randomArray(batch * T * H * N, 42);
  const D = randomArray(H, 43);
  const x = randomArray(batch * T * H * P, 44);
  const M = discreteMamba2MixingRef(Ahat, B, C, dims, D);
  // The recurrence written out: a_t = σ(−Â_t), no Δ on the input.
  const y = new Float64Array(x.length);
  for (let h = 0; h < H; h++) {
    const S = new Float64Array(P * N);
    for (let t = 0; t < T; t++) {
      const a = 1 / (1 + Math.exp(Ahat[t * H + h]));
      for (let p = 0; p < P; p++) {
        let acc = 0;
        for (let n = 0; n < N; n++) {
          S[p * N + n] = a * S[p * N + n] + x[(t * H + h) * P + p] * B[(t * H + h) * N + n];
          acc += S[p * N + n] * C[(t * H + h) * N + n];
        }
        y[(t * H + h) * P + p] = acc + D[h] * x[(t * H + h) * P + p];
      }
    }
  }
  assertAllclose(applyMixingRef(M, x, { batch, T, H, P }), y, { rtol: 1e-10, atol: 1e-12 });
});

Deno.test("mixing ref: softmax attention M·v equals attention (CPU and GPU), rows sum to 1; GQA pairs ⌊h·H_kv/H⌋", async () => {
  const [batch, T, H, Hkv, P] = [2, 7, 4, 2, 8];
  const dims = { batch, T, H, Hkv, P };
  const q = randomArray(batch * T * H * P, 50);
  const k = randomArray(batch * T * Hkv * P, 51);
  const v = randomArray(batch * T * Hkv * P, 52);
  const M = softmaxAttentionMixingRef(q, k, dims);
  const ref = attentionRef(q, k, v, { B: batch, L: T, S: T, Hq: H, Hkv, P });
  assertAllclose(M, ref.probs, { rtol: 1e-10, atol: 1e-12, name: "probs" });
  assertAllclose(applyMixingRef(M, v, { batch, T, H, P, Hx: Hkv }), ref.out, { rtol: 1e-10, atol: 1e-12 });
  for (let r = 0; r < batch * H * T; r++) {
    const sum = M.subarray(r * T, r * T + T).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-12, `row ${r} sums to ${sum}`);
  }
  using qt = Tensor.from(q, [batch, T, H, P]);
  using kt = Tensor.from(k, [batch, T, Hkv, P]);
  using vt = Tensor.from(v, [batch, T, Hkv, P]);
  const r = attention(qt, kt, vt, { returnProbs: true });
  const [probs] = await readTensors([r.probs!]);
  r.out.dispose();
  r.probs!.dispose();
  assertAllclose(probs, M, { ...TOL, name: "probs vs attention kernel" });
});

Deno.test("mixing ref: linear attention M = q kᵀ (lower triangle) is the SSD matrix with zero decay, B = k, C = q", () => {
  const [batch, T, H, Hkv, P] = [1, 6, 4, 2, 3];
  const q = randomArray(batch * T * H * P, 60);
  const k = randomArray(batch * T * Hkv * P, 61);
  const v = randomArray(batch * T * Hkv * P, 62);
  const M = linearAttentionMixingRef(q, k, { batch, T, H, Hkv, P });
  // y_t = Σ_{s≤t} (q_t·k_s) v_s written directly
  const y = new Float64Array(batch * T * H * P);
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h * Hkv / H);
    for (let t = 0; t < T; t++) {
      for (let s = 0; s <= t; s++) {
        let qk = 0;
        for (let p = 0; p < P; p++) qk += q[(t * H + h) * P + p] * k[(s * Hkv + g) * P + p];
        for (let p = 0; p < P; p++) y[(t * H + h) * P + p] += qk * v[(s * Hkv + g) * P + p];
      }
    }
  }
  assertAllclose(applyMixingRef(M, v, { batch, T, H, P, Hx: Hkv }), y, { rtol: 1e-10, atol: 1e-12 });
  const kRep = new Float64Array(batch * T * H * P);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      for (let p = 0; p < P; p++) kRep[(t * H + h) * P + p] = k[(t * Hkv + Math.floor(h * Hkv / H)) * P + p];
    }
  }
  const ssd = ssdMixingRef({ dims: { batch, T, H, N: P }, A: new Float64Array(T * H), B: kRep, C: q });
  assertAllclose(M, ssd, { rtol: 1e-12, atol: 1e-14 });
});
