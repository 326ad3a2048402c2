// convert.wgsl — widening 16-bit checkpoint weights to f32 on the GPU.
//
//   widen_bf16: out[i] = bitcast<f32>(h_i << 16)        (bf16 is the top half of an f32)
//   widen_f16:  out[i] = unpack2x16float(word)[i mod 2]  (IEEE half)
//
// Ground truth: torch's `.float()` of a bf16 / f16 tensor (exact widening; no rounding involved).
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
