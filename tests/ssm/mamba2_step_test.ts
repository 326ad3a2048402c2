import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { addSkip, ssdInputs } from "../../lib/ssm/mamba2_glue.ts";
import { addSkipRef, ssdInputsRef } from "../../lib/ssm/mamba2_glue_ref.ts";
import { mamba2ConvSteps, mamba2SsdStep } from "../../lib/ssm/mamba2_step.ts";
import { causalConv1dRef } from "../../lib/ssm/conv1d_ref.ts";
import { ssdStateUpdate } from "../../lib/ssm/ssd.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();

Deno.test("mamba2_step.wgsl: the fused one-token step equals ssd_inputs + the state step + add_skip (and the float64 twins), and records X, A, B in the round's slot", async () => {
  const d = { H: 4, Hkv: 2, P: 4, N: 4 };
  const R = 2, T = 3, slot = 1, cols = 11, col0 = 5; // dt_raw is a slice of wider rows, as in_proj's
  const C = 2 * d.Hkv * d.P + d.H * d.N;
  const xbc = randomArray(R * C, 1);
  const dtRaw = randomArray(R * cols, 2);
  const dtBias = randomArray(d.H, 3, 0.5);
  const aLog = randomArray(d.H, 4, 0.5);
  const D = randomArray(d.H, 5);
  const s0 = randomArray(R * d.H * d.P * d.N, 6);
  using tx = Tensor.from(xbc, [R, C]);
  using tdt = Tensor.from(dtRaw, [R, cols]);
  using tb = Tensor.from(dtBias, [d.H]);
  using ta = Tensor.from(aLog, [d.H]);
  using tD = Tensor.from(D, [d.H]);
  using fusedState = Tensor.from(s0, [R, d.H, d.P, d.N]);
  using refState = Tensor.from(s0, [R, d.H, d.P, d.N]);
  const sentinel = 777;
  using X = Tensor.from(new Float32Array(R * T * d.H * d.P).fill(sentinel), [R, T, d.H, d.P]);
  using A = Tensor.from(new Float32Array(R * T * d.H).fill(sentinel), [R, T, d.H]);
  using Bs = Tensor.from(new Float32Array(R * T * d.H * d.N).fill(sentinel), [R, T, d.H, d.N]);
  const dt = { dtRaw: tdt, dtColumn: col0, dtBias: tb, aLog: ta };
  using xs = Tensor.zeros([R, T, C]);
  using y = mamba2SsdStep(tx, dt, tD, fusedState, d, { xs, X, A, Bs, slot });
  // The three kernels it fuses.
  const si = ssdInputs(tx, dt, d);
  using Y = ssdStateUpdate(refState, si.X.view([R, d.H, d.P]), si.A, si.B, si.C);
  addSkip(Y, tx, tD, d, true);
  const [gotY, wantY] = [await y.toArray(), await Y.toArray()];
  assertAllclose(gotY, wantY, { rtol: 1e-6, atol: 1e-7, name: "y vs the three kernels" });
  assertAllclose(await fusedState.toArray(), await refState.toArray(), {
    rtol: 1e-6,
    atol: 1e-7,
    name: "state",
  });
  // The record: slot `slot` of every row holds X, A, B; the other slots are untouched.
  const [gX, gA, gB] = [await X.toArray(), await A.toArray(), await Bs.toArray()];
  const [wX, wA, wB] = [await si.X.toArray(), await si.A.toArray(), await si.B.toArray()];
  for (const [got, want, w] of [[gX, wX, d.H * d.P], [gA, wA, d.H], [gB, wB, d.H * d.N]] as const) {
    for (let r = 0; r < R; r++) {
      for (let t = 0; t < T; t++) {
        const row = Array.from(got.subarray((r * T + t) * w, (r * T + t + 1) * w));
        if (t === slot) assert.deepEqual(row, Array.from(want.subarray(r * w, (r + 1) * w)));
        else assert.ok(row.every((v) => v === sentinel), `slot ${t} of row ${r} was written`);
      }
    }
  }
  for (const t of [si.X, si.A, si.B, si.C]) t.dispose();
  // float64: the SSD inputs, one recurrence step, the skip.
  const dtCols = Float64Array.from(
    { length: R * d.H },
    (_, i) => dtRaw[Math.floor(i / d.H) * cols + col0 + (i % d.H)],
  );
  const ref = ssdInputsRef(xbc, dtCols, dtBias, aLog, d);
  const S = Float64Array.from(s0);
  const Y64 = new Float64Array(R * d.H * d.P);
  for (let r = 0; r < R; r++) {
    for (let h = 0; h < d.H; h++) {
      const decay = Math.exp(ref.A[r * d.H + h]);
      for (let p = 0; p < d.P; p++) {
        let acc = 0;
        for (let n = 0; n < d.N; n++) {
          const i = ((r * d.H + h) * d.P + p) * d.N + n;
          S[i] = decay * S[i] + ref.X[(r * d.H + h) * d.P + p] * ref.B[(r * d.H + h) * d.N + n];
          acc += S[i] * ref.C[(r * d.H + h) * d.N + n];
        }
        Y64[(r * d.H + h) * d.P + p] = acc;
      }
    }
  }
  assertAllclose(gotY, addSkipRef(Y64, xbc, D, d), { rtol: 1e-4, atol: 1e-5, name: "y vs float64" });
  assertAllclose(await fusedState.toArray(), S, { rtol: 1e-4, atol: 1e-5, name: "state vs float64" });
  // Without a round, and a bad slot.
  using y2 = mamba2SsdStep(tx, dt, tD, fusedState, d);
  assert.deepEqual(y2.shape, [R, d.H, d.P]);
  assert.throws(() => mamba2SsdStep(tx, dt, tD, fusedState, d, { xs, X, A, Bs, slot: T }), ShapeError);
});

