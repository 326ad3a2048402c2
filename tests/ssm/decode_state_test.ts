import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import { commitMamba2, convWindow, selectiveReplay, ssdReplay } from "../../lib/ssm/decode_state.ts";
import { convWindowRef, selectiveReplayRef, ssdReplayRef } from "../../lib/ssm/decode_state_ref.ts";
import { selectiveStateUpdateRef } from "../../lib/ssm/selective_scan_ref.ts";
import { causalConv1dRef } from "../../lib/ssm/conv1d_ref.ts";
import { ssdRecurrentRef } from "../../lib/ssm/ssd_ref.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();

const TOL = { rtol: 1e-4, atol: 2e-5 };

Deno.test("decode_state.wgsl ssd_replay: the state after m cached steps equals the SSD recurrence over them", async () => {
  const d = { B: 2, T: 5, H: 3, P: 4, N: 8 };
  const s0 = randomArray(d.B * d.H * d.P * d.N, 1);
  const X = randomArray(d.B * d.T * d.H * d.P, 2);
  const A = randomArray(d.B * d.T * d.H, 3, 0.5).map((a) => -Math.abs(a));
  const Bs = randomArray(d.B * d.T * d.H * d.N, 4);
  using ck = Tensor.from(s0, [d.B, d.H, d.P, d.N]);
  using tX = Tensor.from(X, [d.B, d.T, d.H, d.P]);
  using tA = Tensor.from(A, [d.B, d.T, d.H]);
  using tB = Tensor.from(Bs, [d.B, d.T, d.H, d.N]);
  for (const m of [0, 2, d.T]) {
    using out = Tensor.from(new Float32Array(s0.length).fill(NaN), [d.B, d.H, d.P, d.N]);
    ssdReplay(ck, { X: tX, A: tA, Bs: tB }, m, out);
    const want = ssdReplayRef(s0, X, A, Bs, m, d);
    assertAllclose(await out.toArray(), want, { ...TOL, name: `replay m=${m}` });
    if (m > 0) {
      // The reference agrees with the SSD recurrence's final state over the first m steps.
      const take = (x: Float32Array, w: number) =>
        Float32Array.from({ length: d.B * m * w }, (_, i) => {
          const b = Math.floor(i / (m * w));
          return x[b * d.T * w + (i % (m * w))];
        });
      const C = new Float32Array(d.B * m * d.H * d.N);
      const rec = ssdRecurrentRef({
        dims: { batch: d.B, L: m, H: d.H, P: d.P, N: d.N },
        X: take(X, d.H * d.P),
        A: take(A, d.H),
        B: take(Bs, d.H * d.N),
        C,
        initialState: s0,
      });
      assertAllclose(want, rec.finalState, { atol: 1e-12, rtol: 0, name: `ref vs recurrence m=${m}` });
    }
  }
  using bad = Tensor.zeros([d.B, d.H, d.P, d.N]);
  assert.throws(() => ssdReplay(ck, { X: tX, A: tA, Bs: tB }, d.T + 1, bad), ShapeError);
  assert.throws(() => ssdReplay(ck, { X: tX, A: tA, Bs: tB }, 1, ck), ShapeError);
});

Deno.test("decode_state.wgsl conv_window: the conv state after m kept inputs equals causal conv1d's final state", async () => {
  const d = { B: 2, T: 4, C: 5, W: 4 };
  const s0 = randomArray(d.B * d.C * (d.W - 1), 5);
  const xs = randomArray(d.B * d.T * d.C, 6);
  using ck = Tensor.from(s0, [d.B, d.C, d.W - 1]);
  using tx = Tensor.from(xs, [d.B, d.T, d.C]);
  for (const m of [0, 1, 2, d.T]) {
    using out = Tensor.from(new Float32Array(s0.length).fill(NaN), [d.B, d.C, d.W - 1]);
    convWindow(ck, tx, m, out);
    const want = convWindowRef(s0, xs, m, d);
    assertAllclose(await out.toArray(), want, { atol: 0, rtol: 0, name: `window m=${m}` });
    if (m > 0) {
      const first = Float32Array.from({ length: d.B * m * d.C }, (_, i) => {
        const b = Math.floor(i / (m * d.C));
        return xs[b * d.T * d.C + (i % (m * d.C))];
      });
      const w = new Float32Array(d.C * d.W);
      const conv = causalConv1dRef(first, w, { B: d.B, L: m, C: d.C, W: d.W }, { initialState: s0 });
      assertAllclose(want, conv.finalState, { atol: 0, rtol: 0, name: `ref vs conv final state m=${m}` });
    }
  }
  using wrong = Tensor.zeros([d.B, d.C, d.W]);
  assert.throws(() => convWindow(ck, tx, 1, wrong), ShapeError);
});

