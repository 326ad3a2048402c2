// decode_fused.wgsl — small kernels fused for one-token decoding steps, where a step's time is the
// number of dispatches rather than arithmetic (speculative rounds replayed on the GPU, issue #7).
//
//   swiglu_matvec:  y[m, n] = silu(Σ_k x[m, k] · Wg[n, k]) · (Σ_k x[m, k] · Wu[n, k])
//                   (LlamaMLP's silu(gate(x)) · up(x): two products and the SwiGLU in one dispatch)
//   add_rmsnorm:    s[r, :] = a[r, :] + b[r, :];  y[r, :] = s[r, :] · rsqrt(mean_d s[r, d]² + ε) · w
//                   (a residual connection and the next RMSNorm in one dispatch; last = 1 writes y only
//                   for the last of every L rows, at r / L)
//
// Ground truth: matmul.wgsl `matvec_team` twice, then elementwise.wgsl `swiglu` (the same sums in the
// same order); elementwise.wgsl `add` then rmsnorm.wgsl (the same reduction). The
// float64 twins: `swigluRef` of the two products, `rmsNormRef` of the sum (ops_ref.ts).
// Shapes: x (M, K), Wg and Wu (N, K) in the checkpoint's (out, in) layout, y (M, N); a team of 16
// invocations owns one output y(m, n) (grid: N / 16, M); M is small (decoding: 1 to K + 1 rows). add_rmsnorm: a, b, s, y (R, D), w (D); one
// workgroup of 256 owns one row (M = R, N = D, eps in the last word).

struct Params { M: u32, N: u32, K: u32, eps: f32, L: u32, last: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // add_rmsnorm: a
@group(0) @binding(2) var<storage, read> wg: array<f32>;       // add_rmsnorm: b
@group(0) @binding(3) var<storage, read> wu: array<f32>;       // add_rmsnorm: w
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> sum: array<f32>; // add_rmsnorm: s

// swiglu_matvec: a team of 16 invocations per output y(m, n), 16 outputs per workgroup of 256, both
// products summed in matmul.wgsl matvec_team's order (lane j: k = 64i + 16c + j into accumulator c; lane
// 0 adds the lanes in lane order), so the values equal `matvec_team` twice, then `swiglu`, bit for bit.
const TEAM: u32 = 16u;
var<workgroup> gate_sums: array<f32, 256>;
var<workgroup> up_sums: array<f32, 256>;

fn x_at(xr: u32, k: u32) -> f32 {
  if (k >= p.K) { return 0.0; }
  return x[xr + k];
}

fn w_at(w: u32, k: u32, up: bool) -> f32 {
  if (k >= p.K) { return 0.0; }
  if (up) { return wu[w + k]; }
  return wg[w + k];
}

@compute @workgroup_size(256)
fn swiglu_matvec(@builtin(workgroup_id) wgid: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % TEAM;
  let n = wgid.x * (256u / TEAM) + li / TEAM;
  let m = wgid.y;
  let xr = m * p.K;
  let wr = min(n, p.N - 1u) * p.K;  // past the last column: row N − 1, nothing stored
  var ag = vec4f(0.0);
  var au = vec4f(0.0);
  for (var k0 = lane; k0 < p.K; k0 += 4u * TEAM) {
    let xv = vec4f(x_at(xr, k0), x_at(xr, k0 + TEAM), x_at(xr, k0 + 2u * TEAM), x_at(xr, k0 + 3u * TEAM));
    ag += xv * vec4f(w_at(wr, k0, false), w_at(wr, k0 + TEAM, false), w_at(wr, k0 + 2u * TEAM, false),
                     w_at(wr, k0 + 3u * TEAM, false));
    au += xv * vec4f(w_at(wr, k0, true), w_at(wr, k0 + TEAM, true), w_at(wr, k0 + 2u * TEAM, true),
                     w_at(wr, k0 + 3u * TEAM, true));
  }
  gate_sums[li] = ag.x + ag.y + ag.z + ag.w;
  up_sums[li] = au.x + au.y + au.z + au.w;
  workgroupBarrier();
  if (lane == 0u && n < p.N) {
    var g = gate_sums[li];
    var u = up_sums[li];
    for (var t = 1u; t < TEAM; t++) {
      g += gate_sums[li + t];
      u += up_sums[li + t];
    }
    y[m * p.N + n] = silu(g) * u;
  }
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
