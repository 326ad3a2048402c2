/**
 * The Llama decoder (`LlamaForCausalLM`) on the GPU, loaded from a Hugging Face checkpoint directory.
 *
 *   h₀ = embed(ids)
 *   for each layer:  h ← h + o_proj(attn(rope(q(norm₁ h)), rope(k(norm₁ h)), v(norm₁ h)))
 *                    h ← h + down(silu(gate(norm₂ h)) · up(norm₂ h))
 *   logits = lm_head(norm(h))
 *
 * Ground truth: transformers' `modeling_llama.py` (eager attention, f32); the parity tests compare
 * logits, hidden states and attention probabilities with `tests/fixtures/*\/reference.safetensors`.
 *
 * @module
 */
import { Checkpoint } from "../io/checkpoint.ts";
import type { LlamaConfig } from "../io/config.ts";
import { ShapeError } from "../errors.ts";
import { gpu } from "../gpu/device.ts";
import { type KernelSpec, precompile } from "../gpu/pipelines.ts";
import { add, attention, embedding, linear, rmsNorm, rope, swiglu } from "../autograd/ops.ts";
import { copyElements } from "../tensor/copy.ts";
import { toF16 } from "../tensor/convert.ts";
import { blockedTeamKernels, type Weight } from "../tensor/matmul.ts";
import { RopeTable } from "../tensor/rope.ts";
import { flashAttentionKernels } from "../tensor/flash_attention.ts";
import { decodeAttention, type DevicePosition, ropeAppend } from "../tensor/kv_decode.ts";
import {
  addRmsNorm,
  SPLIT_MATVEC_MAX_ROWS,
  splitMatvec,
  splitMatvecFits,
  SWIGLU_MATVEC_MAX_ROWS,
  swigluMatvec,
  swigluMatvecFits,
  teamKernels,
} from "../tensor/decode_fused.ts";
import { Tensor } from "../tensor/tensor.ts";
import { KVCache } from "./kv_cache.ts";
import { Mamba2Cache, mamba2Decode } from "./mamba2_decode.ts";
import { Mamba1Cache, mamba1Decode } from "./mamba1_decode.ts";
import { loadMamba2Weights, mamba2DimsOf, readMambaConfig } from "./hybrid.ts";
import { isMamba1Layer, loadMamba1Weights, mamba1DimsOf } from "./hybrid.ts";
import { mamba1Forward, type Mamba1Weights } from "./mamba1_layer.ts";
import type { Mamba1Dims } from "../distill/convert_mamba1.ts";
import { mamba2Forward, type Mamba2Weights } from "./mamba2_layer.ts";
import type { Mamba2Dims } from "../distill/convert_mamba2.ts";
import type { MambaConfigJson } from "../distill/convert.ts";
import { Rng } from "../random.ts";
import { disposeWeight, type LoadOptions, loadVector, loadWeight } from "./weights.ts";

/**
 * The kernels a Llama forward dispatches: compiled in parallel when a model loads, with the team
 * products of its one-token steps (`teamKernels`, whose overrides depend on the model's shapes) and of
 * its 9–32-row products (`blockedTeamKernels`).
 */
export const LLAMA_KERNELS: KernelSpec[] = [
  { file: "matmul.wgsl" },
  { file: "matmul.wgsl", entry: "matvec" },
  { file: "embedding.wgsl" },
  { file: "rmsnorm.wgsl" },
  { file: "rope.wgsl" },
  { file: "softmax.wgsl", entry: "causal_softmax" },
  { file: "elementwise.wgsl", entry: "add" },
  { file: "elementwise.wgsl", entry: "swiglu" },
];

/** Weights of one attention layer (names follow `model.layers.{i}.self_attn.*`). */
export interface AttentionWeights {
  /** q_proj (H_q·P, D), k_proj and v_proj (H_kv·P, D), o_proj (D, H_q·P). */
  q: Weight;
  k: Weight;
  v: Weight;
  o: Weight;
  /** Biases when `attention_bias` is set. */
  qBias?: Tensor;
  kBias?: Tensor;
  vBias?: Tensor;
  oBias?: Tensor;
}

