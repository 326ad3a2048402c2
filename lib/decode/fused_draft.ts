/**
 * A small Llama draft whose whole greedy round is one dispatch (`kernels/fused_draft.wgsl`).
 *
 * Where a forward is bound by its dispatches (the bundled model: ~7 µs each, 54 a step of the 6-layer
 * target, ~20 a step of a two-layer draft), a speculative round of K draft steps costs about as much as
 * K plain tokens, and speculation loses. One workgroup running every layer of every draft step instead
 * reads the weights at one multiprocessor's bandwidth, which for a draft of a few MB is a few µs a step.
 * The class packs the draft's weights transposed (f32, or f16 with `half`), keeps its own KV cache
 * indexed by absolute position (the positions past the accepted ones are rewritten next round, so there
 * is nothing to roll back), and records the round or the prompt's prefill.
 *
 * Only greedy rounds (the proposals are argmax tokens, no distributions) and only Llama models whose
 * sizes fit the kernel's workgroup memory: {@linkcode fusedDraftUnsupported} says why a model does not.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, Params } from "../gpu/commands.ts";
import { dummyBuffer } from "../gpu/buffers.ts";
import { gpu } from "../gpu/device.ts";
import type { KernelSpec } from "../gpu/pipelines.ts";
import type { LlamaConfig } from "../io/config.ts";
import type { LlamaModel } from "../models/llama.ts";
import { toF16 } from "../tensor/convert.ts";
import type { Weight } from "../tensor/matmul.ts";
import { expectShape, readTensors, Tensor } from "../tensor/tensor.ts";

/** Positions the kernel's score scratch holds (the draft's cache capacity at most). */
export const FUSED_DRAFT_MAX_POSITIONS = 1536;

/**
 * Prompt tokens per prefill dispatch: one workgroup walks them one by one, so a long prompt in one
 * dispatch would run for tens of ms.
 */
export const FUSED_DRAFT_PREFILL_CHUNK = 64;

/**
 * Why `model` cannot run as a fused draft with a cache of `capacity` positions, or null when it can:
 * attention layers only, no biases, hidden size ≤ 256, (H + 2 H_kv)·P ≤ 512 with H·P ≤ 256, MLP width
 * ≤ 768, every output width a multiple of 8, the head width a multiple of 4, ≤ 1536 positions.
 */
export function fusedDraftUnsupported(model: LlamaModel, capacity: number): string | null {
  const c = model.config;
  const HP = c.numHeads * c.headDim;
  const kvd = c.numKvHeads * c.headDim;
  const checks: [boolean, string][] = [
    [model.layers.every((l) => l.attn && !l.mamba && !l.mamba1), "it has Mamba layers"],
    [!c.attentionBias && !c.mlpBias, "it has attention or MLP biases"],
    [
      c.hiddenSize <= 256 && c.hiddenSize % 8 === 0,
      `hidden size ${c.hiddenSize} is not a multiple of 8 ≤ 256`,
    ],
    [HP <= 256 && HP % 8 === 0, `heads × head dim = ${HP} is not a multiple of 8 ≤ 256`],
    [HP + 2 * kvd <= 512 && kvd % 4 === 0, `q, k, v widths ${HP} + 2 × ${kvd} exceed 512`],
    [c.headDim % 4 === 0 && c.headDim <= 256, `head dim ${c.headDim} is not a multiple of 4 ≤ 256`],
    [c.numHeads % c.numKvHeads === 0, `${c.numHeads} heads are not a multiple of ${c.numKvHeads} KV heads`],
    [
      c.intermediateSize <= 768 && c.intermediateSize % 8 === 0,
      `MLP width ${c.intermediateSize} is not a multiple of 8 ≤ 768`,
    ],
    [c.vocabSize % 8 === 0, `vocabulary ${c.vocabSize} is not a multiple of 8`],
    [
      capacity <= Math.min(FUSED_DRAFT_MAX_POSITIONS, model.rope.positions),
      `${capacity} positions exceed ${Math.min(FUSED_DRAFT_MAX_POSITIONS, model.rope.positions)}`,
    ],
  ];
  const failed = checks.filter(([ok]) => !ok).map(([, why]) => why);
  return failed.length ? failed.join("; ") : null;
}

