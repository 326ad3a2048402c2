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
// invocations owns one output column y(·, n) for all M ≤ 8 rows (grid: N / 16); M is small (decoding: 1 to K + 1 rows). add_rmsnorm: a, b, s, y (R, D), w (D); one
// workgroup of 256 owns one row (M = R, N = D, eps in the last word).

struct Params { M: u32, N: u32, K: u32, eps: f32, L: u32, last: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // add_rmsnorm: a
@group(0) @binding(2) var<storage, read> wg: array<f32>;       // add_rmsnorm: b
@group(0) @binding(3) var<storage, read> wu: array<f32>;       // add_rmsnorm: w
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> sum: array<f32>; // add_rmsnorm: s

// swiglu_matvec: a team of 16 invocations per output column n for all M ≤ 8 rows (each weight element
// read once), 16 columns per workgroup of 256, both products summed in matmul.wgsl matvec_team's order
// (lane j: k = 64i + 16c + j into accumulator c of row m; lane m adds row m's lanes in lane order), so
// the values equal `matvec_team` twice, then `swiglu`, bit for bit.
const TEAM: u32 = 16u;
var<workgroup> gate_sums: array<f32, 2048>; // (row m < 8, invocation)
var<workgroup> up_sums: array<f32, 2048>;

fn hsum(v: vec4f) -> f32 { return v.x + v.y + v.z + v.w; }

fn x_at(m: u32, k: u32) -> f32 {
  if (k >= p.K) { return 0.0; }
  return x[m * p.K + k];
}

fn team_x(m: u32, k0: u32) -> vec4f {
  return vec4f(x_at(m, k0), x_at(m, k0 + TEAM), x_at(m, k0 + 2u * TEAM), x_at(m, k0 + 3u * TEAM));
}

fn w_at(w: u32, k: u32, up: bool) -> f32 {
  if (k >= p.K) { return 0.0; }
  if (up) { return wu[w + k]; }
  return wg[w + k];
}

fn team_w(w: u32, k0: u32, up: bool) -> vec4f {
  return vec4f(w_at(w, k0, up), w_at(w, k0 + TEAM, up), w_at(w, k0 + 2u * TEAM, up), w_at(w, k0 + 3u * TEAM, up));
}

@compute @workgroup_size(256)
fn swiglu_matvec(@builtin(workgroup_id) wgid: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % TEAM;
  let n = wgid.x * (256u / TEAM) + li / TEAM;
  let wr = min(n, p.N - 1u) * p.K;  // past the last column: row N − 1, nothing stored
  var ag0 = vec4f(0.0);
  var ag1 = vec4f(0.0);
  var ag2 = vec4f(0.0);
  var ag3 = vec4f(0.0);
  var ag4 = vec4f(0.0);
  var ag5 = vec4f(0.0);
  var ag6 = vec4f(0.0);
  var ag7 = vec4f(0.0);
  var au0 = vec4f(0.0);
  var au1 = vec4f(0.0);
  var au2 = vec4f(0.0);
  var au3 = vec4f(0.0);
  var au4 = vec4f(0.0);
  var au5 = vec4f(0.0);
  var au6 = vec4f(0.0);
  var au7 = vec4f(0.0);
  for (var k0 = lane; k0 < p.K; k0 += 4u * TEAM) {
    let g = team_w(wr, k0, false);
    let u = team_w(wr, k0, true);
    let x0 = team_x(0u, k0); ag0 += x0 * g; au0 += x0 * u;
    if (p.M > 1u) { let x1 = team_x(1u, k0); ag1 += x1 * g; au1 += x1 * u; }
    if (p.M > 2u) { let x2 = team_x(2u, k0); ag2 += x2 * g; au2 += x2 * u; }
    if (p.M > 3u) { let x3 = team_x(3u, k0); ag3 += x3 * g; au3 += x3 * u; }
    if (p.M > 4u) { let x4 = team_x(4u, k0); ag4 += x4 * g; au4 += x4 * u; }
    if (p.M > 5u) { let x5 = team_x(5u, k0); ag5 += x5 * g; au5 += x5 * u; }
    if (p.M > 6u) { let x6 = team_x(6u, k0); ag6 += x6 * g; au6 += x6 * u; }
    if (p.M > 7u) { let x7 = team_x(7u, k0); ag7 += x7 * g; au7 += x7 * u; }
  }
  gate_sums[li] = hsum(ag0);
  if (p.M > 1u) { gate_sums[256u + li] = hsum(ag1); }
  if (p.M > 2u) { gate_sums[512u + li] = hsum(ag2); }
  if (p.M > 3u) { gate_sums[768u + li] = hsum(ag3); }
  if (p.M > 4u) { gate_sums[1024u + li] = hsum(ag4); }
  if (p.M > 5u) { gate_sums[1280u + li] = hsum(ag5); }
  if (p.M > 6u) { gate_sums[1536u + li] = hsum(ag6); }
  if (p.M > 7u) { gate_sums[1792u + li] = hsum(ag7); }
  up_sums[li] = hsum(au0);
  if (p.M > 1u) { up_sums[256u + li] = hsum(au1); }
  if (p.M > 2u) { up_sums[512u + li] = hsum(au2); }
  if (p.M > 3u) { up_sums[768u + li] = hsum(au3); }
  if (p.M > 4u) { up_sums[1024u + li] = hsum(au4); }
  if (p.M > 5u) { up_sums[1280u + li] = hsum(au5); }
  if (p.M > 6u) { up_sums[1536u + li] = hsum(au6); }
  if (p.M > 7u) { up_sums[1792u + li] = hsum(au7); }
  workgroupBarrier();
  if (lane < p.M && n < p.N) {
    let base = lane * 256u + li - lane;
    var g = gate_sums[base];
    var u = up_sums[base];
    for (var t = 1u; t < TEAM; t++) {
      g += gate_sums[base + t];
      u += up_sums[base + t];
    }
    y[lane * p.N + n] = silu(g) * u;
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
