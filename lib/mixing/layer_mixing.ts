/**
 * Per-layer mixing matrices of a loaded model (a Llama teacher or a MambaInLlama hybrid) for given
 * input ids: the model runs up to the layer (its hidden state entering layer L, then the layer's input
 * norm), and the layer's own mixer is written as M (B, H, T, T), rows = output t, columns = source s:
 *
 *   attention layer   softmax probabilities (RoPE, 1/√P, causal), from the model's attention kernel;
 *                     or, on request, causal linear attention q_t·k_s (un-rotated, unscaled, no
 *                     normaliser, method.md §1), which is the SSD matrix with zero decay, B = k, C = q
 *   Mamba-2 layer     (C_t·B_s)·exp(Σ_{s<r≤t} A_r)·dt_s + D_h·[t = s] from the layer's in_proj, conv,
 *                     dt and A (`mamba2_inputs.ts`), materialised by `kernels/mixing.wgsl`
 *   Mamba-1 layer     one matrix per channel d (H = d_inner "heads"):
 *                     Σ_n C_t[n] B_s[n] exp(Σ_{s<r≤t} Δ_r A[d,n]) Δ_s + D[d]·[t = s] (`mamba1_inputs.ts`;
 *                     projections on the GPU, the matrices in float64 on the host)
 *
 * Under GQA both have H = the query heads: query head h reads kv head ⌊h·H_kv/H⌋.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import type { LlamaModel } from "../models/llama.ts";
import { linear } from "../tensor/matmul.ts";
import { rmsNorm } from "../tensor/rmsnorm.ts";
import { readTensors, Tensor } from "../tensor/tensor.ts";
import { mamba2InputsFromProjection, type Mamba2MixerInputs } from "./mamba2_inputs.ts";
import { ssdMixingMatrixForward } from "./ssd_mixing.ts";
import { mamba1InputsFromProjections, type Mamba1LayerOperands } from "./mamba1_inputs.ts";
import { mamba1MixingRef } from "./mixing_ref.ts";
import { gpu } from "../gpu/device.ts";

/** The kind of mixer a layer holds. */
export type MixerKind = "attention" | "mamba2" | "mamba1";

/** A layer's mixing matrices. The caller owns (and disposes) `M`. */
export interface LayerMixing {
  /** The mixer of the layer. */
  kind: MixerKind;
  /** M (B, H, T, T). */
  M: Tensor;
}

/** Options of {@linkcode layerMixing}. */
export interface LayerMixingOptions {
  /** For attention layers: the softmax probabilities (default) or un-normalised linear attention q kᵀ. */
  attention?: "softmax" | "linear";
}

/** The mixer of layer `layer`; a {@linkcode ShapeError} names the range when it is out of it. */
export function layerKind(model: LlamaModel, layer: number): MixerKind {
  const n = model.layers.length;
  if (!Number.isInteger(layer) || layer < 0 || layer >= n) {
    throw new ShapeError("layerMixing", `layer ${layer} is outside 0 … ${n - 1} (the model has ${n} layers)`);
  }
  const l = model.layers[layer];
  return l.mamba ? "mamba2" : l.mamba1 ? "mamba1" : "attention";
}

function checkIds(ids: Tensor): [number, number] {
  if (ids.shape.length !== 2 || ids.dtype !== "i32") {
    throw new ShapeError(
      "layerMixing",
      `expected input_ids (B, T) i32, got (${ids.shape.join(", ")}) ${ids.dtype}`,
    );
  }
  return [ids.shape[0], ids.shape[1]];
}

/** The layer's normalised input rmsNorm(h_L) (B, T, d_model): the model run up to layer L. */
function layerInput(model: LlamaModel, ids: Tensor, layer: number): Tensor {
  const out = model.forward(ids, { hidden: true, lastOnly: true });
  out.logits.dispose();
  const hidden = out.hidden!;
  const x = rmsNorm(hidden[layer], model.layers[layer].inputNorm, model.config.rmsNormEps);
  for (const h of hidden) h.dispose();
  return x;
}

/**
 * The SSD operands (per head, float64 on the host) of Mamba-2 layer `layer` for `ids` (B, T): x, z,
 * A = −exp(A_log)·dt, dt, B, C, D. The in_proj runs on the GPU; conv, softplus and the GQA repeat here.
 */
export async function mamba2LayerOperands(
  model: LlamaModel,
  ids: Tensor,
  layer: number,
): Promise<Mamba2MixerInputs> {
  const [batch, T] = checkIds(ids);
  if (layerKind(model, layer) !== "mamba2") {
    throw new ShapeError("mamba2LayerOperands", `layer ${layer} is an attention layer`);
  }
  const w = model.layers[layer].mamba!;
  using x = layerInput(model, ids, layer);
  using zx = linear(x, w.inProj);
  const [zxbcdt, convWeight, convBias, dtBias, aLog, D] = await readTensors([
    zx,
    w.convWeight,
    w.convBias,
    w.dtBias,
    w.aLog,
    w.D,
  ]);
  return mamba2InputsFromProjection(zxbcdt, { convWeight, convBias, dtBias, aLog, D }, model.hybrid!.dims, {
    batch,
    T,
    kvHeads: model.config.numKvHeads,
  });
}

/**
 * The selective-scan operands (float64, scan layouts) of Mamba-1 layer `layer` for `ids` (B, T):
 * Δ (raw), A, B, C, D, the δ bias, the scan input u and the gate z. Projections run on the GPU.
 */
