// kv_decode.wgsl — attention decoding with the position on the GPU (speculative rounds that never read
// back, method.md §3.9): the cache length is a word of a buffer a kernel wrote, not a host number, so
// the same recorded work serves every round.
//
// With pos₀ = counts[word] + offset (the cache's filled length before these L tokens; offset may be
// negative, e.g. a draft one token behind the position word):
//
//   rope_append:  for l < L, pos = pos₀ + l, the rotate_half RoPE of rope.wgsl
//                   q[b, l, h]           = R(pos) q0[b, l, h]
//                   cacheK[b, pos, g]    = R(pos) k0[b, l, g]
//                   cacheV[b, pos, g]    = v[b, l, g]
//   attend:       out[b, l, h] = Σ_{j ≤ pos₀ + l} softmax_j(q[b, l, h] · cacheK[b, j, g] · scale) cacheV[b, j, g]
//                 with g = ⌊h / (H_q / H_kv)⌋ (GQA); keys past pos₀ + l are masked (causal, and past the
//                 valid length), so the dispatch size does not depend on the length.
//
// Ground truth: rope.wgsl + attention.ts (LlamaAttention's eager path) on a cache of length pos₀ + L;
// `ropeRef` and `attentionRef` in lib/tensor/ops_ref.ts are the float64 twins the tests compare with.
// Shapes: q0, q (B, L, H_q, P); k0, v (B, L, H_kv, P); caches (B, cap, H_kv, P); table (maxPos, P) with
// the cos half then the sin half per row. rope_append: one invocation per pair (b, l, head, i) over the
// H_q query heads then the H_kv key heads. attend: one workgroup of 256 per (b, l, h), P ≤ 256; scores
// in two passes (the max, then exp-sums with V accumulated tile by tile of 256 keys, by 256 / P groups
// of P invocations).

struct Params {
  n: u32, row: u32, L: u32, Hq: u32, Hkv: u32, P: u32, cap: u32, offset: i32, word: u32, scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> counts: array<i32>;
@group(0) @binding(2) var<storage, read> q_in: array<f32>;       // rope_append: q0; attend: q
@group(0) @binding(3) var<storage, read> k_in: array<f32>;       // rope_append: k0
@group(0) @binding(4) var<storage, read> v_in: array<f32>;       // rope_append: v
@group(0) @binding(5) var<storage, read> table: array<f32>;      // rope_append: cos/sin
@group(0) @binding(6) var<storage, read_write> q_out: array<f32>; // rope_append: q; attend: out
@group(0) @binding(7) var<storage, read_write> cache_k: array<f32>;
@group(0) @binding(8) var<storage, read_write> cache_v: array<f32>;

fn pos0() -> u32 {
  return u32(max(counts[p.word] + p.offset, 0));
}

@compute @workgroup_size(256)
fn rope_append(@builtin(global_invocation_id) g: vec3u) {
  let idx = g.y * p.row + g.x; // over (B, L, H_q + H_kv, P/2)
  if (idx >= p.n) { return; }
  let half = p.P / 2u;
  let heads = p.Hq + p.Hkv;
  let i = idx % half;
  let hh = (idx / half) % heads;
  let bl = idx / (half * heads); // b · L + l
  let l = bl % p.L;
  let b = bl / p.L;
  let pos = pos0() + l;
  let c = table[pos * p.P + i];
  let s = table[pos * p.P + half + i];
  if (hh < p.Hq) {
    let base = (bl * p.Hq + hh) * p.P;
    let x1 = q_in[base + i];
    let x2 = q_in[base + half + i];
    q_out[base + i] = x1 * c - x2 * s;
    q_out[base + half + i] = x2 * c + x1 * s;
  } else {
    let kh = hh - p.Hq;
    let src = (bl * p.Hkv + kh) * p.P;
    let dst = ((b * p.cap + pos) * p.Hkv + kh) * p.P;
    let x1 = k_in[src + i];
    let x2 = k_in[src + half + i];
    cache_k[dst + i] = x1 * c - x2 * s;
    cache_k[dst + half + i] = x2 * c + x1 * s;
    cache_v[dst + i] = v_in[src + i];
    cache_v[dst + half + i] = v_in[src + half + i];
  }
}

var<workgroup> qs: array<f32, 256>;
var<workgroup> tile: array<f32, 256>;
var<workgroup> wlen: u32;

fn score(kbase: u32, j: u32, kstride: u32) -> f32 {
  var d = 0.0;
  for (var e = 0u; e < p.P; e++) { d += qs[e] * cache_k[kbase + j * kstride + e]; }
  return d * p.scale;
}

@compute @workgroup_size(256)
fn attend(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.x; // (b, l, h) flattened
  let h = r % p.Hq;
  let bl = r / p.Hq;
  let l = bl % p.L;
  let b = bl / p.L;
  let kv = h / (p.Hq / p.Hkv);
  if (li < p.P) { qs[li] = q_in[r * p.P + li]; }
  if (li == 0u) { wlen = min(pos0() + l + 1u, p.cap); }
  let len = workgroupUniformLoad(&wlen); // also a barrier: qs is complete
  let kbase = (b * p.cap * p.Hkv + kv) * p.P;
  let kstride = p.Hkv * p.P;
  var m = NEG_BIG;
  for (var j = li; j < len; j += 256u) { m = max(m, score(kbase, j, kstride)); }
  m = wg_max(li, m);
  // V is accumulated by ⌊256 / P⌋ groups of P invocations: group g, dimension e = li mod P takes keys
  // jj ≡ g (mod groups) of each tile (consecutive invocations read consecutive e of a row), and the
  // groups' sums are added in group order at the end; one invocation per dimension walking every key
  // made a 260-token cache a chain of 260 dependent loads.
  let groups = 256u / p.P;
  let e_dim = li % p.P;
  let g = li / p.P;
  var z = 0.0;
  var acc = 0.0;
  for (var t0 = 0u; t0 < len; t0 += 256u) {
    let j = t0 + li;
    var e = 0.0;
    if (j < len) { e = exp(score(kbase, j, kstride) - m); }
    z += e;
    tile[li] = e;
    workgroupBarrier();
    if (g < groups) {
      let n = min(256u, len - t0);
      for (var jj = g; jj < n; jj += groups) { acc += tile[jj] * cache_v[kbase + (t0 + jj) * kstride + e_dim]; }
    }
    workgroupBarrier();
  }
  z = wg_sum(li, z);
  tile[li] = acc;
  workgroupBarrier();
  if (li < p.P) {
    var s = tile[li];
    for (var k = 1u; k < groups; k++) { s += tile[k * p.P + li]; }
    q_out[r * p.P + li] = s / z;
  }
}