/** Weights of the SwiGLU MLP (`mlp.{gate,up,down}_proj`). */
export interface MlpWeights {
  gate: Weight;
  up: Weight;
  down: Weight;
  gateBias?: Tensor;
  upBias?: Tensor;
  downBias?: Tensor;
}

/** One decoder layer: attention, or (in a hybrid) a Mamba-2 mixer, then the MLP. */
export interface LlamaLayer {
  inputNorm: Tensor;
  /** Present in attention layers. */
  attn?: AttentionWeights;
  /** Present in converted layers of a hybrid. */
  mamba?: Mamba2Weights;
  /** Present in converted layers of a hybrid with Mamba-1 layers. */
  mamba1?: Mamba1Weights;
  postNorm: Tensor;
  mlp: MlpWeights;
}

/** One layer's decoding state: a KV cache (attention layers) or a conv + SSM state (Mamba layers). */
export type LayerCache = KVCache | Mamba2Cache | Mamba1Cache;

/** Options of {@linkcode LlamaModel.forward}. */
export interface ForwardOptions {
  /** Keep every hidden state (embeddings, each layer's output, the last after the final norm). */
  hidden?: boolean;
  /** Keep every layer's attention probabilities (B, H, L, S). */
  attentions?: boolean;
  /**
   * Decoding states (one per layer, from {@linkcode LlamaModel.createCache}) to read and extend;
   * positions continue from their length.
   */
  cache?: LayerCache[];
  /** Compute logits for the last position only (generation). */
  lastOnly?: boolean;
  /**
   * The position of the first token on the GPU (`counts[word] + offset`) instead of the caches' host
   * lengths: attention layers rotate, append and mask from it (`kernels/kv_decode.wgsl`), so recorded
   * work stays valid whatever the length (speculative round loops; their KV caches' host `length` is
   * then not maintained; q, k and v (or a Mamba-2 in_proj's blocks), each residual add and the
   * RMSNorm after it, and the MLP's gate, up and SwiGLU run as one dispatch each). Needs `cache`.
   */
  position?: DevicePosition;
}

/** Output of a forward pass. The caller owns (and disposes) every tensor. */
export interface ForwardOutput {
  /** (B, L, V), or (B, 1, V) with `lastOnly`. */
  logits: Tensor;
  /** numLayers + 1 tensors (B, L, D), when asked. */
  hidden?: Tensor[];
  /** numLayers tensors (B, H, L, S), when asked. */
  attentions?: Tensor[];
}

/**
 * `w` stored as f16 (`w` itself when it already is), block by block; the f32 blocks are freed unless
 * `keep` (a head tied to the embedding, which stays f32).
 */
function halfWeight(w: Weight, keep = false): Weight {
  if (w.parts.every((p) => p.dtype === "f16")) return w;
  const half = { shape: w.shape, parts: w.parts.map((p) => toF16(p)) };
  if (!keep) disposeWeight(w);
  return half;
}

/** A loaded Llama model. */
export class LlamaModel implements Disposable {
  private constructor(
    /** The parsed config. */
    readonly config: LlamaConfig,
    readonly embed: Weight,
    readonly layers: LlamaLayer[],
    readonly norm: Tensor,
    lmHead: Weight,
    readonly rope: RopeTable,
    /** Mamba-2 settings when the model is a hybrid (null for a plain Llama). */
    readonly hybrid: { config: MambaConfigJson; dims: Mamba2Dims; mamba1Dims?: Mamba1Dims } | null = null,
  ) {
    this.#head = lmHead;
  }

  #head: Weight;

  /** The output projection (vocab, D): `embed` itself when the embeddings are tied. */
  get lmHead(): Weight {
    return this.#head;
  }

