/**
 * Mamba kernels: the Mamba-1 selective scan, Mamba-2 chunked SSD, the depthwise causal conv1d and the
 * gated RMSNorm — forward, backward and one-token steps, each with a plain-TS reference.
 *
 * @module
 */
export * from "./selective_scan.ts";
export * from "./ssd.ts";
export * from "./conv1d.ts";
export * from "./gated_norm.ts";
export {
  type ChannelLayout,
  gatherChannels,
  gatherChannelsBackward,
  gatherChannelsRef,
  type GatherSpec,
  negExp,
} from "./mamba1_glue.ts";
export * from "./mamba2_glue.ts";
export * from "./decode_state.ts";
