/**
 * Differentiable Mamba ops: the tape rules of the depthwise causal conv1d, the gated RMSNorm, the
 * Mamba-2 SSD and the Mamba-1 selective scan. Each runs the kernel's forward and, under a recording
 * tape, back-propagates with the kernel's own backward (verified against the official reference's
 * gradients in tests/ssm). Final states are not differentiated here (training runs full sequences).
 *
 * @module
 */
import { causalConv1d as conv1dRaw, causalConv1dBackward, type CausalConv1dOptions } from "../ssm/conv1d.ts";
import {
  gatedRmsNorm as gatedNormRaw,
  gatedRmsNormBackward,
  type GatedRmsNormOptions,
} from "../ssm/gated_norm.ts";
import { ssdBackward, ssdChunked, type SsdInputs, type SsdOptions } from "../ssm/ssd.ts";
import {
  selectiveScan as scanRaw,
  selectiveScanBackward,
  type SelectiveScanInputs,
  type SelectiveScanOptions,
} from "../ssm/selective_scan.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { record } from "./tape.ts";

/** Depthwise causal conv1d of x (B, L, C); returns y (the final state is dropped). */
export function causalConv1d(x: Tensor, weight: Tensor, opts: CausalConv1dOptions = {}): Tensor {
  const { y, finalState } = conv1dRaw(x, weight, opts);
  finalState.dispose();
  const inputs = [x, weight, opts.bias];
  return record(inputs, y, [x, weight, ...(opts.bias ? [opts.bias] : [])], (g, [xs, ws, bs]) => {
    const d = causalConv1dBackward(xs, ws, g, { ...opts, bias: bs });
    d.initialState?.dispose();
    return [d.x, d.weight, d.bias];
  });
}

/** Gated RMSNorm (norm_before_gate = False) of x with gate z. */
export function gatedRmsNorm(x: Tensor, z: Tensor, weight: Tensor, opts: GatedRmsNormOptions): Tensor {
  return record([x, z, weight], gatedNormRaw(x, z, weight, opts), [x, z, weight], (g, [xs, zs, ws]) => {
    const d = gatedRmsNormBackward(xs, zs, ws, g, opts);
    return [d.x, d.z, d.weight];
  });
}

/** Mamba-2 SSD (chunked) of X, A, B, C; returns Y (the final state is dropped). */
export function ssd(inp: SsdInputs, opts: SsdOptions = {}): Tensor {
  const { Y, finalState } = ssdChunked(inp, opts);
  finalState.dispose();
  const { X, A, B, C } = inp;
  return record([X, A, B, C], Y, [X, A, B, C], (g, [x, a, b, c]) => {
    const d = ssdBackward({ X: x, A: a, B: b, C: c }, g, opts);
    d.initialState?.dispose();
    return [d.X, d.A, d.B, d.C];
  });
}

/** Mamba-1 selective scan; returns y (the last state is dropped). */
export function selectiveScan(inp: SelectiveScanInputs, opts: SelectiveScanOptions = {}): Tensor {
  const { y, lastState } = scanRaw(inp, opts);
  lastState.dispose();
  const keys = ["u", "delta", "A", "B", "C", "D", "z", "deltaBias"] as const;
  const present = keys.filter((k) => inp[k]);
  return record(keys.map((k) => inp[k]), y, present.map((k) => inp[k]!), (g, saved) => {
    const again = Object.fromEntries(present.map((k, i) => [k, saved[i]])) as unknown as SelectiveScanInputs;
    const d = selectiveScanBackward(again, g, opts);
    d.initialState?.dispose();
    return keys.map((k) => d[k]);
  });
}