Deno.test("decode_state.wgsl selective_replay: the Mamba-1 state after m cached steps equals m token steps", async () => {
  const d = { B: 2, T: 4, D: 6, G: 3, N: 4 };
  const s0 = randomArray(d.B * d.D * d.N, 7);
  const x = randomArray(d.B * d.T * d.D, 8);
  const dt = randomArray(d.B * d.T * d.D, 9);
  const Bs = randomArray(d.B * d.T * d.G * d.N, 10);
  const A = randomArray(d.D * d.N, 11).map((a) => -0.2 - Math.abs(a));
  const bias = randomArray(d.D, 12, 0.5);
  using ck = Tensor.from(s0, [d.B, d.D, d.N]);
  const inp = {
    x: Tensor.from(x, [d.B, d.T, d.D]),
    dt: Tensor.from(dt, [d.B, d.T, d.D]),
    Bs: Tensor.from(Bs, [d.B, d.T, d.G, d.N]),
    A: Tensor.from(A, [d.D, d.N]),
    dtBias: Tensor.from(bias, [d.D]),
  };
  try {
    for (const m of [0, 1, 3, d.T]) {
      using out = Tensor.from(new Float32Array(s0.length).fill(NaN), [d.B, d.D, d.N]);
      selectiveReplay(ck, inp, m, out);
      const want = selectiveReplayRef(s0, x, dt, Bs, A, bias, m, d);
      assertAllclose(await out.toArray(), want, { ...TOL, name: `replay m=${m}` });
      // The same state from m one-token steps of selective_state_update's reference.
      let state: ArrayLike<number> = s0;
      for (let t = 0; t < m; t++) {
        const row = (a: Float32Array, w: number) =>
          Float32Array.from({ length: d.B * w }, (_, i) => a[(Math.floor(i / w) * d.T + t) * w + (i % w)]);
        state = selectiveStateUpdateRef({
          dims: { batch: d.B, D: d.D, N: d.N, G: d.G },
          state,
          x: row(x, d.D),
          dt: row(dt, d.D),
          A,
          B: row(Bs, d.G * d.N),
          C: new Float32Array(d.B * d.G * d.N),
          dtBias: bias,
        }, { dtSoftplus: true }).state;
      }
      assertAllclose(want, state, { atol: 1e-12, rtol: 1e-12, name: `ref vs steps m=${m}` });
    }
    using wrong = Tensor.zeros([d.B, d.D, d.N + 1]);
    assert.throws(() => selectiveReplay(ck, inp, 1, wrong), ShapeError);
  } finally {
    for (const t of Object.values(inp)) t.dispose();
  }
});

Deno.test("decode_state.wgsl with the kept count on the GPU: m < used equals the host count; m = used (or more) leaves the state as it is", async () => {
  const d = { B: 1, T: 4, H: 2, P: 4, N: 4, C: 3, W: 4 };
  const used = 3; // steps the round cached (of T)
  const s0 = randomArray(d.B * d.H * d.P * d.N, 21);
  const X = randomArray(d.B * d.T * d.H * d.P, 22);
  const A = randomArray(d.B * d.T * d.H, 23, 0.5).map((a) => -Math.abs(a));
  const Bs = randomArray(d.B * d.T * d.H * d.N, 24);
  const c0 = randomArray(d.B * d.C * (d.W - 1), 25);
  const xs = randomArray(d.B * d.T * d.C, 26);
  using ck = Tensor.from(s0, [d.B, d.H, d.P, d.N]);
  using cc = Tensor.from(c0, [d.B, d.C, d.W - 1]);
  using tX = Tensor.from(X, [d.B, d.T, d.H, d.P]);
  using tA = Tensor.from(A, [d.B, d.T, d.H]);
  using tB = Tensor.from(Bs, [d.B, d.T, d.H, d.N]);
  using tx = Tensor.from(xs, [d.B, d.T, d.C]);
  const sentinel = 12345;
  for (const m of [0, 1, 2, used, used + 2]) {
    using counts = Tensor.from([99, m], [2], "i32");
    const dev = { counts, word: 1, max: used };
    using out = Tensor.from(new Float32Array(s0.length).fill(sentinel), [d.B, d.H, d.P, d.N]);
    using win = Tensor.from(new Float32Array(c0.length).fill(sentinel), [d.B, d.C, d.W - 1]);
    ssdReplay(ck, { X: tX, A: tA, Bs: tB }, dev, out);
    convWindow(cc, tx, dev, win);
    if (m < used) {
      assertAllclose(await out.toArray(), ssdReplayRef(s0, X, A, Bs, m, d), {
        ...TOL,
        name: `replay m=${m}`,
      });
      assertAllclose(await win.toArray(), convWindowRef(c0, xs, m, d), {
        atol: 0,
        rtol: 0,
        name: `window m=${m}`,
      });
    } else {
      assert.ok((await out.toArray()).every((v) => v === sentinel), `m=${m}: the state was rewritten`);
      assert.ok((await win.toArray()).every((v) => v === sentinel), `m=${m}: the window was rewritten`);
    }
  }
  using f = Tensor.zeros([2]);
  using out = Tensor.zeros([d.B, d.H, d.P, d.N]);
  assert.throws(
    () => ssdReplay(ck, { X: tX, A: tA, Bs: tB }, { counts: f, word: 0, max: 1 }, out),
    ShapeError,
  );
  using i = Tensor.zeros([2], "i32");
  assert.throws(
    () => ssdReplay(ck, { X: tX, A: tA, Bs: tB }, { counts: i, word: 0, max: d.T + 1 }, out),
    ShapeError,
  );
});

