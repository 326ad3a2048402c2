import assert from "node:assert/strict";
import { ShapeError } from "../../lib/errors.ts";
import { initGpu } from "../../lib/gpu/device.ts";
import {
  ARGMAX_SLICE,
  argmaxParts,
  argmaxSlices,
  GpuSampler,
  gpuUniform,
  samplerParams,
  SPLIT_ARGMAX_FROM,
} from "../../lib/decode/gpu_sampler.ts";
import { roundSeed } from "../../lib/decode/speculative.ts";
import { dispatch } from "../../lib/gpu/commands.ts";
import { argmax, samplingDistribution } from "../../lib/decode/sampling.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { assertAllclose, randomArray } from "../_assert.ts";

await initGpu();

const V = 700;
const B = 3;
const logits = randomArray(B * V, 1, 6);
const cases = [
  { temperature: 1 },
  { temperature: 0.7, topK: 20 },
  { temperature: 1.3, topP: 0.9 },
  { temperature: 0.8, topK: 50, topP: 0.8 },
];

// A vocabulary past one pass of 8 × 256 entries, not a multiple of 8 (each invocation loads eight
// entries at a time; its chunk of the inverse CDF is 17 entries).
const V2 = 4133;
const logits2 = randomArray(B * V2, 2, 6);

Deno.test("sample.wgsl: the kept, normalised distribution equals the host's (temperature, top-k, top-p)", async () => {
  for (const [V, logits] of [[700, randomArray(B * 700, 1, 6)], [V2, logits2]] as const) {
    await checkDistribution(V, logits);
  }
});

async function checkDistribution(V: number, logits: Float32Array): Promise<void> {
  using x = Tensor.from(logits, [B, 1, V]);
  using s = new GpuSampler(B, V, 4);
  for (const opts of cases) {
    using d = s.distribution(x, opts);
    const got = await d.toArray();
    for (let b = 0; b < B; b++) {
      const want = samplingDistribution(logits.subarray(b * V, (b + 1) * V), opts);
      assertAllclose(got.subarray(b * V, (b + 1) * V), want, {
        atol: 1e-6,
        rtol: 1e-4,
        name: `${JSON.stringify(opts)} V=${V} row ${b}`,
      });
    }
  }
}

Deno.test("sample.wgsl: draws follow the inverse CDF of U(seed, step) and land in the next input; greedy is argmax", async () => {
  await checkDraws(V, logits);
  await checkDraws(V2, logits2);
});

async function checkDraws(V: number, logits: Float32Array): Promise<void> {
  using x = Tensor.from(logits, [B, 1, V]);
  using s = new GpuSampler(B, V, 8);
  const opts = { temperature: 0.9, topP: 0.95, seed: 1234 };
  for (let step = 0; step < 6; step++) s.sample(x, step, opts);
  s.sample(x, 6, { temperature: 0 });
  const rows = await s.read(0, 7);
  const next = await s.next.toArray();
  for (let b = 0; b < B; b++) {
    const row = logits.subarray(b * V, (b + 1) * V);
    const p = samplingDistribution(row, opts);
    for (let step = 0; step < 6; step++) {
      const u = gpuUniform(opts.seed, step, b);
      let acc = 0;
      let want = -1;
      for (let v = 0; v < V && want < 0; v++) if ((acc += p[v]) > u) want = v;
      assert.equal(rows[b][step], want, `V=${V} row ${b} step ${step}`);
    }
    assert.equal(rows[b][6], argmax(row), `greedy, V=${V}`);
    assert.equal(next[b], rows[b][6], "the last token is the next input");
  }
}

