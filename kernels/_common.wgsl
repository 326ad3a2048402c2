// _common.wgsl — helpers prepended to every kernel file by lib/gpu/pipelines.ts.
// Numerics: everything is f32; exp() arguments are kept ≤ 0 where a max was subtracted.

// softplus(x) = log(1 + e^x); the official CUDA/Triton kernels return x above 20 (e^-20 < f32 ulp of x).
fn softplus(x: f32) -> f32 {
  if (x > 20.0) { return x; }
  return log(1.0 + exp(x));
}

// silu(x) = x·σ(x), written with exp(-|x|) so that it never overflows.
fn silu(x: f32) -> f32 {
  return x * sigmoid(x);
}

fn sigmoid(x: f32) -> f32 {
  let e = exp(-abs(x));
  if (x >= 0.0) { return 1.0 / (1.0 + e); }
  return e / (1.0 + e);
}

// A bf16 value is the high half of an f32: widen by shifting its 16 bits up.
fn bf16_to_f32(bits: u32) -> f32 {
  return bitcast<f32>(bits << 16u);
}

// Large f32 sentinel used as −∞ for masked logits (exp(NEG_BIG − m) is exactly 0).
const NEG_BIG: f32 = -3.0e38;

// Workgroup reductions for kernels with @workgroup_size(256): every invocation passes its partial
// value `v` and its local index; all get the total. A tree in workgroup memory (no subgroups on
// WebGPU here). Must be called in uniform control flow.
var<workgroup> wg_red: array<f32, 256>;

fn wg_sum(li: u32, v: f32) -> f32 {
  wg_red[li] = v;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (li < k) { wg_red[li] += wg_red[li + k]; }
    workgroupBarrier();
  }
  let r = wg_red[0];
  workgroupBarrier();
  return r;
}

fn wg_max(li: u32, v: f32) -> f32 {
  wg_red[li] = v;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (li < k) { wg_red[li] = max(wg_red[li], wg_red[li + k]); }
    workgroupBarrier();
  }
  let r = wg_red[0];
  workgroupBarrier();
  return r;
}

// The decoding products' team scheme (matmul.wgsl matvec_team, split_matvec.wgsl, decode_fused.wgsl
// swiglu_matvec): a lane's two vec4 of a row at q and q + T, and their terms added into the lane's
// accumulator in that order. Every product adds through team_fma, two or four vec4 of W at a time (the
// order is the same), so all of them sum in one order.
struct Pair { a: vec4f, b: vec4f }

// A lane's sum of its accumulator, (x + y) + z + w.
fn lane_sum(v: vec4f) -> f32 {
  return v.x + v.y + v.z + v.w;
}

// Four f16 values stored as two words (lib/tensor/tensor.ts dtype "f16": element 2w in the low half of
// word w), widened exactly to f32: the weight loads of the team products' W_F16 variants.
fn half4(h: vec2<u32>) -> vec4f {
  return vec4f(unpack2x16float(h.x), unpack2x16float(h.y));
}

fn team_fma(acc: vec4f, x: Pair, w: Pair) -> vec4f {
  var s = acc;
  s += x.a * w.a;
  s += x.b * w.b;
  return s;
}


// Eight values a pass over a row loads together (v, v + s, …, v + 7s), before using any of them: a pass
// with one load in flight per invocation waits on memory once per element (sample.wgsl and
// speculative.wgsl walk rows of a 128K vocabulary with one workgroup: ~0.3 ms a pass that way).
struct Eight { a: vec4f, b: vec4f }
