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
// W_F16: Wg and Wu are f16 storage tensors at bindings 6 and 7 (bindings 2 and 3 then dummies), read four
// halves per load and widened exactly (matmul.wgsl W_F16): the f32 sums of the rounded weights.
override W_F16: bool = false;
@group(0) @binding(6) var<storage, read> wgh: array<vec2<u32>>;
@group(0) @binding(7) var<storage, read> wuh: array<vec2<u32>>;

fn x_at(xr: u32, q: u32, k4: u32) -> vec4f {
  if (q >= k4) { return vec4f(0.0); }
  return xv[xr + q];
}

fn w_at(w: u32, q: u32, k4: u32, up: bool) -> vec4f {
  if (q >= k4) { return vec4f(0.0); }
  if (W_F16) {
    if (up) { return half4(wuh[w + q]); }
    return half4(wgh[w + q]);
  }
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

// A row's gate and up accumulators, advanced together (one x pair serves both weights).
struct GateUp { g: vec4f, u: vec4f }

fn gu_fma(acc: GateUp, x: Pair, g: Pair, u: Pair) -> GateUp {
  return GateUp(team_fma(acc.g, x, g), team_fma(acc.u, x, u));
}

fn put_gu(r: u32, li: u32, acc: GateUp) {
  gate_sums[r * 256u + li] = lane_sum(acc.g);
  up_sums[r * 256u + li] = lane_sum(acc.u);
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
  let zero = GateUp(vec4f(0.0), vec4f(0.0));
  var a0 = zero;
  var a1 = zero;
  var a2 = zero;
  var a3 = zero;
  var a4 = zero;
  var a5 = zero;
  var a6 = zero;
  var a7 = zero;
  if (QUADS) {
    for (var q = lane; q < k4; q += 4u * T) {
      let ga = w_pair(wr, q, k4, false);
      let ua = w_pair(wr, q, k4, true);
      let gb = w_pair(wr, q + 2u * T, k4, false);
      let ub = w_pair(wr, q + 2u * T, k4, true);
      a0 = gu_fma(gu_fma(a0, x_pair(x0, q, k4), ga, ua), x_pair(x0, q + 2u * T, k4), gb, ub);
      if (MR > 1u) { a1 = gu_fma(gu_fma(a1, x_pair(x1, q, k4), ga, ua), x_pair(x1, q + 2u * T, k4), gb, ub); }
    }
  } else {
    for (var q = lane; q < k4; q += 2u * T) {
      let ga = w_pair(wr, q, k4, false);
      let ua = w_pair(wr, q, k4, true);
      a0 = gu_fma(a0, x_pair(x0, q, k4), ga, ua);
      if (MR > 1u) { a1 = gu_fma(a1, x_pair(x1, q, k4), ga, ua); }
      if (MR > 2u) { a2 = gu_fma(a2, x_pair(x2, q, k4), ga, ua); }
      if (MR > 3u) { a3 = gu_fma(a3, x_pair(x3, q, k4), ga, ua); }
      if (MR > 4u) { a4 = gu_fma(a4, x_pair(x4, q, k4), ga, ua); }
      if (MR > 5u) { a5 = gu_fma(a5, x_pair(x5, q, k4), ga, ua); }
      if (MR > 6u) { a6 = gu_fma(a6, x_pair(x6, q, k4), ga, ua); }
      if (MR > 7u) { a7 = gu_fma(a7, x_pair(x7, q, k4), ga, ua); }
    }
  }
  put_gu(0u, li, a0);
  if (MR > 1u) { put_gu(1u, li, a1); }
  if (MR > 2u) { put_gu(2u, li, a2); }
  if (MR > 3u) { put_gu(3u, li, a3); }
  if (MR > 4u) { put_gu(4u, li, a4); }
  if (MR > 5u) { put_gu(5u, li, a5); }
  if (MR > 6u) { put_gu(6u, li, a6); }
  if (MR > 7u) { put_gu(7u, li, a7); }
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