export async function mamba1LayerOperands(
  model: LlamaModel,
  ids: Tensor,
  layer: number,
): Promise<Mamba1LayerOperands> {
  const [batch, T] = checkIds(ids);
  if (layerKind(model, layer) !== "mamba1") {
    throw new ShapeError("mamba1LayerOperands", `layer ${layer} is not a Mamba-1 layer`);
  }
  const w = model.layers[layer].mamba1!;
  using x = layerInput(model, ids, layer);
  using x0 = linear(x, w.inProjX);
  using z = linear(x, w.inProjZ);
  using b0 = linear(x, w.bProj);
  using c0 = linear(x, w.cProj);
  using low = linear(x, w.dtDown);
  using dt = linear(low, w.dtProj, w.dtBias);
  const host = await readTensors([x0, z, b0, c0, dt, w.convWeight, w.convBias, w.dtBias, w.aLog, w.D]);
  const [hx, hz, hb, hc, hdt, convWeight, convBias, dtBias, aLog, D] = host;
  return mamba1InputsFromProjections(
    { x0: hx, z: hz, b0: hb, c0: hc, dt: hdt },
    { convWeight, convBias, dtBias, aLog, D },
    model.hybrid!.mamba1Dims!,
    { batch, T },
  );
}

/** Options of {@linkcode ssdMixingFromOperands}: what-if knobs for teaching (defaults: the layer as is). */
export interface SsdOperandOptions {
  /** Multiply every log-decay A by this (0: no decay, linear attention with B, C; > 1: faster forgetting). */
  aScale?: number;
  /** Scale columns by dt_s (default true); false drops the Δ of B̄ = Δ B. */
  useDt?: boolean;
  /** Put D on the diagonal (default true). */
  useD?: boolean;
}

/** M (B, H, T, T) on the GPU from host operands (see {@linkcode mamba2LayerOperands}). */
export function ssdMixingFromOperands(ops: Mamba2MixerInputs, opts: SsdOperandOptions = {}): Tensor {
  const { batch, T, H, N } = ops.dims;
  const f = (a: ArrayLike<number>, shape: number[]) => Tensor.from(Float32Array.from(a), shape);
  const aScale = opts.aScale ?? 1;
  using A = f(ops.A.map((a) => a * aScale), [batch, T, H]);
  using B = f(ops.B, [batch, T, H, N]);
  using C = f(ops.C, [batch, T, H, N]);
  using dt = opts.useDt === false ? undefined : f(ops.dt, [batch, T, H]);
  using D = opts.useD === false ? undefined : f(ops.D, [H]);
  return ssdMixingMatrixForward({ A, B, C, dt, D });
}

/** Un-rotated q (B, T, H, P) and k repeated to the query heads (B, T, H, P) of attention layer `layer`. */
export async function attentionLayerQK(
  model: LlamaModel,
  ids: Tensor,
  layer: number,
): Promise<{ q: Float32Array; k: Float32Array; dims: { batch: number; T: number; H: number; P: number } }> {
  const [batch, T] = checkIds(ids);
  if (layerKind(model, layer) !== "attention") {
    throw new ShapeError("attentionLayerQK", `layer ${layer} is a Mamba layer`);
  }
  const c = model.config;
  const w = model.layers[layer].attn!;
  using x = layerInput(model, ids, layer);
  using qt = linear(x, w.q, w.qBias);
  using kt = linear(x, w.k, w.kBias);
  const [q, kv] = await readTensors([qt, kt]) as Float32Array[];
  const [H, Hkv, P] = [c.numHeads, c.numKvHeads, c.headDim];
  const k = new Float32Array(batch * T * H * P);
  for (let r = 0; r < batch * T; r++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h * Hkv / H);
      k.set(kv.subarray((r * Hkv + g) * P, (r * Hkv + g + 1) * P), (r * H + h) * P);
    }
  }
  return { q, k, dims: { batch, T, H, P } };
}

/**
 * Layer `layer`'s mixing matrices M (B, H, T, T) for ids (B, T) i32 (see the module doc).
 *
 * @example
 * ```ts ignore
 * const { kind, M } = await layerMixing(model, ids, 0); // "mamba2", (B, H, T, T)
 * ```
 */
export async function layerMixing(
  model: LlamaModel,
  ids: Tensor,
  layer: number,
  opts: LayerMixingOptions = {},
): Promise<LayerMixing> {
  checkIds(ids);
  const kind = layerKind(model, layer);
  if (kind === "mamba1") {
    const ops = await mamba1LayerOperands(model, ids, layer);
    const { batch, D, T } = ops.dims;
    if (batch * D * T * T * 4 > gpu().maxBindingBytes) {
      throw new ShapeError(
        "layerMixing",
        `Mamba-1 matrices (B, D, T, T) = (${batch}, ${D}, ${T}, ${T}) exceed one GPU binding: use fewer tokens`,
      );
    }
    return { kind, M: Tensor.from(Float32Array.from(mamba1MixingRef(ops)), [batch, D, T, T]) };
  }
  if (kind === "mamba2") {
    return { kind, M: ssdMixingFromOperands(await mamba2LayerOperands(model, ids, layer)) };
  }
  if (opts.attention === "linear") {
    const { q, k, dims } = await attentionLayerQK(model, ids, layer);
    using A = Tensor.zeros([dims.batch, dims.T, dims.H]);
    using Bt = Tensor.from(k, [dims.batch, dims.T, dims.H, dims.P]);
    using Ct = Tensor.from(q, [dims.batch, dims.T, dims.H, dims.P]);
    return { kind, M: ssdMixingMatrixForward({ A, B: Bt, C: Ct }) };
  }
  // The model returns one probability tensor per attention layer, in layer order.
  const index = model.layers.slice(0, layer).filter((l) => !l.mamba && !l.mamba1).length;
  const out = model.forward(ids, { attentions: true, lastOnly: true });
  out.logits.dispose();
  const atts = out.attentions!;
  atts.forEach((a, i) => i !== index && a.dispose());
  return { kind, M: atts[index] };
}
