/**
 * WebGPU runtime: the device, the buffer pool, the pipeline cache, recording, transfers and timing.
 *
 * @module
 */
export {
  adapterName,
  checkGpuErrors,
  deviceLostReason,
  gpu,
  type GpuContext,
  initGpu,
  NO_ADAPTER_HELP,
} from "./device.ts";
export { bufferSize, type GpuMemory, gpuMemory, resetPeak, trimPool } from "./buffers.ts";
export { type KernelSpec, pipelineCount, precompile } from "./pipelines.ts";
export { dispatchCount, flush, sync } from "./commands.ts";
export { readBuffers, type ReadRange } from "./transfer.ts";
export { timeGpu } from "./timing.ts";
