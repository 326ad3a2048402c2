/**
 * Attention → Mamba-1 weight transfer, as MambaInLlama's `mamba/hybrid_wrapper.py` with
 * `init_with_kqvo=True` (method.md §3.3), on host arrays. Tensor names are those of its
 * `mamba/hybrid_mamba_layer.py` (`model.layers.{i}.mamba.*`):
 *
 *   in_proj_x (d_xb, d_model) ← v_proj     B_proj (d_xb, d_model) ← k_proj
 *   C_proj (d_inner, d_model) ← q_proj     out_proj (d_model, d_inner) ← o_proj
 *   in_proj_z (d_inner, d_model), dt_proj_down (dt_rank, d_model): PyTorch's Linear default U(±1/√d_model)
 *   dt_proj (d_inner, dt_rank): U(±dt_rank^-½);  dt_proj.bias = softplus⁻¹(dt), dt log-uniform in
 *     [1e-3, 0.1] floored at 1e-4
 *   conv1d (d_inner, 1, 4) + bias over the repeated x: PyTorch's Conv1d default U(±1/√4)
 *   A_log (d_inner, N) = log(n + 1) (S4D-real, A = −[1 … N] per channel);  D (d_inner) = 1
 *
 * The layer cuts x, B and C into blocks of N = d_state rows (16 by default): B and x have d_xb / N
 * blocks, each repeated r = d_inner / d_xb times, so C group j (channels jN … jN + N − 1) reads the
 * k and v block ⌊j/r⌋ (method.md §3.3). With the reference's `blocks: "reference"`, C group j holds
 * q block j: the kv head is right, but for N < head_dim the 16-wide sub-blocks of q and k it pairs do
 * not match. `blocks: "heads"` permutes the C rows (and the out_proj columns with them) so that every
 * group pairs sub-block m of query head h with sub-block m of its kv head ⌊h/r⌋ and writes the
 * o_proj columns of (h, m): the reference's forward and layout, only the rows placed differently.
 * With N = head_dim both are the same, and each channel's q·k is the full head dot product.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { LlamaConfig } from "../io/config.ts";
import type { HostTensor } from "../io/safetensors.ts";
import type { Rng } from "../random.ts";
import { type AttentionHost, inverseSoftplus } from "./convert_mamba2.ts";

/** The dimensions of a converted Mamba-1 layer. */
export interface Mamba1Dims {
  dModel: number;
  /** Channels of the scan (= H_q·head_dim). */
  dInner: number;
  /** Width of x and B before the repeat (= H_kv·head_dim). */
  dXb: number;
  /** State size N per channel; also the block width of B, C and x. */
  dState: number;
  /** Rank of the low-rank time step. */
  dtRank: number;
  convWidth: number;
}

/** Which q blocks the C groups hold: the reference's order, or aligned with the heads. */
export type Mamba1Blocks = "reference" | "heads";

/** How new Mamba-1 parameters start: from attention (the reference, default) or all random. */
export type Mamba1Init = "attention" | "random";

/** Dimensions derived from the teacher's config (MambaInLlama: expand 1, d_state 16, dt_rank ⌈d/16⌉). */
export function mamba1Dims(c: LlamaConfig, dState = 16): Mamba1Dims {
  const d: Mamba1Dims = {
    dModel: c.hiddenSize,
    dInner: c.numHeads * c.headDim,
    dXb: c.numKvHeads * c.headDim,
    dState,
    dtRank: Math.ceil(c.hiddenSize / 16),
    convWidth: 4,
  };
  checkMamba1Dims(d);
  return d;
}

/** Throws UsageError unless N divides d_xb and d_inner and d_xb divides d_inner. */
export function checkMamba1Dims(d: Mamba1Dims): void {
  const bad = (what: string) => {
    throw new UsageError("Mamba-1 layer", what);
  };
  if (!Number.isInteger(d.dState) || d.dState < 1 || d.dState > 64) {
    bad(`d_state ${d.dState} is outside 1 … 64`);
  }
  if (d.dXb % d.dState !== 0) bad(`d_xb ${d.dXb} is not a multiple of d_state ${d.dState}`);
  if (d.dInner % d.dXb !== 0) bad(`d_inner ${d.dInner} is not a multiple of d_xb ${d.dXb}`);
}

/** Where C group j's rows come from: the q, k and v blocks (of N rows) it reads. */
export interface BlockSource {
  /** C group (= block of N channels of the scan). */
  group: number;
  /** q block (rows qBlock·N …) placed in C_proj rows j·N …, and the o_proj column block of out_proj's. */
  qBlock: number;
  /** k block read by B group j after the repeat (= v block read by channels j·N …). */
  kvBlock: number;
}