/** Weights of one layer's packed matrices ([Wq | Wk | Wv], Wo, Wg, Wu, Wd) and of the head. */
function packedSizes(c: LlamaConfig): { layer: number; head: number } {
  const [D, F] = [c.hiddenSize, c.intermediateSize];
  const HP = c.numHeads * c.headDim;
  const kvd = c.numKvHeads * c.headDim;
  return { layer: D * (HP + 2 * kvd) + HP * D + 3 * D * F, head: D * c.vocabSize };
}

/** Bytes of the matrices one fused draft step reads: every layer's and the head's, f32 or f16. */
export function fusedDraftStepBytes(config: LlamaConfig, half: boolean): number {
  const { layer, head } = packedSizes(config);
  return (config.numLayers * layer + head) * (half ? 2 : 4);
}

/**
 * The largest draft (f16 matrices a step) that `fusedDraft: "auto"` fuses. On the H200 (docs/results.md
 * §4g) drafts of 1.4 and 1.8 MB ran faster fused than unfused at every K, and the two-layer early exit of
 * the bundled teacher (5 MB) 1.4–1.8× slower: one workgroup reads ~75–95 GB/s.
 */
export const FUSED_DRAFT_AUTO_MAX_BYTES = 2 * 2 ** 20;

/**
 * What `fusedDraft: "auto"` runs: `"half"` (a fused draft with f16 matrices) for greedy decoding with a
 * draft that fits (`fusedDraftUnsupported`) and reads ≤ {@linkcode FUSED_DRAFT_AUTO_MAX_BYTES} a step,
 * else false (the unfused draft).
 */
export function autoFusedDraft(model: LlamaModel, capacity: number, greedy: boolean): "half" | false {
  return greedy && fusedDraftUnsupported(model, capacity) === null &&
      fusedDraftStepBytes(model.config, true) <= FUSED_DRAFT_AUTO_MAX_BYTES
    ? "half"
    : false;
}

/** Options of {@linkcode FusedDraft.create}. */
export interface FusedDraftOptions {
  /** Pack the matrices as f16 (half the bytes a step; the embedding and norms stay f32). */
  half?: boolean;
  /** Timing only (bench/fused_draft_step.ts): the kernel's `SKIP` bits; the outputs are wrong. */
  skipForTiming?: number;
}

/**
 * The values of `weights` (each its row blocks in order) and `vectors` on the host, read back together
 * (one GPU sync); f32 weights only.
 */
async function hostValues(weights: Weight[], vectors: Tensor[]): Promise<Float32Array[]> {
  if (weights.some((w) => w.parts.some((p) => p.dtype !== "f32"))) {
    throw new ShapeError(
      "fusedDraft",
      "the draft's weights are f16 already: pack an f32 model with { half: true } instead",
    );
  }
  const read = (await readTensors([...weights.flatMap((w) => w.parts), ...vectors])) as Float32Array[];
  let next = 0;
  const joined = weights.map((w) => {
    const out = new Float32Array(w.shape[0] * w.shape[1]);
    let at = 0;
    for (let k = 0; k < w.parts.length; k++, next++) {
      out.set(read[next], at);
      at += read[next].length;
    }
    return out;
  });
  return [...joined, ...read.slice(next)];
}

/**
 * Writes the transpose of the (O, I) row-major matrices `ws` (stacked along O) into `out` at `at` as
 * (I, ΣO) row-major; returns the next offset.
 */
function packTransposed(
  out: Float32Array,
  at: number,
  ws: { data: Float32Array; rows: number }[],
  I: number,
) {
  const O = ws.reduce((n, w) => n + w.rows, 0);
  let o0 = 0;
  for (const { data, rows } of ws) {
    for (let o = 0; o < rows; o++) {
      for (let i = 0; i < I; i++) out[at + i * O + o0 + o] = data[o * I + i];
    }
    o0 += rows;
  }
  return at + I * O;
}