  /**
   * Stores the LM head as f16 (`toF16`): half the bytes per decoding step (at Llama-3.2-1B's shapes the
   * head is 1 GB in f32), logits of the head rounded to halves (products in f32, kernels/matmul.wgsl
   * `W_F16`). Meant for a speculative draft: the target checks every proposal, so the output does not
   * change, only how often drafts are accepted. Decoding only: training, `lmHeadLoss` and more than 8
   * rows at a time through a product other than `linear` are not supported afterwards. A tied head gets
   * its own f16 copy (the embedding stays f32).
   */
  useHalfLmHead(): void {
    this.#head = halfWeight(this.#head, this.#head === this.embed);
  }

  /**
   * {@linkcode useHalfLmHead}, and every attention layer's q, k, v, o and every MLP's gate, up, down
   * stored as f16 too (Mamba layers and norms stay f32): the decoding products (kernels/matmul.wgsl,
   * split_matvec.wgsl, decode_fused.wgsl with `W_F16`) read half the bytes. For a speculative draft, as
   * `useHalfLmHead`; decoding only.
   */
  useHalfWeights(): void {
    this.useHalfLmHead();
    for (const { attn: a, mlp: m } of this.layers) {
      if (a) [a.q, a.k, a.v, a.o] = [a.q, a.k, a.v, a.o].map((w) => halfWeight(w));
      [m.gate, m.up, m.down] = [m.gate, m.up, m.down].map((w) => halfWeight(w));
    }
  }

  /** Loads a checkpoint directory (config.json + safetensors) onto the GPU. */
  static async load(dir: string, opts: LoadOptions = {}): Promise<LlamaModel> {
    using ckpt = await Checkpoint.open(dir);
    // the fused attention's pipeline depends on the head dim (its tile constants)
    const c = ckpt.config;
    const D = c.hiddenSize;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const bias = async (on: boolean, name: string, n: number) =>
      on ? await loadVector(ckpt, name, n) : undefined;
    const mambaConfig = await readMambaConfig(dir, c);
    const dims = mambaConfig ? mamba2DimsOf(mambaConfig) : null;
    const compiling = precompile([
      ...LLAMA_KERNELS,
      ...flashAttentionKernels(c.headDim),
      ...teamKernels(1, [D, qDim, c.intermediateSize, ...(dims ? [dims.dInner] : [])]),
      ...blockedTeamKernels([D, qDim, c.intermediateSize, ...(dims ? [dims.dInner] : [])]),
    ]);
    const embed = await loadWeight(ckpt, "model.embed_tokens.weight", [c.vocabSize, D], opts);
    const layers: LlamaLayer[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      const pre = `model.layers.${i}`;
      const a = `${pre}.self_attn`;
      const m = `${pre}.mlp`;
      const converted = mambaConfig !== null && !mambaConfig.attn_layers.includes(i);
      const v1 = converted && isMamba1Layer(ckpt, i);
      layers.push({
        inputNorm: await loadVector(ckpt, `${pre}.input_layernorm.weight`, D),
        mamba: converted && !v1 ? await loadMamba2Weights(ckpt, i, dims!, opts) : undefined,
        mamba1: v1 ? await loadMamba1Weights(ckpt, i, mamba1DimsOf(mambaConfig!), opts) : undefined,
        attn: converted ? undefined : {
          q: await loadWeight(ckpt, `${a}.q_proj.weight`, [qDim, D], opts),
          k: await loadWeight(ckpt, `${a}.k_proj.weight`, [kvDim, D], opts),
          v: await loadWeight(ckpt, `${a}.v_proj.weight`, [kvDim, D], opts),
          o: await loadWeight(ckpt, `${a}.o_proj.weight`, [D, qDim], opts),
          qBias: await bias(c.attentionBias, `${a}.q_proj.bias`, qDim),
          kBias: await bias(c.attentionBias, `${a}.k_proj.bias`, kvDim),
          vBias: await bias(c.attentionBias, `${a}.v_proj.bias`, kvDim),
          oBias: await bias(c.attentionBias, `${a}.o_proj.bias`, D),
        },
        postNorm: await loadVector(ckpt, `${pre}.post_attention_layernorm.weight`, D),
        mlp: {
          gate: await loadWeight(ckpt, `${m}.gate_proj.weight`, [c.intermediateSize, D], opts),
          up: await loadWeight(ckpt, `${m}.up_proj.weight`, [c.intermediateSize, D], opts),
          down: await loadWeight(ckpt, `${m}.down_proj.weight`, [D, c.intermediateSize], opts),
          gateBias: await bias(c.mlpBias, `${m}.gate_proj.bias`, c.intermediateSize),
          upBias: await bias(c.mlpBias, `${m}.up_proj.bias`, c.intermediateSize),
          downBias: await bias(c.mlpBias, `${m}.down_proj.bias`, D),
        },
      });
    }
    const norm = await loadVector(ckpt, "model.norm.weight", D);
    const lmHead = c.tieWordEmbeddings
      ? embed
      : await loadWeight(ckpt, "lm_head.weight", [c.vocabSize, D], opts);
    const table = new RopeTable(c.rope, c.headDim, c.maxPositionEmbeddings);
    await compiling;
    return new LlamaModel(
      c,
      embed,
      layers,
      norm,
      lmHead,
      table,
      mambaConfig
        ? { config: mambaConfig, dims: dims!, mamba1Dims: mamba1DimsOrNull(mambaConfig, layers) }
        : null,
    );
  }

