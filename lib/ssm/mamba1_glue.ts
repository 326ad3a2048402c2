/**
 * The layout steps of a MambaInLlama Mamba-1 layer (`kernels/mamba1_glue.wgsl`, method.md §3.3): the
 * projections come out channels-last (B, L, C) while the selective scan reads channels-first
 * (B, D, L), and x and B are repeated in blocks of d_state. Each step is a gather with a channel map
 * m(d) = ⌊d / (w·r)⌋·w + d mod w (blocks of w channels repeated r times; r = 1 copies), whose
 * backward sums the r copies. The plain-loop twin is {@linkcode gatherChannelsRef}.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, groupsFor, Params } from "../gpu/commands.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";

/** Where a (B, L, C) array's element (b, t, c) lives: channels-last or channels-first. */
export type ChannelLayout = "last" | "first";

/** A gather: block width w, repeat r, and the layouts of source and destination. */
export interface GatherSpec {
  /** Block width w (default 1). */
  block?: number;
  /** Copies r of each block (default 1). */
  repeat?: number;
  /** Layout of the source (default "last": (B, L, C)). */
  from?: ChannelLayout;
  /** Layout of the destination (default "first": (B, D, L)). */
  to?: ChannelLayout;
}

const FILE = "mamba1_glue.wgsl";

/** Strides (batch, time, channel) of a (B, L, C) array in a layout. */
function strides(layout: ChannelLayout, L: number, C: number): [number, number, number] {
  return layout === "last" ? [L * C, C, 1] : [C * L, 1, L];
}

/** (B, L, C) of a source tensor in its layout. */
function sizesOf(x: Tensor, layout: ChannelLayout): [number, number, number] {
  if (x.shape.length !== 3) {
    throw new ShapeError("mamba1 gather", `expected a 3-d tensor, got ${fmtShape(x.shape)}`);
  }
  const [B, a, b] = x.shape;
  return layout === "last" ? [B, a, b] : [B, b, a];
}

function launch(entry: string, src: Tensor, dst: Tensor, n: number, words: number[]): void {
  const [gx, gy] = groupsFor(n, 256);
  dispatch({ file: FILE, entry }, [src.buffer, dst.buffer], new Params().u32(n, gx * 256, ...words), [
    gx,
    gy,
  ]);
}

function check(op: string, C: number, w: number, r: number): void {
  if (!Number.isInteger(w) || !Number.isInteger(r) || w < 1 || r < 1 || C % w !== 0) {
    throw new ShapeError(op, `${C} channels do not split into blocks of ${w} (repeat ${r})`);
  }
}

/**
 * dst(b, t, d) = src(b, t, m(d)) for d < C·r: src (B, L, C) or (B, C, L), dst (B, L, C·r) or
 * (B, C·r, L) by the spec's layouts.
 */
export function gatherChannels(src: Tensor, spec: GatherSpec = {}): Tensor {
  const from = spec.from ?? "last", to = spec.to ?? "first";
  const w = spec.block ?? 1, r = spec.repeat ?? 1;
  const [B, L, C] = sizesOf(src, from);
  check("gatherChannels", C, w, r);
  const D = C * r;
  const dst = Tensor.empty(to === "last" ? [B, L, D] : [B, D, L]);
  launch("gather", src, dst, B * L * D, [L, D, w, r, ...strides(from, L, C), ...strides(to, L, D)]);
  return dst;
}

/** The gradient of {@linkcode gatherChannels}'s source for the destination's gradient g (sums the copies). */
export function gatherChannelsBackward(g: Tensor, spec: GatherSpec = {}): Tensor {
  const from = spec.from ?? "last", to = spec.to ?? "first";
  const w = spec.block ?? 1, r = spec.repeat ?? 1;
  const [B, L, D] = sizesOf(g, to);
  check("gatherChannelsBackward", D / r, w, r);
  const C = D / r;
  // The kernel writes channels-last; a channels-first source gradient takes a second, plain gather.
  const last = Tensor.empty([B, L, C]);
  launch("gather_backward", g, last, B * L * C, [L, D, w, r, 0, 0, 0, ...strides(to, L, D)]);
  if (from === "last") return last;
  const first = gatherChannels(last, { from: "last", to: "first" });
  last.dispose();
  return first;
}

/** A = −exp(A_log), element-wise (S4D-real A of shape (D, N)). */
export function negExp(aLog: Tensor): Tensor {
  const A = Tensor.empty(aLog.shape);
  launch("neg_exp", aLog, A, aLog.size, []);
  return A;
}

/** Plain-loop twin of {@linkcode gatherChannels} (float64), for sizes (B, L, C). */
export function gatherChannelsRef(
  src: ArrayLike<number>,
  sizes: { B: number; L: number; C: number },
  spec: GatherSpec = {},
): Float64Array {
  const { B, L, C } = sizes;
  const w = spec.block ?? 1, r = spec.repeat ?? 1;
  const D = C * r;
  const [sb, st, sc] = strides(spec.from ?? "last", L, C);
  const [db, dt, dc] = strides(spec.to ?? "first", L, D);
  const out = new Float64Array(B * L * D);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      for (let d = 0; d < D; d++) {
        const c = Math.floor(d / (w * r)) * w + (d % w);
        out[b * db + t * dt + d * dc] = src[b * sb + t * st + c * sc];
      }
    }
  }
  return out;
}