/** A packed small Llama draft and its KV cache (see the module doc). */
export class FusedDraft implements Disposable {
  private constructor(
    /** The model packed (its config and RoPE table are read; it must outlive this draft). */
    readonly model: LlamaModel,
    /** Positions the cache holds. */
    readonly capacity: number,
    /** True when the matrices are f16. */
    readonly half: boolean,
    private readonly constants: Record<string, number>,
    private readonly mats: Tensor,
    private readonly vecs: Tensor,
    private readonly kv: Tensor,
    private readonly layerGroups: number,
    private readonly headGroup: number,
  ) {}

  /** Packs `model` (not timed: reads every weight back once) for a cache of `capacity` positions. */
  static async create(
    model: LlamaModel,
    capacity: number,
    opts: FusedDraftOptions = {},
  ): Promise<FusedDraft> {
    const why = fusedDraftUnsupported(model, capacity);
    if (why) throw new ShapeError("fusedDraft", `this model cannot be a fused draft: ${why}`);
    const c = model.config;
    const [D, F, V, Ly] = [c.hiddenSize, c.intermediateSize, c.vocabSize, c.numLayers];
    const HP = c.numHeads * c.headDim;
    const kvd = c.numKvHeads * c.headDim;
    const sizes = packedSizes(c);
    // Every weight and norm read back at once: per layer q, k, v, o, gate, up, down; then the head and
    // the embedding; then per layer the two norms, and the final norm.
    const host = await hostValues(
      [
        ...model.layers.flatMap(({ attn: a, mlp: m }) => [a!.q, a!.k, a!.v, a!.o, m.gate, m.up, m.down]),
        model.lmHead,
        model.embed,
      ],
      [...model.layers.flatMap((l) => [l.inputNorm, l.postNorm]), model.norm],
    );
    const mats = new Float32Array(Ly * sizes.layer + sizes.head);
    let at = 0;
    for (let l = 0; l < Ly; l++) {
      const [q, k, v, o, g, u, d] = host.slice(7 * l, 7 * l + 7);
      at = packTransposed(
        mats,
        at,
        [{ data: q, rows: HP }, { data: k, rows: kvd }, { data: v, rows: kvd }],
        D,
      );
      at = packTransposed(mats, at, [{ data: o, rows: D }], HP);
      at = packTransposed(mats, at, [{ data: g, rows: F }], D);
      at = packTransposed(mats, at, [{ data: u, rows: F }], D);
      at = packTransposed(mats, at, [{ data: d, rows: D }], F);
    }
    packTransposed(mats, at, [{ data: host[7 * Ly], rows: V }], D);
    // vecs: the embedding, then the norms in the order they were read.
    const vecs = new Float32Array(V * D + (2 * Ly + 1) * D);
    host.slice(7 * Ly + 1).forEach((a, i) => vecs.set(a, i === 0 ? 0 : V * D + (i - 1) * D));
    const maxBytes = gpu().maxBindingBytes;
    if (mats.byteLength > maxBytes || vecs.byteLength > maxBytes) {
      throw new ShapeError("fusedDraft", `the packed weights exceed one binding (${maxBytes} bytes)`);
    }
    const half = opts.half === true;
    let matsT = Tensor.from(mats, [mats.length]);
    if (half) {
      const h = toF16(matsT);
      matsT.dispose();
      matsT = h;
    }
    return new FusedDraft(
      model,
      capacity,
      half,
      { ...(half ? { W_F16: 1 } : {}), ...(opts.skipForTiming ? { SKIP: opts.skipForTiming } : {}) },
      matsT,
      Tensor.from(vecs, [vecs.length]),
      Tensor.zeros([Ly * capacity * 2 * kvd]),
      sizes.layer / 8,
      Ly * sizes.layer / 8,
    );
  }

