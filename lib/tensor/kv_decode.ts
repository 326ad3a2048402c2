/**
 * Attention decoding with the cache length on the GPU (`kernels/kv_decode.wgsl`): a speculative round
 * loop that never reads back keeps the sequence position in a buffer, so RoPE, the KV-cache append and
 * the causal mask read it there. The dispatch sizes do not depend on the length (keys past it are
 * masked), which lets the same recorded work run every round.
 *
 *   ropeAppend:      q = R(pos) q0;  K[pos] = R(pos) k0;  V[pos] = v      for pos = pos₀ + l, l < L
 *   decodeAttention: out[l, h] = softmax_{j ≤ pos₀ + l}(q[l, h] · K[j, g] / √P) · V[·, g],  g = GQA group of h
 *
 * with pos₀ = `counts[word] + offset`. The float64 twins are `ropeRef` and `attentionRef` (ops_ref.ts).
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, groupsFor, Params } from "../gpu/commands.ts";
import type { RopeTable } from "./rope.ts";
import { expectShape, fmtShape, Tensor } from "./tensor.ts";

const FILE = "kv_decode.wgsl";

/** A sequence position on the GPU: `counts[word] + offset` (i32 `counts`). */
export interface DevicePosition {
  /** i32 buffer holding the base position. */
  counts: Tensor;
  /** Index of the base position in `counts`. */
  word: number;
  /** Added on the host side (e.g. the step within a round; may be negative). */
  offset: number;
}

function checkPosition(op: string, pos: DevicePosition): void {
  if (
    pos.counts.dtype !== "i32" || !Number.isInteger(pos.word) || pos.word < 0 || pos.word >= pos.counts.size
  ) {
    throw new ShapeError(op, `the position must be a word of an i32 buffer, got word ${pos.word}`);
  }
  if (!Number.isInteger(pos.offset)) {
    throw new ShapeError(op, `the position offset must be a whole number, got ${pos.offset}`);
  }
}

/**
 * RoPE of q0 (B, L, H_q, P) and k0 (B, L, H_kv, P) at positions pos₀ … pos₀ + L − 1, writing the rotated
 * keys and v (B, L, H_kv, P) into the caches (B, cap, H_kv, P) at those positions; returns the rotated q.
 * The caller keeps pos₀ + L ≤ cap and ≤ the table's positions (not checked: the length is on the GPU).
 */
export function ropeAppend(
  q0: Tensor,
  k0: Tensor,
  v: Tensor,
  table: RopeTable,
  cache: { k: Tensor; v: Tensor },
  pos: DevicePosition,
): Tensor {
  const op = "ropeAppend";
  if (q0.shape.length !== 4 || k0.shape.length !== 4) {
    throw new ShapeError(op, `expected q0 (B, L, H_q, P) and k0 (B, L, H_kv, P), got ${fmtShape(q0.shape)}`);
  }
  const [B, L, Hq, P] = q0.shape;
  const Hkv = k0.shape[2];
  if (P !== table.headDim) throw new ShapeError(op, `head dim ${P} ≠ the table's ${table.headDim}`);
  expectShape(op, "k0 (B, L, H_kv, P)", k0, [B, L, Hkv, P]);
  expectShape(op, "v (B, L, H_kv, P)", v, [B, L, Hkv, P]);
  if (cache.k.shape.length !== 4) throw new ShapeError(op, `expected a (B, cap, H_kv, P) cache`);
  const cap = cache.k.shape[1];
  expectShape(op, "cache k (B, cap, H_kv, P)", cache.k, [B, cap, Hkv, P]);
  expectShape(op, "cache v (B, cap, H_kv, P)", cache.v, [B, cap, Hkv, P]);
  checkPosition(op, pos);
  const q = Tensor.empty(q0.shape);
  const n = B * L * (Hq + Hkv) * (P / 2);
  const [gx, gy] = groupsFor(n, 256);
  dispatch(
    { file: FILE, entry: "rope_append" },
    [
      pos.counts.buffer,
      q0.buffer,
      k0.buffer,
      v.buffer,
      table.table.buffer,
      q.buffer,
      cache.k.buffer,
      cache.v.buffer,
    ],
    new Params().u32(n, gx * 256, L, Hq, Hkv, P, cap).i32v(pos.offset).u32(pos.word).f32v(1 / Math.sqrt(P)),
    [gx, gy],
  );
  return q;
}

/**
 * Causal GQA attention of q (B, L, H_q, P), the queries at positions pos₀ … pos₀ + L − 1, over the cache
 * (B, cap, H_kv, P) filled up to pos₀ + L (by {@linkcode ropeAppend}); returns out (B, L, H_q, P).
 */
export function decodeAttention(q: Tensor, cache: { k: Tensor; v: Tensor }, pos: DevicePosition): Tensor {
  const op = "decodeAttention";
  if (q.shape.length !== 4 || cache.k.shape.length !== 4) {
    throw new ShapeError(
      op,
      `expected q (B, L, H_q, P) and a (B, cap, H_kv, P) cache, got ${fmtShape(q.shape)}`,
    );
  }
  const [B, L, Hq, P] = q.shape;
  const [, cap, Hkv] = cache.k.shape;
  expectShape(op, "cache k (B, cap, H_kv, P)", cache.k, [B, cap, Hkv, P]);
  expectShape(op, "cache v (B, cap, H_kv, P)", cache.v, [B, cap, Hkv, P]);
  if (Hq % Hkv !== 0) throw new ShapeError(op, `H_q = ${Hq} is not a multiple of H_kv = ${Hkv}`);
  if (P > 256) throw new ShapeError(op, `head dim ${P} > 256 is not supported`);
  checkPosition(op, pos);
  const out = Tensor.empty(q.shape);
  dispatch(
    { file: FILE, entry: "attend" },
    [pos.counts.buffer, q.buffer, null, null, null, out.buffer, cache.k.buffer, cache.v.buffer],
    new Params().u32(0, 0, L, Hq, Hkv, P, cap).i32v(pos.offset).u32(pos.word).f32v(1 / Math.sqrt(P)),
    [B * L * Hq],
  );
  return out;
}
