/**
 * The LM head and its loss in chunks of rows (`kernels/lm_loss.wgsl`): next-token cross-entropy and
 * KL(teacher ‖ student) computed from final hidden states without ever holding the (R, V) logits.
 *
 * A Llama-3 vocabulary (V = 128256) at 8 × 2048 tokens has 8.4 GB of f32 logits, past WebGPU's 4 GiB
 * buffer and 2 GiB binding limits. Here, for each chunk of rows (≤ {@linkcode LM_CHUNK_BYTES} of logits):
 *
 *   s = h_chunk Wᵀ,  t = h^T_chunk W_Tᵀ                       (matmul kernel; the teacher's head too)
 *   per row: ce, kl and ∂loss/∂s (per unit of the loss's gradient), written over s  (lm_loss.wgsl rows)
 *   dh_chunk = (∂loss/∂s) W,  dW += (∂loss/∂s)ᵀ h_chunk         (matmul kernel)
 *
 * loss = w_ce · mean CE + w_kl · Σ_r KL_r / d (d = B for MambaInLlama's `batchmean`, R for a token mean).
 * Because the gradient with respect to the logits depends on the loss's gradient g only through a
 * scale, it is computed during the forward (as Liger-Kernel's fused linear cross-entropy does) and the
 * backward multiplies dh and dW by g: no logits are recomputed, the chunk buffers are reused.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dummyBuffer } from "../gpu/buffers.ts";
import { dispatch, groupsFor, Params } from "../gpu/commands.ts";
import { gpu } from "../gpu/device.ts";
import { copyElements } from "../tensor/copy.ts";
import { rowGrid } from "../tensor/launch.ts";
import { matmulStrided, type Weight } from "../tensor/matmul.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";
import type { Reduction } from "./losses.ts";
import { needsGrad, record } from "./tape.ts";

const FILE = "lm_loss.wgsl";

/** Default bytes of one chunk of logits (each of the student's and the teacher's). */
export const LM_CHUNK_BYTES = 256 * 2 ** 20;

/** Options of {@linkcode lmHeadLoss}. */
export interface LmHeadLossOptions {
  /** Next tokens (R) i32; rows whose target is `ignoreIndex` (or out of range) have no CE. */
  targets: Tensor;
  /** Weight of the mean cross-entropy (default 1). */
  ceWeight?: number;
  /** The teacher's final (normalised) hidden states (R, D_T) and LM head (V, D_T), for the KL term. */
  teacher?: { hidden: Tensor; head: Weight };
  /** Weight of KL(teacher ‖ student) (default 0; needs `teacher`). */
  klWeight?: number;
  /** KL over rows: token mean (default) or a sum over all rows ÷ a fixed divisor (batchmean: ÷ B). */
  klReduction?: Reduction;
  /** Softmax temperature of the KL's two distributions (default 1; the CE always uses τ = 1). */
  temperature?: number;
  /** Default −100. */
  ignoreIndex?: number;
  /** Rows per chunk (default: as many as fit {@linkcode LM_CHUNK_BYTES} of logits, and one binding). */
  chunkRows?: number;
}

/** What {@linkcode lmHeadLoss} returns: the loss (differentiable) and its parts (not). Each (1). */
export interface LmHeadLoss {
  /** w_ce · ce + w_kl · kl. */
  loss: Tensor;
  /** Mean cross-entropy over valid rows. */
  ce: Tensor;
  /** The reduced KL (0 without a teacher). */
  kl: Tensor;
}

/** Rows per chunk for a vocabulary of V: the most whose f32 logits fit `bytes` (at least 1). */
export function lmChunkRows(V: number, bytes = LM_CHUNK_BYTES): number {
  return Math.max(1, Math.floor(bytes / (V * 4)));
}

/** logits (rows, V) of rows [r0, r0 + rows) of x (R, D) through a head (V, D) split in row blocks. */
function chunkLogits(x: Tensor, r0: number, rows: number, head: Weight): Tensor {
  const [V, D] = head.shape;
  const out = Tensor.empty([rows, V]);
  let col = 0;
  for (const part of head.parts) {
    matmulStrided({
      M: rows,
      N: part.shape[0],
      K: D,
      a: { t: x, offset: r0 * D, rowStride: D, colStride: 1 },
      b: { t: part, rowStride: 1, colStride: D },
      c: { t: out, offset: col, rowStride: V, colStride: 1 },
    });
    col += part.shape[0];
  }
  return out;
}

/** y = x · g[0] (g a (1) tensor on the GPU). */
function scaleBy(x: Tensor, g: Tensor): Tensor {
  const y = Tensor.empty(x.shape);
  const [gx, gy] = groupsFor(x.size, 256);
  dispatch(
    { file: FILE, entry: "scale_by" },
    [x.buffer, null, null, y.buffer, null, g.buffer],
    new Params().u32(x.size, gx * 256, 0, 0, 0, 0, 0).i32v(0).f32v(1, 0, 0, 0),
    [gx, gy],
  );
  return y;
}

/**
 * w_ce · CE(h Wᵀ, targets) + w_kl · KL(softmax(t/τ) ‖ softmax(h Wᵀ/τ)) for final hidden states h
 * (…, D) and an LM head W (V, D), in chunks of rows (see the module comment). Gradients flow to h and
 * to W (W must then be one block); the teacher's tensors get none.
 */
