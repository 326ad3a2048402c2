/**
 * Benchmark timing under sustained load. A GPU's clocks ramp up only after some time of continuous
 * work (on the H100 a single call timed from idle read up to 5× slower than the same kernel after
 * 2.5 s of load), and every readback in Deno leaves the GPU idle for ≥ 11 ms. So each measurement here
 *
 * 1. records the work once (pipelines compiled, buffer pool filled) and counts its dispatches;
 * 2. warms up: batches of k back-to-back calls, each batch timed from the start of its first compute
 *    pass to the end of an empty pass recorded after it (so copies and submits inside the work are
 *    timed too), many batches
 *    submitted before one readback, until ≥ `warmMs` of GPU time has elapsed (k is chosen so that a
 *    batch takes ≥ `sampleMs`, and stays below the uniform ring's 2048 dispatches per submit);
 * 3. measures `samples` such batches the same way and reports the median time per call;
 * 4. also times single calls with a readback after each (the previous method), as `ms_single`.
 *
 * All times are the GPU's own timestamps (the start and end of a compute pass), never the host's.
 *
 * @module
 */
import type { Flags, FlagSpec } from "../lib/cli/args.ts";
import { GpuError } from "../lib/errors.ts";
import { checkGpuErrors, gpu } from "../lib/gpu/device.ts";
import { alignedSize } from "../lib/gpu/buffers.ts";
import {
  beginTimedPass,
  captureCommands,
  type CapturedCommands,
  dispatchCount,
  encoder,
  endPass,
  flush,
  releaseCapture,
  replayCommands,
} from "../lib/gpu/commands.ts";
import { readBuffers } from "../lib/gpu/transfer.ts";

/** How long to warm up and how to sample. */
export interface SustainedOptions {
  /** GPU time of warm-up before measuring (ms). */
  warmMs: number;
  /** Least GPU time of one sample (ms): a sample repeats the work k times back to back. */
  sampleMs: number;
  /** Number of samples (batches) whose median is reported. */
  samples: number;
  /** Single calls timed one readback apart after the sustained samples (the earlier method). */
  singles: number;
}

/** Defaults of a full run: 1.5 s of warm-up, 10 samples of ≥ 20 ms. */
export const FULL: SustainedOptions = { warmMs: 1500, sampleMs: 20, samples: 10, singles: 5 };
/** Defaults of `--quick`. */
export const QUICK: SustainedOptions = { warmMs: 100, sampleMs: 5, samples: 3, singles: 2 };

/** The timing flags of every bench entry point: `--quick`, `--warm-ms N`, `--samples N` (for parseFlags). */
export const TIMING_FLAGS: FlagSpec = { quick: "boolean", "warm-ms": "number", samples: "number" };

/**
 * QUICK or FULL by `--quick`, with `--warm-ms` and `--samples` overriding the warm-up per row and the
 * number of samples (rows that follow other GPU work find the clocks already up, so a long batched run
 * can afford less than the default 1.5 s of warm-up).
 */
export function timingOptions(flags: Flags): SustainedOptions {
  return {
    ...(flags.quick ? QUICK : FULL),
    ...(typeof flags["warm-ms"] === "number" ? { warmMs: flags["warm-ms"] } : {}),
    ...(typeof flags.samples === "number" ? { samples: flags.samples } : {}),
  };
}

/** One measurement: GPU milliseconds per call. */
export interface Timing {
  /** Median per-call time over the sustained samples. */
  ms: number;
  /** Fastest and slowest sample (per call). */
  ms_min: number;
  ms_max: number;
  /** Median of single calls, each timed alone with a readback in between (GPU idle ≥ 11 ms). */
  ms_single: number;
  /** Calls per sample, samples, dispatches per call. */
  calls_per_sample: number;
  samples: number;
  dispatches_per_call: number;
  /** GPU time spent warming up (ms) and how many calls that took. */
  warm_gpu_ms: number;
  warm_calls: number;
}

/** Dispatches one submit may hold (the ring of lib/gpu/commands.ts has 2048 slots), with a margin. */
const MAX_DISPATCHES_PER_SUBMIT = 1800;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Records `batches` timed passes of `k` calls each, one submit per pass, and reads all timestamps back
 * with one wait. Returns each pass's GPU time in ms.
 */