/**
 * For each C group j, the q block it holds and the k / v block it pairs with (method.md §3.3):
 * kvBlock = ⌊j/r⌋ always; qBlock = j for "reference", and for "heads", with S = head_dim / N
 * sub-blocks per head, b = ⌊j/r⌋, kv head g = ⌊b/S⌋, sub-block m = b mod S, query head
 * h = g·r + (j mod r): qBlock = h·S + m.
 */
export function mamba1BlockSources(d: Mamba1Dims, headDim: number, blocks: Mamba1Blocks): BlockSource[] {
  const r = d.dInner / d.dXb;
  const N = d.dState;
  if (blocks === "heads" && headDim % N !== 0) {
    throw new UsageError(
      "Mamba-1 head-aligned blocks",
      `head_dim ${headDim} is not a multiple of d_state ${N}`,
    );
  }
  const S = headDim / N;
  return Array.from({ length: d.dInner / N }, (_, j) => {
    const b = Math.floor(j / r);
    if (blocks === "reference") return { group: j, qBlock: j, kvBlock: b };
    const g = Math.floor(b / S);
    const h = g * r + (j % r);
    return { group: j, qBlock: h * S + (b % S), kvBlock: b };
  });
}

/** Options of {@linkcode convertAttentionToMamba1}. */
export interface Mamba1ConvertOptions {
  init?: Mamba1Init;
  blocks?: Mamba1Blocks;
  /** The teacher's head dim (needed for "heads"). */
  headDim: number;
}

/** The converted layer's `mamba.*` tensors (names without the `model.layers.{i}.mamba.` prefix). */
export function convertAttentionToMamba1(
  att: AttentionHost,
  d: Mamba1Dims,
  rng: Rng,
  opts: Mamba1ConvertOptions,
): Record<string, HostTensor> {
  const { dModel, dInner, dXb, dState: N, dtRank, convWidth } = d;
  const init = opts.init ?? "attention";
  const uniform = (n: number, bound: number) =>
    Float32Array.from({ length: n }, () => rng.uniformRange(-bound, bound));
  // New parameters, drawn in the same order for every init.
  const inProjZ = uniform(dInner * dModel, 1 / Math.sqrt(dModel));
  const dtDown = uniform(dtRank * dModel, 1 / Math.sqrt(dModel));
  const dtProj = uniform(dInner * dtRank, dtRank ** -0.5);
  const dtBias = Float32Array.from({ length: dInner }, () => {
    const dt = Math.max(Math.exp(rng.uniformRange(Math.log(1e-3), Math.log(0.1))), 1e-4);
    return inverseSoftplus(dt);
  });
  const convBound = 1 / Math.sqrt(convWidth);
  const convWeight = uniform(dInner * convWidth, convBound);
  const convBias = uniform(dInner, convBound);
  const aLog = Float32Array.from({ length: dInner * N }, (_, i) => Math.log((i % N) + 1));
  let x: Float32Array, B: Float32Array, C: Float32Array, out: Float32Array;
  if (init === "random") {
    x = uniform(dXb * dModel, 1 / Math.sqrt(dModel));
    B = uniform(dXb * dModel, 1 / Math.sqrt(dModel));
    C = uniform(dInner * dModel, 1 / Math.sqrt(dModel));
    out = uniform(dModel * dInner, 1 / Math.sqrt(dInner));
  } else {
    x = Float32Array.from(att.v);
    B = Float32Array.from(att.k);
    C = new Float32Array(dInner * dModel);
    out = new Float32Array(dModel * dInner);
    for (const s of mamba1BlockSources(d, opts.headDim, opts.blocks ?? "reference")) {
      // C_proj rows jN … jN + N − 1 ← q rows qBlock·N …; out_proj columns likewise ← o_proj's.
      C.set(att.q.subarray(s.qBlock * N * dModel, (s.qBlock + 1) * N * dModel), s.group * N * dModel);
      for (let row = 0; row < dModel; row++) {
        const from = row * dInner + s.qBlock * N;
        out.set(att.o.subarray(from, from + N), row * dInner + s.group * N);
      }
    }
  }
  const f32 = (shape: number[], data: Float32Array): HostTensor => ({ dtype: "F32", shape, data });
  return {
    "in_proj_x.weight": f32([dXb, dModel], x),
    "in_proj_z.weight": f32([dInner, dModel], inProjZ),
    "conv1d.weight": f32([dInner, 1, convWidth], convWeight),
    "conv1d.bias": f32([dInner], convBias),
    "B_proj.weight": f32([dXb, dModel], B),
    "C_proj.weight": f32([dInner, dModel], C),
    "dt_proj_down.weight": f32([dtRank, dModel], dtDown),
    "dt_proj.weight": f32([dInner, dtRank], dtProj),
    "dt_proj.bias": f32([dInner], dtBias),
    "A_log": f32([dInner, N], aLog),
    "D": f32([dInner], new Float32Array(dInner).fill(1)),
    "out_proj.weight": f32([dModel, dInner], out),
  };
}