export function lmHeadLoss(hidden: Tensor, head: Weight, opts: LmHeadLossOptions): LmHeadLoss {
  const [V, D] = head.shape;
  if (hidden.shape[hidden.shape.length - 1] !== D) {
    throw new ShapeError(
      "lmHeadLoss",
      `hidden ${fmtShape(hidden.shape)} does not fit head ${fmtShape(head.shape)}`,
    );
  }
  const R = hidden.size / D;
  const { targets } = opts;
  if (targets.size !== R || targets.dtype !== "i32") {
    throw new ShapeError("lmHeadLoss", `targets ${fmtShape(targets.shape)} (${targets.dtype}) for ${R} rows`);
  }
  const teacher = opts.teacher;
  const wKl = opts.klWeight ?? 0;
  if (wKl !== 0 && !teacher) {
    throw new ShapeError("lmHeadLoss", "a KL term needs the teacher's hidden states");
  }
  if (teacher) {
    const [VT, DT] = teacher.head.shape;
    if (VT !== V || teacher.hidden.size !== R * DT) {
      throw new ShapeError(
        "lmHeadLoss",
        `teacher hidden ${fmtShape(teacher.hidden.shape)} / head ${
          fmtShape(teacher.head.shape)
        } do not match ${R} rows of vocabulary ${V}`,
      );
    }
  }
  const wCe = opts.ceWeight ?? 1;
  const reduction = opts.klReduction ?? { kind: "mean" };
  const div = reduction.kind === "sum-over" ? reduction.divisor : 0;
  const invTau = 1 / (opts.temperature ?? 1);
  const ignore = opts.ignoreIndex ?? -100;
  const hasTeacher = teacher && wKl !== 0 ? 1 : 0;
  const chunk = Math.min(
    R,
    opts.chunkRows ?? lmChunkRows(V, Math.min(LM_CHUNK_BYTES, gpu().maxBindingBytes)),
  );
  if (chunk * V * 4 > gpu().maxBindingBytes) {
    throw new ShapeError("lmHeadLoss", `${chunk} rows of ${V} logits exceed one binding`);
  }
  const W = head.parts.length === 1 ? head.parts[0] : null;
  const gradH = needsGrad(hidden);
  const gradW = needsGrad(...head.parts);
  if (gradW && !W) throw new ShapeError("lmHeadLoss", "a head split into blocks cannot be trained");
  const grad = gradH || gradW;
  const params = (rows: number, r0: number) => {
    const { yrow } = rowGrid(rows);
    return new Params().u32(rows, V, yrow, r0, R, hasTeacher, grad ? 1 : 0).i32v(ignore).f32v(
      invTau,
      wCe,
      wKl,
      div,
    );
  };
  const stats = Tensor.empty([5]); // (loss, ce, kl, n, d)
  using perRow = Tensor.empty([2 * R]); // ce rows | kl rows
  dispatch({ file: FILE, entry: "count" }, [null, null, targets.buffer, null, stats.buffer], params(0, 0), [
    1,
  ]);
  const dh = gradH ? Tensor.empty(hidden.shape) : null;
  const dW = gradW ? Tensor.empty([V, D]) : null;
  for (let r0 = 0; r0 < R; r0 += chunk) {
    const rows = Math.min(chunk, R - r0);
    using s = chunkLogits(hidden, r0, rows, head);
    const t = hasTeacher ? chunkLogits(teacher!.hidden, r0, rows, teacher!.head) : null;
    dispatch(
      { file: FILE, entry: "rows" },
      [s.buffer, t?.buffer ?? dummyBuffer(), targets.buffer, perRow.buffer, stats.buffer],
      params(rows, r0),
      rowGrid(rows).groups,
    );
    t?.dispose();
    // s now holds ∂loss/∂s for these rows (per unit of the loss's gradient).
    if (dh) {
      let col = 0;
      head.parts.forEach((part, k) => {
        matmulStrided({
          M: rows,
          N: D,
          K: part.shape[0],
          a: { t: s, offset: col, rowStride: V, colStride: 1 },
          b: { t: part, rowStride: D, colStride: 1 },
          c: { t: dh, offset: r0 * D, rowStride: D, colStride: 1 },
          accumulate: k > 0,
        });
        col += part.shape[0];
      });
    }
    if (dW) {
      matmulStrided({
        M: V,
        N: D,
        K: rows,
        a: { t: s, rowStride: 1, colStride: V },
        b: { t: hidden, offset: r0 * D, rowStride: D, colStride: 1 },
        c: { t: dW, rowStride: D, colStride: 1 },
        accumulate: r0 > 0,
      });
    }
  }
  dispatch({ file: FILE, entry: "finish" }, [null, null, null, perRow.buffer, stats.buffer], params(0, 0), [
    1,
  ]);
  const part = (i: number) => {
    const x = Tensor.empty([1]);
    copyElements(stats, i, x, 0, 1);
    return x;
  };
  const loss = part(0);
  const ce = part(1);
  const kl = part(2);
  stats.dispose();
  const saved = [dh, dW].filter((x): x is Tensor => x !== null);
  const out = record([hidden, W], loss, saved, (g, sv) => {
    const [dhs, dWs] = dh ? [sv[0], sv[1]] : [undefined, sv[0]];
    return [dhs && scaleBy(dhs, g), dWs && scaleBy(dWs, g)];
  });
  dh?.dispose();
  dW?.dispose();
  return { loss: out, ce, kl };
}