async function timedBatches(fn: () => void, k: number, batches: number): Promise<number[]> {
  const { device } = gpu();
  const querySet = device.createQuerySet({ type: "timestamp", count: 2 * batches });
  const resolve = device.createBuffer({
    size: alignedSize(16 * batches),
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  for (let i = 0; i < batches; i++) {
    flush(); // each pass starts a fresh submit, so the ring cannot overflow inside it
    // The start is the beginning of the pass the work's first dispatches go into; the end is an empty
    // pass after all of it. Work that copies buffers (which ends the open pass), uploads or fills the
    // ring (which submit) continues in later passes and submits, and is still inside the span.
    beginTimedPass({ querySet, beginningOfPassWriteIndex: 2 * i });
    for (let j = 0; j < k; j++) fn();
    endPass();
    beginTimedPass({ querySet, endOfPassWriteIndex: 2 * i + 1 });
    endPass();
    flush();
  }
  encoder().resolveQuerySet(querySet, 0, 2 * batches, resolve, 0);
  const [bytes] = await readBuffers([{ buffer: resolve }]);
  querySet.destroy();
  resolve.destroy();
  const t = new BigUint64Array(bytes);
  const ms = Array.from({ length: batches }, (_, i) => Number(t[2 * i + 1] - t[2 * i]) / 1e6);
  // Timestamps stay zero when the work was rejected (e.g. a bind group that does not match its
  // pipeline): report that, rather than a time of zero (or a warm-up that never ends).
  const span = ms.reduce((a, b) => a + b, 0);
  if (!(span > 0)) {
    checkGpuErrors("bench");
    throw new GpuError(
      "bench",
      `${k * batches} calls took ${span} ms by the GPU's timestamps; was the work rejected?`,
    );
  }
  return ms;
}

/**
 * Times `fn` (which must only record GPU work: no uploads or readbacks) under sustained load; see the
 * module comment for the method.
 */
export async function timeSustained(fn: () => void, o: SustainedOptions): Promise<Timing> {
  if (!gpu().hasTimestamps) throw new GpuError("bench", "this adapter has no timestamp-query feature");
  const before = dispatchCount();
  let [perCall] = await timedBatches(fn, 1, 1);
  const dispatches = Math.max(1, dispatchCount() - before);
  const maxK = Math.max(1, Math.floor(MAX_DISPATCHES_PER_SUBMIT / dispatches));
  const chooseK = (ms: number) => Math.min(maxK, Math.max(1, Math.ceil(o.sampleMs / Math.max(ms, 1e-3))));
  // Warm-up in rounds of ~200 ms of GPU work per readback; k is re-chosen as the clocks settle.
  let warm = perCall;
  let warmCalls = 1;
  while (warm < o.warmMs) {
    const k = chooseK(perCall);
    const batches = Math.max(1, Math.min(64, Math.ceil(Math.min(200, o.warmMs - warm) / (k * perCall))));
    const ts = await timedBatches(fn, k, batches);
    warm += ts.reduce((a, b) => a + b, 0);
    warmCalls += k * batches;
    perCall = median(ts) / k;
  }
  const k = chooseK(perCall);
  const per = (await timedBatches(fn, k, o.samples)).map((t) => t / k);
  const singles: number[] = [];
  for (let i = 0; i < o.singles; i++) singles.push((await timedBatches(fn, 1, 1))[0]);
  return {
    ms: median(per),
    ms_min: Math.min(...per),
    ms_max: Math.max(...per),
    ms_single: singles.length ? median(singles) : NaN,
    calls_per_sample: k,
    samples: o.samples,
    dispatches_per_call: dispatches,
    warm_gpu_ms: warm,
    warm_calls: warmCalls,
  };
}

/** One kernel's share of replayed work: GPU µs per call, summed over its dispatches. */
export interface KernelShare {
  /** `file:entry` of the pipeline, or `copy`. */
  kernel: string;
  /** Dispatches (or copies) of it per call. */
  count: number;
  /** GPU µs per call, all its dispatches together. */
  us: number;
}

/**
 * Where recorded work's GPU time goes, kernel by kernel: `fn`'s work is captured once, then each captured
 * command is replayed alone, back to back under sustained load (bench/timing.ts), and its GPU time is
 * summed by pipeline label. Commands timed alone run with warm caches, so the sum is a lower bound
 * (it is reported next to the whole work's time, `total_us`).
 */
export async function kernelBreakdown(
  fn: () => void,
  time: (fn: () => void) => Promise<{ ms: number }>,
): Promise<{ total_us: number; kernels: KernelShare[] }> {
  const program = captureCommands(fn);
  try {
    return await programBreakdown(program, time);
  } finally {
    releaseCapture(program);
  }
}

/** {@linkcode kernelBreakdown} of work already captured (the caller releases it). */
export async function programBreakdown(
  program: CapturedCommands,
  time: (fn: () => void) => Promise<{ ms: number }>,
): Promise<{ total_us: number; kernels: KernelShare[] }> {
  // The whole work twice: the first brings the GPU's clocks up for the short per-command timings.
  await time(() => replayCommands(program));
  const total = await time(() => replayCommands(program));
  const shares = new Map<string, KernelShare>();
  for (const op of program.ops) {
    const one = { ...program, ops: [op], dispatches: op.kind === "dispatch" ? 1 : 0 };
    const { ms } = await time(() => replayCommands(one));
    const kernel = op.kind === "dispatch" ? op.pipeline.label : "copy";
    const s = shares.get(kernel) ?? { kernel, count: 0, us: 0 };
    s.count++;
    s.us += 1000 * ms;
    shares.set(kernel, s);
  }
  return { total_us: 1000 * total.ms, kernels: [...shares.values()].sort((a, b) => b.us - a.us) };
}

/** Short sustained GPU timing for {@linkcode kernelBreakdown} (the clocks are already up in a bench run). */
export function kernelBreakdownTiming(fn: () => void): Promise<{ ms: number }> {
  return timeSustained(fn, { warmMs: 20, sampleMs: 2, samples: 3, singles: 0 });
}