Deno.test("sample.wgsl sample_round: the round counter's seed and the distribution in one dispatch equal sample + distribution", async () => {
  using x = Tensor.from(logits.subarray(0, V), [1, V]);
  const seed = 77, round = 5;
  using counts = Tensor.from([0, round], [2], "i32");
  for (const o of [{ temperature: 0 }, ...cases]) {
    using sampler = new GpuSampler(1, V, 4);
    using tokens = Tensor.zeros([1, 4], "i32");
    using next = Tensor.zeros([1, 1], "i32");
    using dist = Tensor.zeros([1, V]);
    dispatch(
      { file: "sample.wgsl", entry: "sample_round" },
      [x.buffer, tokens.buffer, next.buffer, dist.buffer, counts.buffer],
      samplerParams(1, V, 4, 2, { ...o, seed }).u32(1, 1),
      [1],
    );
    sampler.sample(x, 2, { ...o, seed: roundSeed(seed, round, 0) });
    using want = sampler.distribution(x, o);
    const [got] = await sampler.read(2, 3);
    const t = (await tokens.toArray()) as Int32Array;
    assert.equal(t[2], got[0], `${JSON.stringify(o)}: token`);
    assert.equal(((await next.toArray()) as Int32Array)[0], got[0]);
    assert.deepEqual(Array.from(await dist.toArray()), Array.from(await want.toArray()), "same distribution");
  }
});

Deno.test("sample.wgsl sample_next: the step from a position counter (slot and draw), which it advances, equals sample at that step", async () => {
  using x = Tensor.from(logits.subarray(0, V), [1, V]);
  for (const o of [{ temperature: 0 }, { temperature: 1.3, topP: 0.9, seed: 4 }]) {
    using counts = Tensor.from([-1, 7], [2], "i32"); // word 1: position 7 = prompt 5 + step 2
    using tokens = Tensor.zeros([1, 6], "i32");
    using next = Tensor.zeros([1, 1], "i32");
    using sampler = new GpuSampler(1, V, 6);
    for (let i = 0; i < 3; i++) {
      dispatch(
        { file: "sample.wgsl", entry: "sample_next" },
        [x.buffer, tokens.buffer, next.buffer, null, counts.buffer],
        samplerParams(1, V, 6, 5, o).u32(1),
        [1],
      );
      sampler.sample(x, 2 + i, o);
    }
    const [want] = await sampler.read(2, 5);
    const t = (await tokens.toArray()) as Int32Array;
    assert.deepEqual(Array.from(t.subarray(2, 5)), Array.from(want), JSON.stringify(o));
    assert.deepEqual(
      Array.from((await counts.toArray()) as Int32Array),
      [-1, 10],
      "the counter advanced by 3",
    );
  }
});

Deno.test("GpuSampler.sampleNext: B rows at the counter's step (slot and draw) equal sample at that step; count_up advances the counter once per call", async () => {
  using x = Tensor.from(logits, [B, V]);
  for (const o of [{ temperature: 0 }, { temperature: 0.8, topK: 50, topP: 0.8, seed: 9 }]) {
    using counts = Tensor.from([6, -1], [2], "i32"); // word 0: position 6 = prompt 5 + step 1
    using sampler = new GpuSampler(B, V, 5);
    using want = new GpuSampler(B, V, 5);
    for (let i = 0; i < 3; i++) {
      sampler.sampleNext(x, counts, 5, o);
      want.sample(x, 1 + i, o);
    }
    const got = await sampler.read(1, 4);
    const exp = await want.read(1, 4);
    for (let b = 0; b < B; b++) assert.deepEqual(Array.from(got[b]), Array.from(exp[b]), `row ${b}`);
    assert.deepEqual(
      Array.from((await counts.toArray()) as Int32Array),
      [9, -1],
      "the counter advanced by 3",
    );
    assert.deepEqual(
      Array.from((await sampler.next.toArray()) as Int32Array),
      exp.map((r) => r[2]),
      "next holds the last tokens",
    );
  }
  using sampler = new GpuSampler(B, V, 5);
  using counts = Tensor.from([0], [1], "i32");
  using wrong = Tensor.zeros([B, V + 1]);
  assert.throws(() => sampler.sampleNext(wrong, counts, 0), ShapeError);
  assert.throws(() => sampler.sampleNext(x, counts, 0, { nparts: 2 }), ShapeError);
});

