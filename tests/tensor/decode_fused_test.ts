import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import {
  addRmsNorm,
  splitMatvec,
  splitMatvecFits,
  swigluMatvec,
  swigluMatvecFits,
} from "../../lib/tensor/decode_fused.ts";
import {
  linear,
  setTeamLaneValues,
  TEAM_ROWS,
  teamLanes,
  useTeamRows,
  type Weight,
} from "../../lib/tensor/matmul.ts";
import { toF16 } from "../../lib/tensor/convert.ts";
import { rmsNormRef, swigluRef } from "../../lib/tensor/ops_ref.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();

/** x Wᵀ in float64 for x (M, K), W (N, K). */
function productRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      y[m * N + n] = s;
    }
  }
  return y;
}

Deno.test("decode_fused.wgsl swiglu_matvec: silu(x Wgᵀ) ⊙ (x Wuᵀ) equals the float64 products and SwiGLU", async () => {
  for (const [M, N, K] of [[1, 70, 36], [5, 130, 64], [8, 33, 100], [3, 21, 2048]]) {
    const x = randomArray(M * K, 1);
    const g = randomArray(N * K, 2, 0.3);
    const u = randomArray(N * K, 3, 0.3);
    using tx = Tensor.from(x, [1, M, K]);
    const gate = { parts: [Tensor.from(g, [N, K])], shape: [N, K] as [number, number] };
    const up = { parts: [Tensor.from(u, [N, K])], shape: [N, K] as [number, number] };
    try {
      using y = swigluMatvec(tx, gate, up);
      assert.deepEqual(y.shape, [1, M, N]);
      const want = swigluRef(productRef(x, g, M, N, K), productRef(x, u, M, N, K));
      assertAllclose(await y.toArray(), want, { rtol: 1e-4, atol: 1e-5, name: `M=${M} N=${N} K=${K}` });
      using bad = Tensor.zeros([1, K + 1]);
      assert.throws(() => swigluMatvec(bad, gate, up), ShapeError);
      // K not a multiple of 4: not taken (the kernel reads vec4), and refused with the reason.
      const odd = { parts: [Tensor.zeros([N, K + 1])], shape: [N, K + 1] as [number, number] };
      try {
        assert.equal(swigluMatvecFits(odd, odd), false);
        assert.throws(() => swigluMatvec(bad, odd, odd), /multiple of 4/);
      } finally {
        odd.parts[0].dispose();
      }
    } finally {
      gate.parts[0].dispose();
      up.parts[0].dispose();
    }
  }
});

Deno.test("decode_fused.wgsl add_rmsnorm: the sum and RMSNorm(sum) · w equal the float64 twins", async () => {
  for (const [R, D] of [[1, 256], [4, 300]]) {
    const a = randomArray(R * D, 4);
    const b = randomArray(R * D, 5);
    const w = randomArray(D, 6);
    using ta = Tensor.from(a, [R, D]);
    using tb = Tensor.from(b, [R, D]);
    using tw = Tensor.from(w, [D]);
    const [s, y] = addRmsNorm(ta, tb, tw, 1e-5);
    using _s = s;
    using _y = y;
    const sum = Float64Array.from(a, (v, i) => v + b[i]);
    assertAllclose(await s.toArray(), sum, { rtol: 1e-6, atol: 1e-6, name: `sum R=${R} D=${D}` });
    assertAllclose(await y.toArray(), rmsNormRef(sum, w, D, 1e-5), { rtol: 1e-4, atol: 1e-5, name: "norm" });
  }
  // lastOf: the norm of the last row of each sequence only, (B, 1, D).
  const [B, L, D] = [2, 3, 40];
  const a = randomArray(B * L * D, 7);
  const b = randomArray(B * L * D, 8);
  const w = randomArray(D, 9);
  using ta = Tensor.from(a, [B, L, D]);
  using tb = Tensor.from(b, [B, L, D]);
  using tw = Tensor.from(w, [D]);
  const [s, y] = addRmsNorm(ta, tb, tw, 1e-5, L);
  using _s = s;
  using _y = y;
  assert.deepEqual(y.shape, [B, 1, D]);
  const sum = Float64Array.from(a, (v, i) => v + b[i]);
  const full = rmsNormRef(sum, w, D, 1e-5);
  const last = Float64Array.from(
    { length: B * D },
    (_, i) => full[(Math.floor(i / D) * L + L - 1) * D + (i % D)],
  );
  assertAllclose(await y.toArray(), last, { rtol: 1e-4, atol: 1e-5, name: "last rows" });
  assertAllclose(await s.toArray(), sum, { rtol: 1e-6, atol: 1e-6, name: "sum, every row" });
  using x = Tensor.zeros([2, 8]);
  using w7 = Tensor.zeros([7]);
  assert.throws(() => addRmsNorm(x, x, w7, 1e-5), ShapeError);
});

