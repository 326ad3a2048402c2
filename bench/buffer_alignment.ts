/**
 * `deno run -A bench/buffer_alignment.ts [BYTES …]`: the selective scan forward at B4 L2048 D2048 N16
 * (bench/ssm.ts's first workload) timed with its output and temporaries created by its first call inside
 * the timing (as `deno task bench` does), once as the toolkit leaves the allocator (BYTES = 0) and once
 * after a raw buffer of each given size was created just before (default 0 16 32 256; each in a fresh
 * process, since a buffer pool keeps its first placements). Prints one JSON line per size (ms).
 *
 * Why: the driver packs buffers at 16-byte alignment, so a 16-byte buffer made before y puts every
 * 32-byte row piece that chunk_out stores across two sectors (docs/results.md §8e).
 *
 * @module
 */
import { gpu, initGpu } from "../lib/gpu/device.ts";
import { ssmWorkloads } from "./ssm.ts";
import { FULL, timeSustained } from "./timing.ts";

const sizes = Deno.args.length > 0 ? Deno.args.map(Number) : [0, 16, 32, 256];
if (Deno.env.get("BUFFER_ALIGNMENT_CHILD") === undefined) {
  for (const bytes of sizes) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--cached-only",
        "--node-modules-dir=manual",
        "--no-check",
        import.meta.filename!,
        String(bytes),
      ],
      env: { BUFFER_ALIGNMENT_CHILD: "1" },
      stderr: "inherit",
    }).output();
    await Deno.stdout.write(out.stdout);
  }
} else {
  await initGpu();
  const { workloads } = ssmWorkloads(false);
  const bytes = sizes[0];
  const raw = bytes > 0
    ? gpu().device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC })
    : null;
  const t = await timeSustained(workloads[0].run, { ...FULL, singles: 1 });
  console.log(JSON.stringify({ raw_buffer_bytes: bytes, ms: t.ms, ms_single: t.ms_single }));
  raw?.destroy();
}