  /**
   * Every trainable tensor under its checkpoint name (tied embeddings appear once, as
   * `model.embed_tokens.weight`). Weights split into row blocks are listed as `name#k` per block.
   */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const w = (name: string, x: Weight) => {
      if (x.parts.length === 1) out.push([name, x.parts[0]]);
      else x.parts.forEach((p, k) => out.push([`${name}#${k}`, p]));
    };
    const v = (name: string, x?: Tensor) => x && out.push([name, x]);
    w("model.embed_tokens.weight", this.embed);
    this.layers.forEach((l, i) => {
      const pre = `model.layers.${i}`;
      v(`${pre}.input_layernorm.weight`, l.inputNorm);
      if (l.attn) {
        for (const n of ["q", "k", "v", "o"] as const) {
          w(`${pre}.self_attn.${n}_proj.weight`, l.attn[n]);
          v(`${pre}.self_attn.${n}_proj.bias`, l.attn[`${n}Bias`]);
        }
      }
      if (l.mamba) {
        const mm = `${pre}.mamba`;
        w(`${mm}.in_proj.weight`, l.mamba.inProj);
        v(`${mm}.conv1d.weight`, l.mamba.convWeight);
        v(`${mm}.conv1d.bias`, l.mamba.convBias);
        v(`${mm}.dt_bias`, l.mamba.dtBias);
        v(`${mm}.A_log`, l.mamba.aLog);
        v(`${mm}.D`, l.mamba.D);
        v(`${mm}.norm.weight`, l.mamba.norm);
        w(`${mm}.out_proj.weight`, l.mamba.outProj);
      }
      if (l.mamba1) {
        const mm = `${pre}.mamba`;
        const m = l.mamba1;
        w(`${mm}.in_proj_x.weight`, m.inProjX);
        w(`${mm}.in_proj_z.weight`, m.inProjZ);
        v(`${mm}.conv1d.weight`, m.convWeight);
        v(`${mm}.conv1d.bias`, m.convBias);
        w(`${mm}.B_proj.weight`, m.bProj);
        w(`${mm}.C_proj.weight`, m.cProj);
        w(`${mm}.dt_proj_down.weight`, m.dtDown);
        w(`${mm}.dt_proj.weight`, m.dtProj);
        v(`${mm}.dt_proj.bias`, m.dtBias);
        v(`${mm}.A_log`, m.aLog);
        v(`${mm}.D`, m.D);
        w(`${mm}.out_proj.weight`, m.outProj);
      }
      v(`${pre}.post_attention_layernorm.weight`, l.postNorm);
      for (const n of ["gate", "up", "down"] as const) {
        w(`${pre}.mlp.${n}_proj.weight`, l.mlp[n]);
        v(`${pre}.mlp.${n}_proj.bias`, l.mlp[`${n}Bias`]);
      }
    });
    v("model.norm.weight", this.norm);
    if (this.lmHead !== this.embed) w("lm_head.weight", this.lmHead);
    return out;
  }

  /**
   * A freshly initialised model (training from scratch), as transformers initialises Llama: every
   * linear and embedding weight N(0, std²) with std = `initializer_range` (default 0.02), norms 1,
   * biases 0. Seeded: the same seed gives the same weights.
   */
  static random(config: LlamaConfig, seed = 0, std = 0.02): LlamaModel {
    const rng = new Rng(seed);
    const c = config;
    const D = c.hiddenSize;
    const matrix = (rows: number, cols: number): Weight => ({
      parts: [
        Tensor.from(Float32Array.from({ length: rows * cols }, () => rng.normal() * std), [rows, cols]),
      ],
      shape: [rows, cols],
    });
    const ones = (n: number) => Tensor.from(new Float32Array(n).fill(1), [n]);
    const zeros = (on: boolean, n: number) => on ? Tensor.zeros([n]) : undefined;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const embed = matrix(c.vocabSize, D);
    const layers: LlamaLayer[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      layers.push({
        inputNorm: ones(D),
        attn: {
          q: matrix(qDim, D),
          k: matrix(kvDim, D),
          v: matrix(kvDim, D),
          o: matrix(D, qDim),
          qBias: zeros(c.attentionBias, qDim),
          kBias: zeros(c.attentionBias, kvDim),
          vBias: zeros(c.attentionBias, kvDim),
          oBias: zeros(c.attentionBias, D),
        },
        postNorm: ones(D),
        mlp: {
          gate: matrix(c.intermediateSize, D),
          up: matrix(c.intermediateSize, D),
          down: matrix(D, c.intermediateSize),
          gateBias: zeros(c.mlpBias, c.intermediateSize),
          upBias: zeros(c.mlpBias, c.intermediateSize),
          downBias: zeros(c.mlpBias, D),
        },
      });
    }
    const lmHead = c.tieWordEmbeddings ? embed : matrix(c.vocabSize, D);
    return new LlamaModel(
      c,
      embed,
      layers,
      ones(D),
      lmHead,
      new RopeTable(c.rope, c.headDim, c.maxPositionEmbeddings),
    );
  }

  /**
   * Empty decoding states for `batch` sequences of up to `capacity` positions: a KV cache per attention
   * layer, a conv + SSM state per Mamba-2 layer.
   */
  createCache(batch: number, capacity: number): LayerCache[] {
    const c = this.config;
    return this.layers.map((l) =>
      l.mamba1
        ? new Mamba1Cache(batch, this.hybrid!.mamba1Dims!, l.mamba1)
        : l.mamba
        ? new Mamba2Cache(batch, this.hybrid!.dims)
        : new KVCache(batch, capacity, c.numKvHeads, c.headDim)
    );
  }

  /** Runs ids (B, L) i32 through the model. */
  forward(ids: Tensor, opts: ForwardOptions = {}): ForwardOutput {
    const c = this.config;
    const { final, hidden, attentions } = this.trunk(ids, opts);
    const logitsBytes = final.size / c.hiddenSize * c.vocabSize * 4;
    if (logitsBytes > gpu().maxBindingBytes) {
      final.dispose();
      throw new ShapeError(
        "llama.forward",
        `logits of ${logitsBytes} bytes exceed one binding (${gpu().maxBindingBytes}); use a smaller batch or lmHeadLoss on finalHidden`,
      );
    }
    const logits = linear(final, this.lmHead);
    if (!opts.hidden) final.dispose();
    return { logits, hidden, attentions };
  }

  /**
   * The final normalised hidden states (B, L, D) of ids (B, L), without the LM head: the input of
   * `lmHeadLoss` (lib/autograd/lm_loss.ts), which computes the head and its loss in chunks when the
   * logits would not fit one buffer (a Llama-3 vocabulary at thousands of tokens).
   */
  finalHidden(ids: Tensor, opts: { cache?: LayerCache[] } = {}): Tensor {
    return this.trunk(ids, opts).final;
  }

  /** Embedding and decoder layers and the final norm: the forward pass up to the LM head. */
  private trunk(
    ids: Tensor,
    opts: ForwardOptions,
  ): { final: Tensor; hidden?: Tensor[]; attentions?: Tensor[] } {
    const c = this.config;
    if (ids.shape.length !== 2 || ids.dtype !== "i32") {
      throw new ShapeError(
        "llama.forward",
        `expected input_ids (B, L) i32, got (${ids.shape.join(", ")}) ${ids.dtype}`,
      );
    }
    const [B, L] = ids.shape;
    if (opts.cache && opts.cache.length !== this.layers.length) {
      throw new ShapeError(
        "llama.forward",
        `${opts.cache.length} layer caches for ${this.layers.length} layers (use createCache)`,
      );
    }
    if (opts.position && !opts.cache) {
      throw new ShapeError("llama.forward", "a device position needs the decoding caches (cache)");
    }
    const pos0 = opts.cache?.[0]?.length ?? 0;
    if (!opts.position && pos0 + L > this.rope.positions) {
      throw new ShapeError(
        "llama.forward",
        `${pos0 + L} positions exceed max_position_embeddings ${this.rope.positions}`,
      );
    }
    const hidden: Tensor[] = [];
    const attentions: Tensor[] = [];
    let h = embedding(ids, this.embed);
    // Decoding with a device position (speculative round loops): each residual add and the RMSNorm
    // after it are one dispatch (`addRmsNorm`); xNext carries the next layer's (or the final) norm.
    const fused = opts.position !== undefined && !opts.hidden;
    let xNext: Tensor | null = null;
    this.layers.forEach((layer, i) => {
      if (opts.hidden) hidden.push(h);
      const x = xNext ?? rmsNorm(h, layer.inputNorm, c.rmsNormEps);
      xNext = null;
      let a: { out: Tensor; probs?: Tensor };
      if (layer.mamba1) {
        if (opts.cache) {
          const lc = opts.cache[i];
          if (!(lc instanceof Mamba1Cache)) {
            throw new ShapeError(
              "llama.forward",
              `layer ${i} is a Mamba-1 layer but its cache is not a Mamba-1 state`,
            );
          }
          a = { out: mamba1Decode(x, layer.mamba1, this.hybrid!.mamba1Dims!, lc) };
        } else {
          a = { out: this.mixerForward(i, x) };
        }
      } else if (layer.mamba) {
        if (opts.cache) {
          const lc = opts.cache[i];
          if (!(lc instanceof Mamba2Cache)) {
            throw new ShapeError(
              "llama.forward",
              `layer ${i} is a Mamba-2 layer but its cache is not a Mamba-2 state`,
            );
          }
          const o = { dims: this.hybrid!.dims, kvHeads: c.numKvHeads, eps: c.rmsNormEps };
          a = { out: mamba2Decode(x, layer.mamba, o, lc, opts.position !== undefined) };
        } else {
          a = { out: this.mixerForward(i, x) };
        }
      } else {
        const lc = opts.cache?.[i];
        if (lc !== undefined && !(lc instanceof KVCache)) {
          throw new ShapeError(
            "llama.forward",
            `layer ${i} is an attention layer but its cache is a Mamba state`,
          );
        }
        a = this.attentionBlock(x, layer.attn!, B, L, lc, opts.attentions, opts.position);
      }
      x.dispose();
      if (a.probs) attentions.push(a.probs);
      if (fused) {
        const [h2, x2] = addRmsNorm(h, a.out, layer.postNorm, c.rmsNormEps);
        a.out.dispose();
        h.dispose();
        const m = this.mlpBlock(x2, layer.mlp, true);
        x2.dispose();
        const lastLayer = i + 1 === this.layers.length;
        const nextNorm = lastLayer ? this.norm : this.layers[i + 1].inputNorm;
        // The final norm of the last rows only with lastOnly (no copy of the last row).
        const lastOf = lastLayer && opts.lastOnly && L > 1 ? L : undefined;
        [h, xNext] = addRmsNorm(
          h2.view([B, L, c.hiddenSize]),
          m.view([B, L, c.hiddenSize]),
          nextNorm,
          c.rmsNormEps,
          lastOf,
        );
        h2.dispose();
        m.dispose();
        return;
      }
      const h2 = add(h, a.out);
      a.out.dispose();
      if (!opts.hidden) h.dispose();
      const x2 = rmsNorm(h2, layer.postNorm, c.rmsNormEps);
      const m = this.mlpBlock(x2, layer.mlp, opts.position !== undefined);
      x2.dispose();
      h = add(h2, m);
      h2.dispose();
      m.dispose();
    });
    if (xNext) {
      // The fused path's last add already applied the final norm.
      h.dispose();
      return { final: xNext, hidden: undefined, attentions: opts.attentions ? attentions : undefined };
    }
    let last = h;
    if (opts.lastOnly && L > 1) {
      last = Tensor.empty([B, 1, c.hiddenSize]);
      for (let b = 0; b < B; b++) {
        copyElements(h, (b * L + L - 1) * c.hiddenSize, last, b * c.hiddenSize, c.hiddenSize);
      }
      h.dispose();
    }
    const final = rmsNorm(last, this.norm, c.rmsNormEps);
    last.dispose(); // the last layer's raw output is not one of the hidden states
    if (opts.hidden) hidden.push(final);
    return {
      final,
      hidden: opts.hidden ? hidden : undefined,
      attentions: opts.attentions ? attentions : undefined,
    };
  }

  /**
   * Layer i's sequence mixer alone on its normalised input x (B, L, D), without cache: the attention
   * block (q/k/v, RoPE, causal attention, o_proj) or the Mamba mixer. Returns (B, L, D). MOHAWK's
   * stages compare teacher and student layers through this, fed the teacher's hidden states.
   */
  mixerForward(i: number, x: Tensor): Tensor {
    const layer = this.layers[i];
    if (!layer) throw new ShapeError("llama.mixer", `layer ${i} is not in [0, ${this.layers.length})`);
    const c = this.config;
    if (layer.mamba1) return mamba1Forward(x, layer.mamba1, this.hybrid!.mamba1Dims!);
    if (layer.mamba) {
      return mamba2Forward(x, layer.mamba, {
        dims: this.hybrid!.dims,
        kvHeads: c.numKvHeads,
        eps: c.rmsNormEps,
      });
    }
    const [B, L] = x.shape;
    return this.attentionBlock(x, layer.attn!, B, L).out;
  }

  private attentionBlock(
    x: Tensor,
    w: AttentionWeights,
    B: number,
    L: number,
    cache?: KVCache,
    probs?: boolean,
    position?: DevicePosition,
  ) {
    const c = this.config;
    const pos0 = cache?.length ?? 0;
    // With a device position and few rows, q, k and v in one dispatch (the same values as linear).
    const split = position && cache && !w.qBias && !w.kBias && !w.vBias && B * L <= SPLIT_MATVEC_MAX_ROWS &&
        splitMatvecFits(w.q, w.k, w.v)
      ? splitMatvec(x, [
        { w: w.q, row0: 0, rows: w.q.shape[0] },
        { w: w.k, row0: 0, rows: w.k.shape[0] },
        { w: w.v, row0: 0, rows: w.v.shape[0] },
      ])
      : null;
    const q0 = split ? split[0] : linear(x, w.q, w.qBias);
    const k0 = split ? split[1] : linear(x, w.k, w.kBias);
    const v = split ? split[2] : linear(x, w.v, w.vBias);
    if (position && cache) {
      // The length is on the GPU: one kernel rotates q, k and appends k, v; one attends with the mask.
      const view = (t: Tensor, H: number) => t.view([B, L, H, c.headDim]);
      using q0v = view(q0, c.numHeads);
      using k0v = view(k0, c.numKvHeads);
      using vv = view(v, c.numKvHeads);
      using q = ropeAppend(q0v, k0v, vv, this.rope, cache, position);
      q0.dispose();
      k0.dispose();
      v.dispose();
      using o = decodeAttention(q, cache, position);
      using flat = o.view([B, L, c.numHeads * c.headDim]);
      return { out: linear(flat, w.o, w.oBias), probs: undefined };
    }
    const q = rope(q0.view([B, L, c.numHeads, c.headDim]), this.rope, pos0);
    const k = rope(k0.view([B, L, c.numKvHeads, c.headDim]), this.rope, pos0);
    q0.dispose();
    k0.dispose();
    const vv = v.view([B, L, c.numKvHeads, c.headDim]);
    let r;
    if (cache) {
      cache.append(k, vv);
      r = attention(q, cache.k, cache.v, { keyLength: cache.length, returnProbs: probs });
    } else {
      r = attention(q, k, vv, { returnProbs: probs });
    }
    q.dispose();
    k.dispose();
    v.dispose();
    const out = linear(r.out.view([B, L, c.numHeads * c.headDim]), w.o, w.oBias);
    r.out.dispose();
    return { out, probs: r.probs };
  }

  /** The MLP; `fused` (decoding with a device position, few rows): gate, up and SwiGLU in one dispatch. */
  private mlpBlock(x: Tensor, w: MlpWeights, fused = false): Tensor {
    const rows = x.size / x.shape[x.shape.length - 1];
    if (
      fused && !w.gateBias && !w.upBias && rows <= SWIGLU_MATVEC_MAX_ROWS && swigluMatvecFits(w.gate, w.up)
    ) {
      using a = swigluMatvec(x, w.gate, w.up);
      return linear(a, w.down, w.downBias);
    }
    const g = linear(x, w.gate, w.gateBias);
    const u = linear(x, w.up, w.upBias);
    const a = swiglu(g, u);
    g.dispose();
    u.dispose();
    const y = linear(a, w.down, w.downBias);
    a.dispose();
    return y;
  }

  /** Frees every weight. */
  dispose(): void {
    disposeWeight(this.embed);
    if (this.lmHead !== this.embed) disposeWeight(this.lmHead);
    for (const l of this.layers) {
      l.inputNorm.dispose();
      l.postNorm.dispose();
      for (const w of [l.mlp.gate, l.mlp.up, l.mlp.down]) disposeWeight(w);
      for (const b of [l.mlp.gateBias, l.mlp.upBias]) b?.dispose();
      if (l.attn) {
        for (const w of [l.attn.q, l.attn.k, l.attn.v, l.attn.o]) disposeWeight(w);
        for (const b of [l.attn.qBias, l.attn.kBias, l.attn.vBias, l.attn.oBias]) b?.dispose();
      }
      if (l.mamba1) {
        const m = l.mamba1;
        for (const w of [m.inProjX, m.inProjZ, m.bProj, m.cProj, m.dtDown, m.dtProj, m.outProj]) {
          disposeWeight(w);
        }
        for (const t of [m.convWeight, m.convBias, m.dtBias, m.aLog, m.D]) t.dispose();
      }
      if (l.mamba) {
        disposeWeight(l.mamba.inProj);
        disposeWeight(l.mamba.outProj);
        const m = l.mamba;
        for (const t of [m.convWeight, m.convBias, m.dtBias, m.aLog, m.D, m.norm]) t.dispose();
      }
      l.mlp.downBias?.dispose();
    }
    this.norm.dispose();
    this.rope[Symbol.dispose]();
  }

  /** `using model = await LlamaModel.load(…)`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** The Mamba-1 dimensions of a hybrid that has Mamba-1 layers (undefined otherwise). */
function mamba1DimsOrNull(m: MambaConfigJson, layers: LlamaLayer[]): Mamba1Dims | undefined {
  return layers.some((l) => l.mamba1) ? mamba1DimsOf(m) : undefined;
}