Deno.test("split_matvec.wgsl: three row blocks (of one weight or of three) equal float64 products and linear's values", async () => {
  for (const [M, K] of [[3, 36], [8, 36], [2, 1024]]) await checkSplit(M, K);
});

async function checkSplit(M: number, K: number): Promise<void> {
  const x = randomArray(M * K, 7);
  using tx = Tensor.from(x, [M, K]);
  const wa = randomArray(20 * K, 8);
  const wb = randomArray(6 * K, 9);
  const A = { parts: [Tensor.from(wa, [20, K])], shape: [20, K] as [number, number] };
  const Bw = { parts: [Tensor.from(wb, [6, K])], shape: [6, K] as [number, number] };
  try {
    // One weight in three blocks (a Mamba-2 in_proj), and three weights (q, k, v).
    for (
      const blocks of [
        [{ w: A, row0: 0, rows: 5 }, { w: A, row0: 5, rows: 12 }, { w: A, row0: 17, rows: 3 }],
        [{ w: A, row0: 0, rows: 20 }, { w: Bw, row0: 0, rows: 6 }, { w: A, row0: 2, rows: 1 }],
      ] as const
    ) {
      const ys = splitMatvec(tx, [...blocks] as Parameters<typeof splitMatvec>[1]);
      using full = linear(tx, A);
      using fullB = linear(tx, Bw);
      const [gotA, gotB] = [await full.toArray(), await fullB.toArray()];
      for (let j = 0; j < 3; j++) {
        const { w, row0, rows } = blocks[j];
        const host = w === A ? wa : wb;
        const want = productRef(x, host.subarray(row0 * K, (row0 + rows) * K), M, rows, K);
        const got = await ys[j].toArray();
        assert.deepEqual(ys[j].shape, [M, rows]);
        assertAllclose(got, want, { rtol: 1e-5, atol: 1e-6, name: `block ${j}` });
        // Bit-identical to linear's matvec over the whole weight, columns row0 … row0 + rows.
        const lin = w === A ? gotA : gotB;
        const W = w.shape[0];
        const cols = Float32Array.from(
          { length: M * rows },
          (_, i) => lin[Math.floor(i / rows) * W + row0 + (i % rows)],
        );
        assert.deepEqual(Array.from(got), Array.from(cols), `block ${j} vs linear`);
        ys[j].dispose();
      }
    }
    assert.throws(
      () =>
        splitMatvec(tx, [{ w: A, row0: 18, rows: 5 }, { w: A, row0: 0, rows: 1 }, {
          w: A,
          row0: 0,
          rows: 1,
        }]),
      ShapeError,
    );
    // K not a multiple of 4 is not taken (the kernel reads vec4).
    using odd = Tensor.zeros([2, K + 1]);
    assert.equal(splitMatvecFits({ parts: [odd], shape: [2, K + 1] }), false);
  } finally {
    A.parts[0].dispose();
    Bw.parts[0].dispose();
  }
}

Deno.test("team products (linear's matvec_team, splitMatvec, swigluMatvec): M rows at once == each row alone, bit for bit, for 1 … TEAM_ROWS rows per workgroup", async () => {
  // A verification of K drafted tokens runs these products on K + 1 rows at once (with up to TEAM_ROWS
  // rows per workgroup, each weight load serving each of them); a decoding step runs them on one row.
  // Greedy speculative decoding equals plain decoding only if both give the same bits. M = 11 takes
  // several workgroups of rows (and the tiled product for linear, which is not compared). K = 148 runs
  // teams of 16 lanes by default; aiming at 4 values of K per lane, K = 148 runs teams of 32 and
  // K = 1024 teams of 256.
  const N = 45;
  const cases = [[148, 64, [1, 2, 3, TEAM_ROWS]], [148, 4, [1, TEAM_ROWS]], [1024, 4, [
    1,
    TEAM_ROWS,
  ]]] as const;
  for (const [K, values, settings] of cases) {
    const prev = setTeamLaneValues(values);
    try {
      assert.equal(teamLanes(K), K === 148 ? (values === 4 ? 32 : 16) : 256);
      await checkRowsAlone(N, K, settings);
    } finally {
      setTeamLaneValues(prev);
    }
  }
});

