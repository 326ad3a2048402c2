// decode_fused.wgsl — small kernels fused for one-token decoding steps, where a step's time is the
// number of dispatches rather than arithmetic (speculative rounds replayed on the GPU, issue #7).
//
//   swiglu_matvec:  y[m, n] = silu(Σ_k x[m, k] · Wg[n, k]) · (Σ_k x[m, k] · Wu[n, k])
//                   (LlamaMLP's silu(gate(x)) · up(x): two products and the SwiGLU in one dispatch)
//   add_rmsnorm:    s[r, :] = a[r, :] + b[r, :];  y[r, :] = s[r, :] · rsqrt(mean_d s[r, d]² + ε) · w
//                   (a residual connection and the next RMSNorm in one dispatch; last = 1 writes y only
//                   for the last of every L rows, at r / L)
//
// Ground truth: matmul.wgsl `matvec` twice, then elementwise.wgsl `swiglu` (the same sums in the same
// order, four accumulators deep); elementwise.wgsl `add` then rmsnorm.wgsl (the same reduction). The
// float64 twins: `swigluRef` of the two products, `rmsNormRef` of the sum (ops_ref.ts).
// Shapes: x (M, K), Wg and Wu (N, K) in the checkpoint's (out, in) layout, y (M, N); one invocation owns
// one output y(m, n); M is small (decoding: 1 to K + 1 rows). add_rmsnorm: a, b, s, y (R, D), w (D); one
// workgroup of 256 owns one row (M = R, N = D, eps in the last word).

struct Params { M: u32, N: u32, K: u32, eps: f32, L: u32, last: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // add_rmsnorm: a
@group(0) @binding(2) var<storage, read> wg: array<f32>;       // add_rmsnorm: b
@group(0) @binding(3) var<storage, read> wu: array<f32>;       // add_rmsnorm: w
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> sum: array<f32>; // add_rmsnorm: s

@compute @workgroup_size(64)
fn swiglu_matvec(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  let m = gid.y;
  if (n >= p.N || m >= p.M) { return; }
  let xr = m * p.K;
  let wr = n * p.K;
  var ag = vec4f(0.0);
  var au = vec4f(0.0);
  var k = 0u;
  for (; k + 4u <= p.K; k += 4u) {
    let xv = vec4f(x[xr + k], x[xr + k + 1u], x[xr + k + 2u], x[xr + k + 3u]);
    ag += xv * vec4f(wg[wr + k], wg[wr + k + 1u], wg[wr + k + 2u], wg[wr + k + 3u]);
    au += xv * vec4f(wu[wr + k], wu[wr + k + 1u], wu[wr + k + 2u], wu[wr + k + 3u]);
  }
  var g = ag.x + ag.y + ag.z + ag.w;
  var u = au.x + au.y + au.z + au.w;
  for (; k < p.K; k++) {
    g += x[xr + k] * wg[wr + k];
    u += x[xr + k] * wu[wr + k];
  }
  y[m * p.N + n] = silu(g) * u;
}

@compute @workgroup_size(256)
fn add_rmsnorm(@builtin(workgroup_id) wgid: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wgid.x;
  if (r >= p.M) { return; }
  let base = r * p.N;
  var ss = 0.0;
  for (var d = li; d < p.N; d += 256u) {
    let v = x[base + d] + wg[base + d];
    sum[base + d] = v;
    ss += v * v;
  }
  let inv = inverseSqrt(wg_sum(li, ss) / f32(p.N) + p.eps);
  // last = 1: y only for the last of every L rows, at row r / L (a decoder's final norm, lastOnly).
  if (p.last != 0u && r % p.L != p.L - 1u) { return; }
  let yb = select(r, r / p.L, p.last != 0u) * p.N;
  for (var d = li; d < p.N; d += 256u) {
    y[yb + d] = (x[base + d] + wg[base + d]) * inv * wu[d];
  }
}
