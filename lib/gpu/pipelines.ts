/**
 * WGSL loading and the compute-pipeline cache.
 *
 * Kernels live in `kernels/<family>.wgsl`, one family per file; `kernels/_common.wgsl` (shared helpers:
 * `softplus`, `silu`, bf16 unpacking) is prepended to every file, after the file's own `enable …;`
 * directives (WGSL wants them before every declaration). Pipelines are cached by
 * (file, entry point, override constants), so a kernel specialised twice compiles twice and is then
 * reused. `precompile` builds a list of pipelines in parallel at start-up.
 *
 * @module
 */
import { GpuError } from "../errors.ts";
import { gpu } from "./device.ts";

/** A pipeline to build: a kernel file, its entry point and its `override` constants. */
export interface KernelSpec {
  /** File name under `kernels/`, e.g. `matmul.wgsl`. */
  file: string;
  /** Entry point; defaults to `main`. */
  entry?: string;
  /** Values of the shader's `override` constants. */
  constants?: Record<string, number>;
}

const kernelDir = new URL("../../kernels/", import.meta.url);
const sources = new Map<string, string>();
const cache = new Map<string, GPUComputePipeline>();

/**
 * The full WGSL text of a kernel file: the file's `enable …;` directives (e.g. `enable f16;`), then
 * `_common.wgsl`, then the rest of the file (each directive's line left as a comment).
 */
export function kernelSource(file: string): string {
  let src = sources.get(file);
  if (src === undefined) {
    const common = Deno.readTextFileSync(new URL("_common.wgsl", kernelDir));
    const body = Deno.readTextFileSync(new URL(file, kernelDir));
    const directives = body.match(/^enable\s[^;]*;/gm) ?? [];
    const rest = body.replace(/^enable\s[^;]*;/gm, (d) => `// ${d} (moved to the top)`);
    src = `${directives.join("\n")}${directives.length ? "\n" : ""}${common}\n${rest}`;
    sources.set(file, src);
  }
  return src;
}

/**
 * The cache key of (file, entry point, constants). A file's source never changes once read (see
 * `kernelSource`), so the file name stands for it: a key with the whole source in it (tens of KB) cost
 * microseconds of string hashing on every dispatch.
 */
function cacheKey(file: string, entry: string, constants?: Record<string, number>): string {
  const c = constants ? Object.keys(constants).sort().map((k) => `${k}=${constants[k]}`).join(",") : "";
  return `${file}|${entry}|${c}`;
}

function descriptor(spec: KernelSpec, src: string): GPUComputePipelineDescriptor {
  const { device } = gpu();
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code: src, label: spec.file });
  const check = device.popErrorScope();
  check.then((e) => {
    if (e) console.error(`kernels/${spec.file}: ${e.message}`);
  });
  return {
    layout: "auto",
    label: `${spec.file}:${spec.entry ?? "main"}`,
    compute: { module, entryPoint: spec.entry ?? "main", constants: spec.constants },
  };
}

/** The compute pipeline for a kernel spec, compiled on first use and cached. */
export function pipeline(spec: KernelSpec): GPUComputePipeline {
  const key = cacheKey(spec.file, spec.entry ?? "main", spec.constants);
  let p = cache.get(key);
  if (!p) {
    try {
      p = gpu().device.createComputePipeline(descriptor(spec, kernelSource(spec.file)));
    } catch (e) {
      throw new GpuError(`kernels/${spec.file}`, `cannot build pipeline: ${(e as Error).message}`);
    }
    cache.set(key, p);
  }
  return p;
}

/** Compiles the given pipelines in parallel (call at start-up so the first step does not stall). */
export async function precompile(specs: KernelSpec[]): Promise<void> {
  const { device } = gpu();
  await Promise.all(specs.map(async (spec) => {
    const key = cacheKey(spec.file, spec.entry ?? "main", spec.constants);
    if (cache.has(key)) return;
    const p = await device.createComputePipelineAsync(descriptor(spec, kernelSource(spec.file)));
    cache.set(key, p);
  }));
}

/** Number of pipelines compiled so far. */
export function pipelineCount(): number {
  return cache.size;
}
