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
// invocations owns the outputs y(m, n) of one column for up to 3 rows (grid: ⌈M / MR⌉, N / 16); M is
// small (decoding: 1 to K + 1 rows).
// add_rmsnorm: a, b, s, y (R, D), w (D); one workgroup of 256 owns one row (M = R, N = D, eps in the
// last word).

struct Params { M: u32, N: u32, K: u32, eps: f32, L: u32, last: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // add_rmsnorm: a
@group(0) @binding(2) var<storage, read> wg: array<f32>;       // add_rmsnorm: b
@group(0) @binding(3) var<storage, read> wu: array<f32>;       // add_rmsnorm: w
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> sum: array<f32>; // add_rmsnorm: s

// swiglu_matvec: a team of 16 invocations per output column n, 16 columns per workgroup of 256, for the
// MR rows m0 … m0+MR−1 of the workgroup (override MR ≤ 3; grid x over ⌈M / MR⌉): each load of W_g and
// W_u serves all MR rows. Both products are summed in matmul.wgsl matvec_team's order (lane j: k = 64i
// + 16c + j into accumulator c of row m; lane r adds row r over the lanes in lane order), so the values
// equal `matvec_team` twice, then `swiglu`, bit for bit, for any MR.
const TEAM: u32 = 16u;
override MR: u32 = 1u;
var<workgroup> gate_sums: array<f32, 768>;  // (row r < MR, invocation)
var<workgroup> up_sums: array<f32, 768>;

fn x_at(xr: u32, k: u32) -> f32 {
  if (k >= p.K) { return 0.0; }
  return x[xr + k];
}

fn w_at(w: u32, k: u32, up: bool) -> f32 {
  if (k >= p.K) { return 0.0; }
  if (up) { return wu[w + k]; }
  return wg[w + k];
}

fn x_quad(xr: u32, k0: u32) -> vec4f {
  return vec4f(x_at(xr, k0), x_at(xr, k0 + TEAM), x_at(xr, k0 + 2u * TEAM), x_at(xr, k0 + 3u * TEAM));
}

@compute @workgroup_size(256)
fn swiglu_matvec(@builtin(workgroup_id) wgid: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % TEAM;
  let n = wgid.y * (256u / TEAM) + li / TEAM;
  let m0 = wgid.x * MR;
  let wr = min(n, p.N - 1u) * p.K;  // past the last column: row N − 1, nothing stored
  // Rows past M read row M − 1 and store nothing.
  let x0 = min(m0 + 0u, p.M - 1u) * p.K;
  let x1 = min(m0 + 1u, p.M - 1u) * p.K;
  let x2 = min(m0 + 2u, p.M - 1u) * p.K;
  var g0 = vec4f(0.0);
  var u0 = vec4f(0.0);
  var g1 = vec4f(0.0);
  var u1 = vec4f(0.0);
  var g2 = vec4f(0.0);
  var u2 = vec4f(0.0);
  for (var k0 = lane; k0 < p.K; k0 += 4u * TEAM) {
    let wgv = vec4f(w_at(wr, k0, false), w_at(wr, k0 + TEAM, false), w_at(wr, k0 + 2u * TEAM, false),
                    w_at(wr, k0 + 3u * TEAM, false));
    let wuv = vec4f(w_at(wr, k0, true), w_at(wr, k0 + TEAM, true), w_at(wr, k0 + 2u * TEAM, true),
                    w_at(wr, k0 + 3u * TEAM, true));
    let xv0 = x_quad(x0, k0);
    g0 += xv0 * wgv;
    u0 += xv0 * wuv;
    if (MR > 1u) {
      let xv = x_quad(x1, k0);
      g1 += xv * wgv;
      u1 += xv * wuv;
    }
    if (MR > 2u) {
      let xv = x_quad(x2, k0);
      g2 += xv * wgv;
      u2 += xv * wuv;
    }
  }
  gate_sums[li] = g0.x + g0.y + g0.z + g0.w;
  up_sums[li] = u0.x + u0.y + u0.z + u0.w;
  if (MR > 1u) {
    gate_sums[1u * 256u + li] = g1.x + g1.y + g1.z + g1.w;
    up_sums[1u * 256u + li] = u1.x + u1.y + u1.z + u1.w;
  }
  if (MR > 2u) {
    gate_sums[2u * 256u + li] = g2.x + g2.y + g2.z + g2.w;
    up_sums[2u * 256u + li] = u2.x + u2.y + u2.z + u2.w;
  }
  workgroupBarrier();
  // Lane q of the team adds row m0 + q over the team's lanes, in lane order.
  let m = m0 + lane;
  if (lane < MR && m < p.M && n < p.N) {
    let t0 = lane * 256u + li - lane;
    var g = gate_sums[t0];
    var u = up_sums[t0];
    for (var t = 1u; t < TEAM; t++) {
      g += gate_sums[t0 + t];
      u += up_sums[t0 + t];
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
