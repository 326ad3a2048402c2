/**
 * `deno run -A bench/dispatch_cost.ts [--json FILE] [--n N]`: where the cost of a small dispatch goes
 * in Deno's WebGPU (issue #7: a decoding step is ~50 tiny dispatches). N one-workgroup dispatches of a
 * trivial kernel are recorded into one command buffer, and three times are taken for each variant:
 *
 * - `encode_us`: host time of the encoder calls (setPipeline, setBindGroup, dispatchWorkgroups);
 * - `submit_us`: host time of `finish()` + `submit()` (wgpu validates and tracks resources here);
 * - `gpu_us`: GPU timestamps at the start and end of the pass(es);
 * - `wall_us`: host time from the first encoder call until `onSubmittedWorkDone` resolves, minus the
 *   ≥ 11 ms readback floor measured on an empty submit;
 *
 * each divided by N (`bench/speculative.ts` reports them too, as `dispatchCosts`). Variants: every dispatch reading and writing the same buffer (a dependency chain,
 * as the layers of a step), each writing its own buffer (no hazards), bind groups of 2 vs 8 storage
 * buffers, and a buffer copy after each dispatch (which ends the compute pass).
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { adapterName, gpu, initGpu } from "../lib/gpu/device.ts";
import { alignedSize } from "../lib/gpu/buffers.ts";

/** One variant's costs per dispatch (µs). */
export interface DispatchCost {
  name: string;
  n: number;
  encode_us: number;
  submit_us: number;
  gpu_us: number;
  wall_us: number;
  readback_floor_ms: number;
}

/** Measures every variant with `N` dispatches each (the GPU must be initialised). */
export async function dispatchCosts(N = 1000): Promise<DispatchCost[]> {
  const { device, hasTimestamps } = gpu();

  /** A kernel reading `inputs` buffers and adding into `out` (one workgroup of 64). */
  function kernel(inputs: number): GPUComputePipeline {
    const decl = Array.from(
      { length: inputs },
      (_, i) => `@group(0) @binding(${i + 1}) var<storage, read> x${i}: array<f32>;`,
    ).join("\n");
    const sum = Array.from({ length: inputs }, (_, i) => `x${i}[i]`).join(" + ");
    const code = `@group(0) @binding(0) var<storage, read_write> out: array<f32>;
${decl}
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) i: u32) { out[i] = out[i] * 0.5 + ${sum}; }`;
    return device.createComputePipeline({
      layout: "auto",
      compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
    });
  }

  const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const buf = () => device.createBuffer({ size: 256, usage: USAGE });
  const inputs = Array.from({ length: 8 }, buf);
  const outs = Array.from({ length: 64 }, buf);
  const spare = buf();

  function group(p: GPUComputePipeline, out: GPUBuffer, k: number): GPUBindGroup {
    return device.createBindGroup({
      layout: p.getBindGroupLayout(0),
      entries: [out, ...inputs.slice(0, k)].map((b, i) => ({ binding: i, resource: { buffer: b } })),
    });
  }

  interface Variant {
    name: string;
    inputs: number;
    /** Output buffer of dispatch i. */
    out: (i: number) => GPUBuffer;
    copy: boolean;
  }

  const variants: Variant[] = [
    { name: "chain_2_bindings", inputs: 1, out: () => outs[0], copy: false },
    { name: "chain_8_bindings", inputs: 7, out: () => outs[0], copy: false },
    { name: "independent_2_bindings", inputs: 1, out: (i) => outs[i % outs.length], copy: false },
    { name: "chain_2_bindings_copy_after_each", inputs: 1, out: () => outs[0], copy: true },
  ];

  const querySet = hasTimestamps ? device.createQuerySet({ type: "timestamp", count: 2 }) : null;
  const resolve = device.createBuffer({
    size: alignedSize(16),
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const read = device.createBuffer({
    size: alignedSize(16),
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });

  async function floorMs(): Promise<number> {
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      device.queue.submit([device.createCommandEncoder().finish()]);
      await device.queue.onSubmittedWorkDone();
      best = Math.min(best, performance.now() - t0);
    }
    return best;
  }

  async function run(v: Variant): Promise<DispatchCost> {
    const p = kernel(v.inputs);
    const groups = outs.map((o) => group(p, o, v.inputs));
    const groupFor = (i: number) => groups[outs.indexOf(v.out(i))];
    const once = async () => {
      const t0 = performance.now();
      const enc = device.createCommandEncoder();
      let pass: GPUComputePassEncoder | null = null;
      const open = (first: boolean, last: boolean) =>
        enc.beginComputePass(
          querySet && (first || last)
            ? {
              timestampWrites: {
                querySet,
                ...(first ? { beginningOfPassWriteIndex: 0 } : {}),
                ...(last ? { endOfPassWriteIndex: 1 } : {}),
              },
            }
            : {},
        );
      for (let i = 0; i < N; i++) {
        pass ??= open(i === 0, v.copy ? i === N - 1 : true);
        pass.setPipeline(p);
        pass.setBindGroup(0, groupFor(i));
        pass.dispatchWorkgroups(1);
        if (v.copy) {
          pass.end();
          pass = null;
          enc.copyBufferToBuffer(v.out(i), 0, spare, 0, 256);
        }
      }
      pass?.end();
      if (querySet) {
        enc.resolveQuerySet(querySet, 0, 2, resolve, 0);
        enc.copyBufferToBuffer(resolve, 0, read, 0, 16);
      }
      const t1 = performance.now();
      device.queue.submit([enc.finish()]);
      const t2 = performance.now();
      await device.queue.onSubmittedWorkDone();
      const t3 = performance.now();
      let gpuMs = NaN;
      if (querySet) {
        await read.mapAsync(GPUMapMode.READ);
        const t = new BigUint64Array(read.getMappedRange(0, 16).slice(0));
        read.unmap();
        gpuMs = Number(t[1] - t[0]) / 1e6;
      }
      return { encode: t1 - t0, submit: t2 - t1, wall: t3 - t0, gpu: gpuMs };
    };
    for (let r = 0; r < 3; r++) await once(); // warm-up
    const runs: { encode: number; submit: number; wall: number; gpu: number }[] = [];
    for (let r = 0; r < 5; r++) runs.push(await once());
    const med = (k: "encode" | "submit" | "wall" | "gpu") => runs.map((x) => x[k]).sort((a, b) => a - b)[2];
    const floor = await floorMs();
    const us = (ms: number) => (1000 * ms) / N;
    return {
      name: v.name,
      n: N,
      encode_us: us(med("encode")),
      submit_us: us(med("submit")),
      gpu_us: us(med("gpu")),
      wall_us: us(med("wall") - floor),
      readback_floor_ms: floor,
    };
  }

  const results: DispatchCost[] = [];
  for (const v of variants) results.push(await run(v));
  for (const b of [...inputs, ...outs, spare, resolve, read]) b.destroy();
  querySet?.destroy();
  return results;
}

if (import.meta.main) {
  const flags = parseFlags("dispatch_cost", Deno.args, { json: "string", n: "number" });
  await initGpu();
  const results = await dispatchCosts((flags.n as number | undefined) ?? 1000);
  for (const r of results) console.error(JSON.stringify(r));
  const out = { date: new Date().toISOString(), adapter: adapterName(), results };
  if (typeof flags.json === "string") {
    await Deno.writeTextFile(flags.json, JSON.stringify(out, null, 2) + "\n");
  } else console.log(JSON.stringify(out, null, 2));
}