Deno.test("sample.wgsl split argmax: argmax_part's slice maxima, reduced by sample, sample_next and sample_round, give each row's first maximum", async () => {
  assert.equal(
    argmaxSlices(SPLIT_ARGMAX_FROM - 1, { temperature: 0 }),
    0,
    "small vocabularies stay one pass",
  );
  assert.equal(argmaxSlices(128256, { temperature: 0 }), Math.ceil(128256 / ARGMAX_SLICE));
  assert.equal(argmaxSlices(128256, { temperature: 1 }), 0, "sampling never splits");
  assert.equal(argmaxSlices(4096, { temperature: 0, splitArgmax: true }), 2);
  assert.equal(argmaxSlices(2 ** 24, { temperature: 0 }), 0, "past 2^24 indices: one pass");
  assert.throws(() => argmaxSlices(2 ** 24, { temperature: 0, splitArgmax: true }), ShapeError);
  // 40,001 logits in 20 slices (the last one short), four rows: row 0 plain; row 1 ties its maximum in
  // two slices (the first index wins); row 2 has it in the ragged last slice; row 3 ties within a slice.
  const Vs = 40001, R = 4;
  const G = argmaxSlices(Vs, { temperature: 0 });
  assert.equal(G, 20);
  const x = randomArray(R * Vs, 9, 4);
  const plant = (r: number, v: number) => (x[r * Vs + v] = 9);
  plant(1, 30000);
  plant(1, 5000);
  plant(2, 39998);
  plant(3, 777);
  plant(3, 1033);
  const want = [0, 1, 2, 3].map((r) => argmax(x.subarray(r * Vs, (r + 1) * Vs)));
  assert.deepEqual(want.slice(1), [5000, 39998, 777]);
  using lx = Tensor.from(x, [R, Vs]);
  using parts = Tensor.empty([R, G, 2]);
  argmaxParts(lx, parts, R, Vs, G);
  using tokens = Tensor.zeros([R, 1], "i32");
  using next = Tensor.zeros([R, 1], "i32");
  dispatch(
    { file: "sample.wgsl", entry: "sample" },
    [parts.buffer, tokens.buffer, next.buffer],
    samplerParams(R, Vs, 1, 0, { temperature: 0 }).u32(0, 0, G),
    [R],
  );
  assert.deepEqual(Array.from((await tokens.toArray()) as Int32Array), want, "sample from the parts");
  // One pass over the logits (nparts 0) agrees.
  using whole = new GpuSampler(R, Vs, 1);
  whole.sample(lx, 0, { temperature: 0 });
  assert.deepEqual(Array.from((await whole.next.toArray()) as Int32Array), want, "one pass");
  // Row 1's parts through sample_next and sample_round (the decode loops' consumers).
  using row1 = Tensor.from(x.subarray(Vs, 2 * Vs), [1, Vs]);
  using p1 = Tensor.empty([G, 2]);
  argmaxParts(row1, p1, 1, Vs, G);
  using counts = Tensor.from([3, 0], [2], "i32");
  using t1 = Tensor.zeros([1, 4], "i32");
  using n1 = Tensor.zeros([1, 1], "i32");
  dispatch(
    { file: "sample.wgsl", entry: "sample_next" },
    [p1.buffer, t1.buffer, n1.buffer, null, counts.buffer],
    samplerParams(1, Vs, 4, 2, { temperature: 0 }).u32(0, 0, G),
    [1],
  );
  using unused = Tensor.zeros([1]);
  dispatch(
    { file: "sample.wgsl", entry: "sample_round" },
    [p1.buffer, t1.buffer, n1.buffer, unused.buffer, counts.buffer],
    samplerParams(1, Vs, 4, 3, { temperature: 0 }).u32(1, 0, G),
    [1],
  );
  assert.deepEqual(Array.from((await t1.toArray()) as Int32Array), [0, 5000, 0, 5000], "slots 1 and 3");
  assert.equal(((await n1.toArray()) as Int32Array)[0], 5000);
});