async function checkRowsAlone(N: number, K: number, settings: readonly number[]): Promise<void> {
  const w = { parts: [Tensor.from(randomArray(N * K, 31, 0.3), [N, K])], shape: [N, K] as [number, number] };
  const w2 = { parts: [Tensor.from(randomArray(N * K, 32, 0.3), [N, K])], shape: [N, K] as [number, number] };
  const blocks = [{ w, row0: 0, rows: 20 }, { w: w2, row0: 3, rows: 17 }, { w, row0: 40, rows: 5 }] as const;
  const products: [string, (t: Tensor) => Tensor[]][] = [
    ["linear", (t) => t.shape[0] <= 8 ? [linear(t, w)] : []],
    ["swigluMatvec", (t) => [swigluMatvec(t, w, w2)]],
    ["splitMatvec", (t) => splitMatvec(t, [...blocks])],
  ];
  const most0 = useTeamRows(1);
  try {
    for (const most of settings) {
      useTeamRows(most);
      for (const M of [2, 5, 11]) {
        const x = randomArray(M * K, 40 + M);
        using all = Tensor.from(x, [M, K]);
        for (const [name, f] of products) {
          const whole = f(all);
          const single = Array.from({ length: whole.length ? M : 0 }, (_, m) => {
            using t = Tensor.from(x.subarray(m * K, (m + 1) * K), [1, K]);
            return f(t);
          });
          for (let j = 0; j < whole.length; j++) {
            const got = await whole[j].toArray();
            const cols = whole[j].shape[whole[j].shape.length - 1];
            for (let m = 0; m < M; m++) {
              assert.deepEqual(
                got.subarray(m * cols, (m + 1) * cols),
                await single[m][j].toArray(),
                `${name} output ${j}, K=${K}, M=${M}, ≤ ${most} rows per workgroup, row ${m}`,
              );
            }
          }
          for (const t of [...whole, ...single.flat()]) t.dispose();
        }
      }
    }
  } finally {
    useTeamRows(most0);
    w.parts[0].dispose();
    w2.parts[0].dispose();
  }
}

Deno.test("W_F16: splitMatvec and swigluMatvec on f16 weights equal their f32 selves on the weights rounded to halves, bit for bit", async () => {
  const round = (a: Float32Array) => Float32Array.from(Float16Array.from(a));
  for (const [M, K] of [[1, 64], [3, 200], [9, 2048]]) {
    const x = randomArray(M * K, 5 + M);
    using X = Tensor.from(x, [M, K]);
    // q, k, v of three weights, and three row blocks of one weight.
    const ws = [37, 12, 12].map((n, i) => round(randomArray(n * K, 20 + i, 0.5)));
    const full = ws.map((w) => Tensor.from(w, [w.length / K, K]));
    const half = full.map((t) => toF16(t));
    const weight = (t: Tensor): Weight => ({ parts: [t], shape: [t.shape[0], K] });
    const blocks = (ts: Tensor[]) =>
      ts.map((t) => ({ w: weight(t), row0: 0, rows: t.shape[0] })) as Parameters<typeof splitMatvec>[1];
    assert.ok(splitMatvecFits(...half.map(weight)));
    const a = splitMatvec(X, blocks(half));
    const b = splitMatvec(X, blocks(full));
    for (let j = 0; j < 3; j++) {
      assert.deepEqual(
        Array.from(await a[j].toArray()),
        Array.from(await b[j].toArray()),
        `split ${M}x${K} block ${j}`,
      );
      assertAllclose(await a[j].toArray(), productRef(x, ws[j], M, ws[j].length / K, K), {
        atol: 1e-4,
        name: `split f16 ${j}`,
      });
    }
    // gate and up: blocks 0 and 0 again (one shape), f16 against f32.
    using g16 = toF16(full[1]);
    assert.ok(swigluMatvecFits(weight(half[1]), weight(g16)));
    assert.ok(!swigluMatvecFits(weight(half[1]), weight(full[2])), "mixed dtypes do not fit");
    using s16 = swigluMatvec(X, weight(half[1]), weight(g16));
    using s32 = swigluMatvec(X, weight(full[1]), weight(full[1]));
    assert.deepEqual(Array.from(await s16.toArray()), Array.from(await s32.toArray()), `swiglu ${M}x${K}`);
    for (const t of [...a, ...b, ...full, ...half]) t.dispose();
  }
});
