// convert.wgsl — widening 16-bit checkpoint weights to f32 on the GPU, and narrowing f32 to f16.
//
//   widen_bf16: out[i] = bitcast<f32>(h_i << 16)        (bf16 is the top half of an f32)
//   widen_f16:  out[i] = unpack2x16float(word)[i mod 2]  (IEEE half)
//   narrow_f16: word w = pack2x16float(x[2w], x[2w + 1])  (f32 → IEEE half, for f16 storage tensors)
//
// Ground truth: torch's `.float()` of a bf16 / f16 tensor (exact widening; no rounding involved), and
// torch's `.half()` for narrowing (round to nearest even; WGSL leaves the rounding direction of an inexact
// conversion to the implementation, so tests/tensor/matmul_f16_test.ts checks it on each adapter).
// Bindings: src (read) = the raw little-endian 16-bit values packed two per u32 word, element 2w in the
// low half of word w; dst (read_write) = f32 (n). One invocation owns one output element; the grid is
// 2-D when n / 256 exceeds 65535 groups (row = 65535 · 256 elements).

struct Params { n: u32, row: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn half_bits(i: u32) -> u32 {
  let w = src[i / 2u];
  return select(w & 0xffffu, w >> 16u, (i & 1u) == 1u);
}

@compute @workgroup_size(256)
fn widen_bf16(@builtin(global_invocation_id) g: vec3u) {
  let i = g.y * p.row + g.x;
  if (i >= p.n) { return; }
  dst[i] = bf16_to_f32(half_bits(i));
}

@compute @workgroup_size(256)
fn widen_f16(@builtin(global_invocation_id) g: vec3u) {
  let i = g.y * p.row + g.x;
  if (i >= p.n) { return; }
  dst[i] = unpack2x16float(half_bits(i)).x;
}

// narrow_f16: src = f32 (p.k values), dst = u32 words (p.n = ⌈k / 2⌉); one invocation owns one word, the
// last word's high half is 0 when k is odd. Its own variables on the same binding slots (other element
// types); no entry point uses both sets.
struct NarrowParams { n: u32, row: u32, k: u32 }

@group(0) @binding(0) var<uniform> q: NarrowParams;
@group(0) @binding(1) var<storage, read> nsrc: array<f32>;
@group(0) @binding(2) var<storage, read_write> ndst: array<u32>;

@compute @workgroup_size(256)
fn narrow_f16(@builtin(global_invocation_id) g: vec3u) {
  let w = g.y * q.row + g.x;
  if (w >= q.n) { return; }
  let lo = nsrc[2u * w];
  var hi = 0.0;
  if (2u * w + 1u < q.k) { hi = nsrc[2u * w + 1u]; }
  ndst[w] = pack2x16float(vec2f(lo, hi));
}
