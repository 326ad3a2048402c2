/**
 * MOHAWK stage 1, matrix orientation (method.md §4.2): every Mamba-2 layer ℓ of the student is fed
 * the teacher's hidden state entering ℓ (through its own input norm), and its materialised mixing
 * matrix is fitted to the teacher's attention probabilities at ℓ:
 *
 *   loss = Σ_ℓ mean_(b, h) ‖M_S(u_ℓ)[b, h] − softmax(q kᵀ/√P)[b, h]‖_F      (not squared, as the code)
 *   M_S[t, s] = (C_t·B_s) · exp(Σ_{s<r≤t} A_r) · dt_s + D_h·[t = s]        (y = M x, per head)
 *
 * The student's M comes from the same taped ops as its forward (in_proj, conv, the SSD inputs), so
 * the gradients reach in_proj, conv1d, dt_bias, A_log and D. Since X = x·dt in the SSD inputs and the
 * head dim equals the state size, feeding the inputs op B in place of x gives B_s·dt_s, the columns'
 * scale of M, in one differentiable step. Layers are independent: each term reaches one mixer.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { linear } from "../autograd/ops.ts";
import { frobeniusDistance } from "../autograd/losses.ts";
import { splitColumns, ssdInputs } from "../autograd/mamba2_ops.ts";
import { causalConv1d } from "../autograd/ssm_ops.ts";
import { ssdMixingMatrix } from "../autograd/mixing_ops.ts";
import { record } from "../autograd/tape.ts";
import type { LlamaModel } from "../models/llama.ts";
import { scatterColumns, sliceColumns } from "../ssm/mamba2_glue.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { TrainTask } from "../train/loop.ts";
import { type AlignmentTaskOptions, layerAlignmentTask } from "./tasks.ts";

/** Column blocks side by side: (…, w₀) | (…, w₁) | … → (…, Σ w); differentiable (the backward slices). */
export function concatColumns(parts: Tensor[]): Tensor {
  const widths = parts.map((p) => p.shape[p.shape.length - 1]);
  const lead = parts[0].shape.slice(0, -1);
  const cols = widths.reduce((a, b) => a + b, 0);
  const out = Tensor.empty([...lead, cols]);
  const starts = widths.map((_, k) => widths.slice(0, k).reduce((a, b) => a + b, 0));
  parts.forEach((p, k) => {
    if (p.size / widths[k] !== out.size / cols) {
      throw new ShapeError(
        "concatColumns",
        `part ${k} has ${p.size / widths[k]} rows, part 0 ${out.size / cols}`,
      );
    }
    scatterColumns(p, out, starts[k], widths[k]);
  });
  return record(parts, out, [], (g) => parts.map((_, k) => sliceColumns(g, starts[k], widths[k])));
}

/**
 * The mixing matrix M (B, H, T, T) of Mamba-2 layer `layer` of `model` on its normalised input
 * xn (B, T, d_model), differentiable with respect to the layer's parameters (and xn).
 */
export function mamba2MixingMatrix(model: LlamaModel, layer: number, xn: Tensor): Tensor {
  const w = model.layers[layer]?.mamba;
  if (!w || !model.hybrid) {
    throw new ShapeError("mamba2MixingMatrix", `layer ${layer} is not a Mamba-2 layer`);
  }
  const { dInner, dXb, nHeads: H, headDim: P, dState: N } = model.hybrid.dims;
  if (P !== N) throw new ShapeError("mamba2MixingMatrix", `head dim ${P} ≠ state size ${N} is not supported`);
  const [Bt, L] = xn.shape;
  const cxbc = 2 * dXb + dInner;
  using zxbcdt = linear(xn, w.inProj);
  const [z, xbcIn, dtRaw] = splitColumns(zxbcdt, [dInner, cxbc, H]);
  z.dispose();
  using _dt = dtRaw;
  using xbc = causalConv1d(xbcIn.view([Bt, L, cxbc]), w.convWeight, { bias: w.convBias, activation: "silu" });
  xbcIn.dispose();
  const [x, b, c] = splitColumns(xbc, [dXb, dXb, dInner]);
  x.dispose();
  // B in the x columns: the inputs op then returns X = B_g · dt, the scaled columns of M.
  using bxc = concatColumns([b, b, c]);
  b.dispose();
  c.dispose();
  const inp = ssdInputs(bxc, { dtRaw, dtBias: w.dtBias, aLog: w.aLog }, {
    H,
    Hkv: model.config.numKvHeads,
    P,
    N,
  });
  try {
    return ssdMixingMatrix({ A: inp.A, B: inp.X.view([Bt, L, H, N]), C: inp.C, D: w.D });
  } finally {
    for (const t of [inp.X, inp.A, inp.B, inp.C]) t.dispose();
  }
}

/** MOHAWK stage 1 on random windows of `ids`: only the listed Mamba-2 layers' mixers train. */
export function matrixOrientationTask(
  teacher: LlamaModel,
  student: LlamaModel,
  ids: Int32Array,
  opts: AlignmentTaskOptions,
): TrainTask {
  for (const l of opts.layers) {
    if (!student.layers[l]?.mamba) {
      throw new ShapeError("mohawk stage 1", `student layer ${l} is not Mamba-2`);
    }
  }
  if (teacher.config.numHeads !== student.config.numHeads) {
    throw new ShapeError("mohawk stage 1", "teacher and student must have the same number of heads");
  }
  return layerAlignmentTask(teacher, student, ids, opts, {
    part: "fro",
    attentions: true,
    term(l, xn, t) {
      using M = mamba2MixingMatrix(student, l, xn);
      return frobeniusDistance(M, t.attentions![l]);
    },
  });
}
