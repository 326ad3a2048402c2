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
// Shapes: x (M, K), Wg and Wu (N, K) in the checkpoint's (out, in) layout, y (M, N), K a multiple of 4;
// a team of T invocations owns the outputs y(m, n) of one column for up to 8 rows (grid: ⌈M / MR⌉,
// ⌈N / (256 / T)⌉); M is small (decoding: 1 to K + 1 rows).
// add_rmsnorm: a, b, s, y (R, D), w (D); one workgroup of 256 owns one row (M = R, N = D, eps in the
// last word).

struct Params { M: u32, N: u32, K: u32, eps: f32, L: u32, last: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // add_rmsnorm: a
@group(0) @binding(2) var<storage, read> wg: array<f32>;       // add_rmsnorm: b
@group(0) @binding(3) var<storage, read> wu: array<f32>;       // add_rmsnorm: w
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> sum: array<f32>; // add_rmsnorm: s

// swiglu_matvec: matmul.wgsl matvec_team's scheme for both products (a team of T invocations per output
// column, T from K alone; lane j adds x[m, 4q … 4q+3] ⊙ w[4q … 4q+3] for q = j, j + T, … into the vec4
// accumulators of row m (_common.wgsl team_fma), four loads of each weight in flight (two from three
// rows on), each serving all MR ≤ 8 rows of the workgroup; then a tree over the team's lanes), so the
// values equal `matvec_team` twice, then `swiglu`, bit for bit, for any MR. x, Wg and Wu are read as
// vec4 (K a multiple of 4): the same bindings as x, wg and wu, which add_rmsnorm reads as f32 (WGSL
// allows two variables on one binding when no entry point uses both).
override T: u32 = 16u;
override MR: u32 = 1u;
// Four weight loads in flight per lane when a workgroup has at most two rows, two otherwise (the same
// sums): with more rows the x values of four hold too many registers (H200, Llama-3.2-1B shapes: one
// token 4% faster with four, seven rows 14% slower).
override QUADS: bool = MR <= 2u;
var<workgroup> gate_sums: array<f32, 2048>;  // (row r < MR, invocation)
var<workgroup> up_sums: array<f32, 2048>;
@group(0) @binding(1) var<storage, read> xv: array<vec4f>;
@group(0) @binding(2) var<storage, read> wg4: array<vec4f>;
@group(0) @binding(3) var<storage, read> wu4: array<vec4f>;

fn x_at(xr: u32, q: u32, k4: u32) -> vec4f {
  if (q >= k4) { return vec4f(0.0); }
  return xv[xr + q];
}

fn w_at(w: u32, q: u32, k4: u32, up: bool) -> vec4f {
  if (q >= k4) { return vec4f(0.0); }
  if (up) { return wu4[w + q]; }
  return wg4[w + q];
}

// A lane's vec4 q and q + T of a row of x or of Wg / Wu.
fn x_pair(xr: u32, q: u32, k4: u32) -> Pair {
  return Pair(x_at(xr, q, k4), x_at(xr, q + T, k4));
}

fn w_pair(w: u32, q: u32, k4: u32, up: bool) -> Pair {
  return Pair(w_at(w, q, k4, up), w_at(w, q + T, k4, up));
}

@compute @workgroup_size(256)
fn swiglu_matvec(@builtin(workgroup_id) wgid: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % T;
  let n = wgid.y * (256u / T) + li / T;
  let m0 = wgid.x * MR;
  let k4 = p.K / 4u;
  let wr = min(n, p.N - 1u) * k4;  // past the last column: row N − 1, nothing stored
  // Rows past M read row M − 1 and store nothing.
  let x0 = min(m0 + 0u, p.M - 1u) * k4;
  let x1 = min(m0 + 1u, p.M - 1u) * k4;
  let x2 = min(m0 + 2u, p.M - 1u) * k4;
  let x3 = min(m0 + 3u, p.M - 1u) * k4;
  let x4 = min(m0 + 4u, p.M - 1u) * k4;
  let x5 = min(m0 + 5u, p.M - 1u) * k4;
  let x6 = min(m0 + 6u, p.M - 1u) * k4;
  let x7 = min(m0 + 7u, p.M - 1u) * k4;
  var g0 = vec4f(0.0);
  var u0 = vec4f(0.0);
  var g1 = vec4f(0.0);
  var u1 = vec4f(0.0);
  var g2 = vec4f(0.0);
  var u2 = vec4f(0.0);
  var g3 = vec4f(0.0);
  var u3 = vec4f(0.0);
  var g4 = vec4f(0.0);
  var u4 = vec4f(0.0);
  var g5 = vec4f(0.0);
  var u5 = vec4f(0.0);
  var g6 = vec4f(0.0);
  var u6 = vec4f(0.0);
  var g7 = vec4f(0.0);
  var u7 = vec4f(0.0);
  if (QUADS) {
    for (var q = lane; q < k4; q += 4u * T) {
      let ga = w_pair(wr, q, k4, false);
      let ua = w_pair(wr, q, k4, true);
      let gb = w_pair(wr, q + 2u * T, k4, false);
      let ub = w_pair(wr, q + 2u * T, k4, true);
      let xa0 = x_pair(x0, q, k4);
      let xb0 = x_pair(x0, q + 2u * T, k4);
      g0 = team_fma(team_fma(g0, xa0, ga), xb0, gb);
      u0 = team_fma(team_fma(u0, xa0, ua), xb0, ub);
      if (MR > 1u) {
        let xa1 = x_pair(x1, q, k4);
        let xb1 = x_pair(x1, q + 2u * T, k4);
        g1 = team_fma(team_fma(g1, xa1, ga), xb1, gb);
        u1 = team_fma(team_fma(u1, xa1, ua), xb1, ub);
      }
    }
  } else {
    for (var q = lane; q < k4; q += 2u * T) {
      let ga = w_pair(wr, q, k4, false);
      let ua = w_pair(wr, q, k4, true);
      let xp0 = x_pair(x0, q, k4);
      g0 = team_fma(g0, xp0, ga);
      u0 = team_fma(u0, xp0, ua);
      if (MR > 1u) {
        let xp = x_pair(x1, q, k4);
        g1 = team_fma(g1, xp, ga);
        u1 = team_fma(u1, xp, ua);
      }
      if (MR > 2u) {
        let xp = x_pair(x2, q, k4);
        g2 = team_fma(g2, xp, ga);
        u2 = team_fma(u2, xp, ua);
      }
      if (MR > 3u) {
        let xp = x_pair(x3, q, k4);
        g3 = team_fma(g3, xp, ga);
        u3 = team_fma(u3, xp, ua);
      }
      if (MR > 4u) {
        let xp = x_pair(x4, q, k4);
        g4 = team_fma(g4, xp, ga);
        u4 = team_fma(u4, xp, ua);
      }
      if (MR > 5u) {
        let xp = x_pair(x5, q, k4);
        g5 = team_fma(g5, xp, ga);
        u5 = team_fma(u5, xp, ua);
      }
      if (MR > 6u) {
        let xp = x_pair(x6, q, k4);
        g6 = team_fma(g6, xp, ga);
        u6 = team_fma(u6, xp, ua);
      }
      if (MR > 7u) {
        let xp = x_pair(x7, q, k4);
        g7 = team_fma(g7, xp, ga);
        u7 = team_fma(u7, xp, ua);
      }
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
  if (MR > 3u) {
    gate_sums[3u * 256u + li] = g3.x + g3.y + g3.z + g3.w;
    up_sums[3u * 256u + li] = u3.x + u3.y + u3.z + u3.w;
  }
  if (MR > 4u) {
    gate_sums[4u * 256u + li] = g4.x + g4.y + g4.z + g4.w;
    up_sums[4u * 256u + li] = u4.x + u4.y + u4.z + u4.w;
  }
  if (MR > 5u) {
    gate_sums[5u * 256u + li] = g5.x + g5.y + g5.z + g5.w;
    up_sums[5u * 256u + li] = u5.x + u5.y + u5.z + u5.w;
  }
  if (MR > 6u) {
    gate_sums[6u * 256u + li] = g6.x + g6.y + g6.z + g6.w;
    up_sums[6u * 256u + li] = u6.x + u6.y + u6.z + u6.w;
  }
  if (MR > 7u) {
    gate_sums[7u * 256u + li] = g7.x + g7.y + g7.z + g7.w;
    up_sums[7u * 256u + li] = u7.x + u7.y + u7.z + u7.w;
  }
  // The tree over the team's lanes (matmul.wgsl team_reduce), for both sums.
  workgroupBarrier();
  for (var s = T / 2u; s > 0u; s = s / 2u) {
    if (lane < s) {
      for (var r = 0u; r < MR; r++) {
        gate_sums[r * 256u + li] += gate_sums[r * 256u + li + s];
        up_sums[r * 256u + li] += up_sums[r * 256u + li + s];
      }
    }
    workgroupBarrier();
  }
  // Lane r of the team stores row m0 + r.
  let m = m0 + lane;
  if (lane < MR && m < p.M && n < p.N) {
    let t0 = lane * 256u + li - lane;
    y[m * p.N + n] = silu(gate_sums[t0]) * up_sums[t0];
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
