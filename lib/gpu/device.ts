/**
 * One WebGPU adapter and device per process.
 *
 * `initGpu()` asks for the adapter's own limits (WebGPU hands out the spec's small defaults unless
 * limits are requested) and the optional features the toolkit uses (`shader-f16`, `timestamp-query`).
 * Everything else reads the device through the synchronous {@linkcode gpu} accessor, so ops can be
 * plain functions rather than promises.
 *
 * @module
 */
import { GpuError } from "../errors.ts";

/** What the toolkit knows about the device it runs on. */
export interface GpuContext {
  /** The WebGPU adapter. */
  adapter: GPUAdapter;
  /** The device, created with the adapter's limits. */
  device: GPUDevice;
  /** Vendor / architecture / description of the adapter, for reports. */
  info: { vendor: string; architecture: string; device: string; description: string };
  /** True for a software adapter (Mesa lavapipe). */
  isFallback: boolean;
  /** Largest buffer that one storage binding can see, in bytes. */
  maxBindingBytes: number;
  /** Largest buffer that can be created, in bytes. */
  maxBufferBytes: number;
  /** Whether `timestamp-query` was granted (GPU timing). */
  hasTimestamps: boolean;
  /** Whether `shader-f16` was granted. */
  hasF16: boolean;
}

let context: GpuContext | null = null;
let pending: Promise<GpuContext> | null = null;
let lostReason: string | null = null;
let firstError: string | null = null;

const wantedLimits = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
  "maxBindGroups",
  "maxUniformBufferBindingSize",
] as const;

/** The message shown when no adapter exists: it names the fix. */
export const NO_ADAPTER_HELP =
  "no WebGPU adapter found. On a machine without a GPU install Mesa's software " +
  "Vulkan driver (`apt-get install mesa-vulkan-drivers libvulkan1`, which `sh setup.sh` does); on the GPU " +
  "machine start the command with `sh .gpu/on-gpu.sh` so Deno finds the Vulkan loader";

/**
 * Creates the process-wide device (once; later calls return the same context).
 * Throws {@linkcode GpuError} naming the fix when there is no adapter.
 */
export function initGpu(): Promise<GpuContext> {
  if (context) return Promise.resolve(context);
  pending ??= createContext().catch((e) => {
    pending = null;
    throw e;
  });
  return pending;
}

async function createContext(): Promise<GpuContext> {
  if (!("gpu" in navigator) || !navigator.gpu) throw new GpuError("webgpu", NO_ADAPTER_HELP);
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new GpuError("webgpu", NO_ADAPTER_HELP);
  const requiredLimits: Record<string, number> = {};
  for (const name of wantedLimits) requiredLimits[name] = adapter.limits[name];
  const requiredFeatures: GPUFeatureName[] = [];
  for (const f of ["shader-f16", "timestamp-query"] as GPUFeatureName[]) {
    if (adapter.features.has(f)) requiredFeatures.push(f);
  }
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  device.addEventListener("uncapturederror", (e) => {
    firstError ??= (e as GPUUncapturedErrorEvent).error.message;
  });
  device.lost.then((info) => {
    lostReason = `${info.reason ?? "unknown"}: ${info.message}`;
  });
  const info = adapter.info;
  context = {
    adapter,
    device,
    info: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
    },
    isFallback: (info as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
    maxBindingBytes: device.limits.maxStorageBufferBindingSize,
    maxBufferBytes: device.limits.maxBufferSize,
    hasTimestamps: device.features.has("timestamp-query"),
    hasF16: device.features.has("shader-f16"),
  };
  return context;
}

/**
 * The initialised context. Throws {@linkcode GpuError} if `initGpu()` has not completed or the device
 * was lost (a lost device cannot be recovered: the process must restart).
 */
export function gpu(): GpuContext {
  if (lostReason) throw lostError("webgpu");
  if (!context) throw new GpuError("webgpu", "the GPU is not initialised: call `await initGpu()` first");
  return context;
}

/**
 * Throws {@linkcode GpuError} if the device reported an error (a validation error, out of memory)
 * since the last check. Readbacks call this, so a kernel that failed never yields silent zeros.
 */
export function checkGpuErrors(where = "webgpu"): void {
  if (firstError) {
    const msg = firstError;
    firstError = null;
    throw new GpuError(where, `the GPU reported an error: ${msg}`);
  }
}

/**
 * Records an error the device reported through an error scope (which keeps it from the
 * `uncapturederror` handler), so that the next {@linkcode checkGpuErrors} throws it.
 */
export function reportGpuError(message: string): void {
  firstError ??= message;
}

/** The reason the device was lost (`"destroyed: …"`, `"unknown: …"`), or null while it is alive. */
export function deviceLostReason(): string | null {
  return lostReason;
}

function lostError(where: string, cause?: unknown): GpuError {
  return new GpuError(where, `the GPU device was lost (${lostReason}); restart the process`, { cause });
}

/**
 * Turns the failure of an asynchronous GPU call (a buffer mapping, a queue wait) into a typed
 * {@linkcode GpuError}. A call on a lost device fails before the device's `lost` promise settles, so
 * this waits for that promise (briefly) to report the loss rather than the call's bare
 * `DOMException`; otherwise the message carries the call's own reason and any error the device
 * reported.
 */
export async function gpuCallFailure(where: string, cause: unknown): Promise<GpuError> {
  if (cause instanceof GpuError) return cause;
  if (context && !lostReason) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      context.device.lost,
      new Promise<void>((resolve) => timer = setTimeout(resolve, 200)),
    ]);
    clearTimeout(timer);
    // The handler registered at creation ran before this continuation: `lostReason` is set if lost.
  }
  if (lostReason) return lostError(where, cause);
  const reported = firstError ? ` (the GPU reported: ${firstError})` : "";
  firstError = null;
  return new GpuError(where, `a GPU call failed: ${(cause as Error)?.message ?? String(cause)}${reported}`, {
    cause,
  });
}

/** A one-line description of the adapter, e.g. `NVIDIA H100 80GB HBM3 (nvidia, vulkan)`. */
export function adapterName(ctx: GpuContext = gpu()): string {
  const i = ctx.info;
  const name = i.description || i.device || i.architecture || "unknown adapter";
  return `${name}${i.vendor ? ` (${i.vendor})` : ""}${ctx.isFallback ? " [software]" : ""}`;
}
