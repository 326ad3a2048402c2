/**
 * The Llama decoder and its MambaInLlama hybrids as float64 loops, composed from the op references
 * (lib/tensor/ops_ref.ts, matmul_ref.ts, mamba2_layer_ref.ts): the mean next-token cross-entropy of a
 * batch for weights given by checkpoint name. It is the specification the GPU model's gradients are
 * checked against by finite differences (tests/models/hybrid_grads_test.ts). Biases are not
 * supported (the fixtures have none).
 *
 * @module
 */
import type { LlamaConfig } from "../io/config.ts";
import type { Mamba2Dims } from "../distill/convert_mamba2.ts";
import { matmulRef } from "../tensor/matmul_ref.ts";
import {
  attentionRef,
  crossEntropyRef,
  embeddingRef,
  rmsNormRef,
  ropeRef,
  swigluRef,
} from "../tensor/ops_ref.ts";
import { mamba2ForwardRef } from "./mamba2_layer_ref.ts";

/** The model: its config, the Mamba-2 dims of a hybrid, which layers keep attention, RoPE frequencies. */
export interface LlamaRefModel {
  config: LlamaConfig;
  /** Present for a hybrid: the converted layers' dims. */
  mamba?: { dims: Mamba2Dims; attnLayers: number[] };
  /** RoPE inverse frequencies (P/2), e.g. from `ropeInverseFrequencies`. */
  invFreq: ArrayLike<number>;
}

const linear = (x: ArrayLike<number>, w: ArrayLike<number>, R: number, out: number, inF: number) =>
  matmulRef(x, w, { M: R, N: out, K: inF, transB: true });

function addInto(a: Float64Array, b: ArrayLike<number>): Float64Array {
  for (let i = 0; i < a.length; i++) a[i] += b[i];
  return a;
}

/**
 * The logits (B·T, V) of ids (B, T), as `LlamaForCausalLM(ids).logits` (causal, no cache). `w(name)`
 * returns a weight by its checkpoint name.
 */
export function logitsRef(
  m: LlamaRefModel,
  w: (name: string) => ArrayLike<number>,
  ids: ArrayLike<number>,
  B: number,
  T: number,
): Float64Array {
  const c = m.config;
  const D = c.hiddenSize;
  const R = B * T;
  const eps = c.rmsNormEps;
  let h = embeddingRef(ids, w("model.embed_tokens.weight"), D);
  for (let i = 0; i < c.numLayers; i++) {
    const pre = `model.layers.${i}`;
    const x = rmsNormRef(h, w(`${pre}.input_layernorm.weight`), D, eps);
    let a: Float64Array;
    if (m.mamba && !m.mamba.attnLayers.includes(i)) {
      const mm = `${pre}.mamba`;
      a = mamba2ForwardRef(x, {
        inProj: w(`${mm}.in_proj.weight`),
        convWeight: w(`${mm}.conv1d.weight`),
        convBias: w(`${mm}.conv1d.bias`),
        dtBias: w(`${mm}.dt_bias`),
        aLog: w(`${mm}.A_log`),
        D: w(`${mm}.D`),
        norm: w(`${mm}.norm.weight`),
        outProj: w(`${mm}.out_proj.weight`),
      }, { batch: B, L: T, dims: m.mamba.dims, kvHeads: c.numKvHeads, eps });
    } else {
      const { numHeads: Hq, numKvHeads: Hkv, headDim: P } = c;
      const sa = `${pre}.self_attn`;
      const q = ropeRef(linear(x, w(`${sa}.q_proj.weight`), R, Hq * P, D), [B, T, Hq, P], m.invFreq);
      const k = ropeRef(linear(x, w(`${sa}.k_proj.weight`), R, Hkv * P, D), [B, T, Hkv, P], m.invFreq);
      const v = linear(x, w(`${sa}.v_proj.weight`), R, Hkv * P, D);
      const { out } = attentionRef(q, k, v, { B, L: T, S: T, Hq, Hkv, P });
      a = linear(out, w(`${sa}.o_proj.weight`), R, D, Hq * P);
    }
    h = addInto(a, h);
    const x2 = rmsNormRef(h, w(`${pre}.post_attention_layernorm.weight`), D, eps);
    const I = c.intermediateSize;
    const gate = linear(x2, w(`${pre}.mlp.gate_proj.weight`), R, I, D);
    const up = linear(x2, w(`${pre}.mlp.up_proj.weight`), R, I, D);
    h = addInto(linear(swigluRef(gate, up), w(`${pre}.mlp.down_proj.weight`), R, D, I), h);
  }
  const final = rmsNormRef(h, w("model.norm.weight"), D, eps);
  const head = w(c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  return linear(final, head, R, c.vocabSize, D);
}

/**
 * Mean next-token cross-entropy of ids (B, T): logits[:, :-1] against ids[:, 1:], as
 * `LlamaForCausalLM(labels=ids)`. `w(name)` returns a weight by its checkpoint name.
 */
export function nextTokenLossRef(
  m: LlamaRefModel,
  w: (name: string) => ArrayLike<number>,
  ids: ArrayLike<number>,
  B: number,
  T: number,
): number {
  const c = m.config;
  const R = B * T;
  const logits = logitsRef(m, w, ids, B, T);
  const targets = new Int32Array(R).fill(-100);
  for (let b = 0; b < B; b++) for (let t = 0; t < T - 1; t++) targets[b * T + t] = ids[b * T + t + 1];
  const ce = crossEntropyRef(logits, targets, c.vocabSize);
  return ce.reduce((s, v) => s + v, 0) / (B * (T - 1));
}