  private params(K: number, feed: number, withLogits: boolean, n: number, first = 0): Params {
    const c = this.model.config;
    return new Params()
      .u32(
        c.hiddenSize,
        c.numHeads,
        c.numKvHeads,
        c.headDim,
        c.intermediateSize,
        c.vocabSize,
        c.numLayers,
        this.capacity,
        K,
        feed,
        withLogits ? 1 : 0,
        n,
      )
      .f32v(c.rmsNormEps)
      .u32(this.layerGroups, this.headGroup, first);
  }

  private spec(entry: "round" | "prefill"): KernelSpec {
    return { file: "fused_draft.wgsl", entry, constants: this.constants };
  }

  /** Its two entry points with its constants, for `precompile`. */
  get kernels(): KernelSpec[] {
    return [this.spec("round"), this.spec("prefill")];
  }

  /** Records the prefill of `ids` at positions 0..n − 1 (a dispatch per {@linkcode FUSED_DRAFT_PREFILL_CHUNK}). */
  prefill(ids: Tensor): void {
    if (ids.dtype !== "i32") throw new ShapeError("fusedDraft.prefill", `ids must be i32, got ${ids.dtype}`);
    const n = ids.size;
    if (n === 0) return;
    if (n > this.capacity) {
      throw new ShapeError("fusedDraft.prefill", `${n} prompt tokens exceed the cache's ${this.capacity}`);
    }
    for (let first = 0; first < n; first += FUSED_DRAFT_PREFILL_CHUNK) {
      dispatch(
        this.spec("prefill"),
        [this.mats.buffer, this.vecs.buffer, this.model.rope.table.buffer, this.kv.buffer, ids.buffer],
        this.params(0, 1, false, Math.min(FUSED_DRAFT_PREFILL_CHUNK, n - first), first),
        [1],
      );
    }
  }

  /**
   * Records one greedy round: from `state` word 0 (pos, t_last's position) and `next` ((1, 2) [prev,
   * t_last], re-feeding prev at pos − 1; or (1, 1) [t_last]), writes d_1..d_K into slots 1..K of
   * `tokens` (1, K + 1). Does nothing once state word 2 (done) is set. `logits` (K, V), when given,
   * gets each proposal's logits (tests).
   */
  round(tokens: Tensor, next: Tensor, state: Tensor, K: number, logits?: Tensor): void {
    const op = "fusedDraft.round";
    if (!Number.isInteger(K) || K < 1) throw new ShapeError(op, `lookahead K must be ≥ 1, got ${K}`);
    expectShape(op, "tokens (1, K + 1)", tokens, [1, K + 1]);
    const feed = next.size;
    if (feed !== 1 && feed !== 2) throw new ShapeError(op, `next must hold 1 or 2 tokens, got ${next.size}`);
    for (const [name, t] of [["tokens", tokens], ["next", next], ["state", state]] as const) {
      if (t.dtype !== "i32") throw new ShapeError(op, `${name} must be i32, got ${t.dtype}`);
    }
    if (state.size < 3) throw new ShapeError(op, `state needs words [pos, keep, done], got ${state.size}`);
    if (logits) expectShape(op, "logits (K, V)", logits, [K, this.model.config.vocabSize]);
    dispatch(
      this.spec("round"),
      [
        this.mats.buffer,
        this.vecs.buffer,
        this.model.rope.table.buffer,
        this.kv.buffer,
        tokens.buffer,
        next.buffer,
        state.buffer,
        logits?.buffer ?? dummyBuffer(),
      ],
      this.params(K, feed, logits !== undefined, 0),
      [1],
    );
  }

  /** Bytes of packed matrices one draft step reads. */
  get stepBytes(): number {
    return this.mats.size * (this.half ? 2 : 4);
  }

  /** Frees the packed weights and the cache. */
  [Symbol.dispose](): void {
    this.mats.dispose();
    this.vecs.dispose();
    this.kv.dispose();
  }
}