Deno.test("mamba2_step.wgsl over L tokens: the recurrence and the conv equal L one-token steps (float64), and fill the round's slots", async () => {
  // N = 4: teams of 4 lanes, 64 state rows per workgroup; N = 5: teams of 8 (3 lanes idle) and 160 rows
  // over 5 workgroups; N = 300: one invocation per row (step_rows).
  for (
    const d of [{ H: 2, Hkv: 1, P: 4, N: 4 }, { H: 2, Hkv: 1, P: 40, N: 5 }, { H: 2, Hkv: 2, P: 2, N: 300 }]
  ) {
    await checkStepsOverL(d);
  }
});

async function checkStepsOverL(d: { H: number; Hkv: number; P: number; N: number }): Promise<void> {
  const Bt = 2, L = 3, T = 5, slot = 1, W = 4;
  const C = 2 * d.Hkv * d.P + d.H * d.N;
  const xin = randomArray(Bt * L * C, 11);
  const cw = randomArray(C * W, 12, 0.5);
  const cb = randomArray(C, 13, 0.2);
  const c0 = randomArray(Bt * C * (W - 1), 14);
  using tin = Tensor.from(xin, [Bt, L, C]);
  using tw = Tensor.from(cw, [C, W]);
  using tb = Tensor.from(cb, [C]);
  using conv = Tensor.from(c0, [Bt, C, W - 1]);
  using xs = Tensor.zeros([Bt, T, C]);
  using X = Tensor.zeros([Bt, T, d.H, d.P]);
  using A = Tensor.zeros([Bt, T, d.H]);
  using Bs = Tensor.zeros([Bt, T, d.H, d.N]);
  const rec = { xs, X, A, Bs, slot };
  using xc = mamba2ConvSteps(conv, tin, tw, tb, rec);
  const ref = causalConv1dRef(xin, cw, { B: Bt, L, C, W }, {
    initialState: c0,
    bias: cb,
    activation: "silu",
  });
  assertAllclose(await xc.toArray(), ref.y, { rtol: 1e-5, atol: 1e-6, name: "conv y" });
  assertAllclose(await conv.toArray(), ref.finalState, { atol: 0, rtol: 0, name: "conv state" });
  const gxs = await xs.toArray();
  for (let b = 0; b < Bt; b++) {
    for (let t = 0; t < T; t++) {
      const row = Array.from(gxs.subarray((b * T + t) * C, (b * T + t + 1) * C));
      const want = t >= slot && t < slot + L
        ? Array.from(xin.subarray((b * L + t - slot) * C, (b * L + t - slot + 1) * C))
        : Array(C).fill(0);
      assert.deepEqual(row, want, `conv input slot ${t} of row ${b}`);
    }
  }
  // The SSD over the L tokens.
  const xcv = await xc.toArray();
  const dtRaw = randomArray(Bt * L * d.H, 15);
  const dtBias = randomArray(d.H, 16, 0.5);
  const aLog = randomArray(d.H, 17, 0.5);
  const D = randomArray(d.H, 18);
  const s0 = randomArray(Bt * d.H * d.P * d.N, 19);
  using tdt = Tensor.from(dtRaw, [Bt * L, d.H]);
  using tbias = Tensor.from(dtBias, [d.H]);
  using ta = Tensor.from(aLog, [d.H]);
  using tD = Tensor.from(D, [d.H]);
  using st = Tensor.from(s0, [Bt, d.H, d.P, d.N]);
  using y = mamba2SsdStep(
    xc.view([Bt * L, C]),
    { dtRaw: tdt, dtColumn: 0, dtBias: tbias, aLog: ta },
    tD,
    st,
    d,
    rec,
  );
  const inp = ssdInputsRef(xcv, dtRaw, dtBias, aLog, d);
  const S = Float64Array.from(s0);
  const Y64 = new Float64Array(Bt * L * d.H * d.P);
  for (let b = 0; b < Bt; b++) {
    for (let t = 0; t < L; t++) {
      const r = b * L + t;
      for (let h = 0; h < d.H; h++) {
        const decay = Math.exp(inp.A[r * d.H + h]);
        for (let p = 0; p < d.P; p++) {
          let acc = 0;
          for (let n = 0; n < d.N; n++) {
            const i = ((b * d.H + h) * d.P + p) * d.N + n;
            S[i] = decay * S[i] + inp.X[(r * d.H + h) * d.P + p] * inp.B[(r * d.H + h) * d.N + n];
            acc += S[i] * inp.C[(r * d.H + h) * d.N + n];
          }
          Y64[(r * d.H + h) * d.P + p] = acc;
        }
      }
    }
  }
  const tag = `N = ${d.N}, P = ${d.P}`;
  assertAllclose(await y.toArray(), addSkipRef(Y64, xcv, D, d), {
    rtol: 1e-4,
    atol: 1e-5,
    name: `y over L, ${tag}`,
  });
  assertAllclose(await st.toArray(), S, { rtol: 1e-4, atol: 1e-5, name: `state after L, ${tag}` });
  const [gA, gX, gB] = [await A.toArray(), await X.toArray(), await Bs.toArray()];
  for (let b = 0; b < Bt; b++) {
    for (let t = 0; t < L; t++) {
      const [at, r] = [b * T + slot + t, b * L + t];
      for (let h = 0; h < d.H; h++) {
        assertAllclose([gA[at * d.H + h]], [inp.A[r * d.H + h]], { name: `recorded A, ${tag}` });
        const slice = (a: ArrayLike<number>, i: number, w: number) => Array.from(a).slice(i * w, (i + 1) * w);
        assertAllclose(slice(gX, at * d.H + h, d.P), slice(inp.X, r * d.H + h, d.P), {
          name: `recorded X, ${tag}`,
        });
        assertAllclose(slice(gB, at * d.H + h, d.N), slice(inp.B, r * d.H + h, d.N), {
          name: `recorded B, ${tag}`,
        });
      }
    }
  }
}