Deno.test("decode_state.wgsl refresh: the state after the kept steps also lands in the checkpoint (the next round's)", async () => {
  const d = { B: 1, T: 4, H: 2, P: 4, N: 4, C: 3, W: 4 };
  const used = 3;
  const s0 = randomArray(d.B * d.H * d.P * d.N, 31);
  const X = randomArray(d.B * d.T * d.H * d.P, 32);
  const A = randomArray(d.B * d.T * d.H, 33, 0.5).map((a) => -Math.abs(a));
  const Bs = randomArray(d.B * d.T * d.H * d.N, 34);
  const c0 = randomArray(d.B * d.C * (d.W - 1), 35);
  const xs = randomArray(d.B * d.T * d.C, 36);
  using tX = Tensor.from(X, [d.B, d.T, d.H, d.P]);
  using tA = Tensor.from(A, [d.B, d.T, d.H]);
  using tB = Tensor.from(Bs, [d.B, d.T, d.H, d.N]);
  using tx = Tensor.from(xs, [d.B, d.T, d.C]);
  const cur = randomArray(s0.length, 37); // the state the forward left (all steps kept)
  const curW = randomArray(c0.length, 38);
  for (const m of [0, 2, used]) {
    using counts = Tensor.from([m], [1], "i32");
    const dev = { counts, word: 0, max: used, refresh: true };
    using ck = Tensor.from(s0, [d.B, d.H, d.P, d.N]);
    using cc = Tensor.from(c0, [d.B, d.C, d.W - 1]);
    using out = Tensor.from(cur, [d.B, d.H, d.P, d.N]);
    using win = Tensor.from(curW, [d.B, d.C, d.W - 1]);
    ssdReplay(ck, { X: tX, A: tA, Bs: tB }, dev, out);
    convWindow(cc, tx, dev, win);
    const [o, c, w, cw] = [await out.toArray(), await ck.toArray(), await win.toArray(), await cc.toArray()];
    if (m < used) {
      assertAllclose(o, ssdReplayRef(s0, X, A, Bs, m, d), { ...TOL, name: `replay m=${m}` });
      assertAllclose(w, convWindowRef(c0, xs, m, d), { atol: 0, rtol: 0, name: `window m=${m}` });
    } else {
      assert.deepEqual(Array.from(o), Array.from(cur), "all kept: the state stays");
      assert.deepEqual(Array.from(w), Array.from(curW), "all kept: the window stays");
    }
    assert.deepEqual(Array.from(c), Array.from(o), `m=${m}: the checkpoint is the new state`);
    assert.deepEqual(Array.from(cw), Array.from(w), `m=${m}: the conv checkpoint is the new window`);
  }
});

Deno.test("decode_state.wgsl commit_refresh: a Mamba-2 layer's device commit in one dispatch equals ssd_replay + conv_window with refresh", async () => {
  const d = { B: 2, T: 4, H: 2, P: 4, N: 4, C: 5, W: 4 };
  const used = 3;
  const arr = (n: number, seed: number) => randomArray(n, seed);
  const s0 = arr(d.B * d.H * d.P * d.N, 41), cur = arr(s0.length, 42);
  const c0 = arr(d.B * d.C * (d.W - 1), 43), curW = arr(c0.length, 44);
  const X = arr(d.B * d.T * d.H * d.P, 45), Bs = arr(d.B * d.T * d.H * d.N, 46);
  const A = arr(d.B * d.T * d.H, 47).map((a) => -Math.abs(a));
  const xs = arr(d.B * d.T * d.C, 48);
  using tX = Tensor.from(X, [d.B, d.T, d.H, d.P]);
  using tA = Tensor.from(A, [d.B, d.T, d.H]);
  using tB = Tensor.from(Bs, [d.B, d.T, d.H, d.N]);
  using tx = Tensor.from(xs, [d.B, d.T, d.C]);
  const inputs = { X: tX, A: tA, Bs: tB };
  for (const m of [0, 2, used]) {
    using counts = Tensor.from([m], [1], "i32");
    const dev = { counts, word: 0, max: used, refresh: true };
    const t = () => ({
      ck: Tensor.from(s0, [d.B, d.H, d.P, d.N]),
      out: Tensor.from(cur, [d.B, d.H, d.P, d.N]),
      cc: Tensor.from(c0, [d.B, d.C, d.W - 1]),
      win: Tensor.from(curW, [d.B, d.C, d.W - 1]),
    });
    const [a, b] = [t(), t()];
    try {
      ssdReplay(a.ck, inputs, dev, a.out);
      convWindow(a.cc, tx, dev, a.win);
      commitMamba2({ checkpoint: b.ck, inputs, out: b.out }, { checkpoint: b.cc, xs: tx, out: b.win }, dev);
      for (const k of ["ck", "out", "cc", "win"] as const) {
        assert.deepEqual(Array.from(await b[k].toArray()), Array.from(await a[k].toArray()), `m=${m}: ${k}`);
      }
    } finally {
      for (const x of [a, b]) for (const v of Object.values(x)) v.dispose();
    }
  }
});
