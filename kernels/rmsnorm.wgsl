// rmsnorm.wgsl — RMSNorm over the last dimension.
//
//   y[r, :] = x[r, :] · rsqrt(mean_d x[r, d]² + ε) · w
//
// Backward (entry `backward`), with r = rsqrt(mean(x²) + ε) and g = dy · w:
//   dx = r · g − x · r³ · mean(g · x)
//   dw_rows[row, d] = dy · x · r     (summed over rows by reduce.wgsl's column sum)
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

@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw_rows: array<f32>;

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
  let inv = inverseSqrt(wg_sum(li, s) / f32(p.D) + p.eps);
  for (var d = li; d < p.D; d += 256u) {
    y[base + d] = x[base + d] * inv * w[d];
  }
}

// Bindings of `backward`: x (1), w (2), dx (3, read_write), dy (4), dw_rows (5, read_write, (R, D)).
@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.y * p.yrow + wg.x;
  if (r >= p.R) { return; }
  let base = r * p.D;
  var ss = 0.0;
  var gx = 0.0;
  for (var d = li; d < p.D; d += 256u) {
    let v = x[base + d];
    ss += v * v;
    gx += dy[base + d] * w[d] * v;
  }
  let inv = inverseSqrt(wg_sum(li, ss) / f32(p.D) + p.eps);
  let mgx = wg_sum(li, gx) / f32(p.D);
  for (var d = li; d < p.D; d += 256u) {
    let v = x[base + d];
    y[base + d] = inv * dy[base + d] * w[d] - v * inv * inv * inv * mgx;
    dw_rows[base + d] = dy[base + d] * v * inv;
  }
}
