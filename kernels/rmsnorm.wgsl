// rmsnorm.wgsl — RMSNorm over the last dimension.
//
//   y[r, :] = x[r, :] · rsqrt(mean_d x[r, d]² + ε) · w
//
// Ground truth: LlamaRMSNorm (transformers), computed in f32 (ε inside the square root).
// Bindings: x (read, (R, D)), w (read, (D)), y (read_write, (R, D)).
// One workgroup of 256 owns one row r: each invocation sums the squares of a strided slice, then a
// tree reduction in workgroup memory (no subgroups on WebGPU here). Rows beyond 65535 use grid y.

struct Params { R: u32, D: u32, eps: f32, yrow: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.y * p.yrow + wg.x;
  if (r >= p.R) { return; }
  let base = r * p.D;
  var s = 0.0;
  for (var d = li; d < p.D; d += 256u) {
    let v = x[base + d];
    s += v * v;
  }
  part[li] = s;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (li < k) { part[li] += part[li + k]; }
    workgroupBarrier();
  }
  let inv = inverseSqrt(part[0] / f32(p.D) + p.eps);
  for (var d = li; d < p.D; d += 256u) {
    y[base + d] = x[base + d] * inv * w[d];
  }
}
