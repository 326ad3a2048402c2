// conv1d.wgsl — depthwise causal conv1d of Mamba layers, forward, backward and the decoding step.
//
//   a[b, t, c] = bias_c + Σ_{i<W} w[c, i] · x[b, t − W + 1 + i, c]
//   x[b, s, c] = s0[b, c, W − 1 + s] (or 0) for s < 0          (zero left padding or the initial state)
//   y[b, t, c] = act(a)                                        act = silu | identity
//   final[b, c, j] = x[b, L − W + 1 + j, c],  j < W − 1        (the last W − 1 inputs, oldest first)
// Backward, with da = dy · act'(a) (silu'(a) = σ(a)(1 + a(1 − σ(a)))):
//   dx[b, s, c] = Σ_{i<W, s+W−1−i<L} w[c, i] · da[b, s + W − 1 − i, c]     (s < 0: ds0[b, c, W − 1 + s])
//   dw[c, i] = Σ_{b,t} da[b, t, c] · x[b, t − W + 1 + i, c],   dbias[c] = Σ_{b,t} da[b, t, c]
// Step: a = bias_c + Σ_{i<W−1} w[c, i] · state[b, c, i] + w[c, W − 1] · x_new;
//   the state shifts left by one and x_new becomes its last entry.
//
// Ground truth: method.md §2.2 "Depthwise causal conv1d": causal_conv1d_fn / causal_conv1d_update of
// Dao-AILab/causal-conv1d (zero left padding) with x channels-last, transcribed in lib/ssm/conv1d_ref.ts.
// Bindings (row-major, f32): x (1, (B, L, C)), w (2, (C, W)), bias (3, (C)), s0 (4, (B, C, W−1)),
//   y (5, (B, L, C)), final (6, (B, C, W−1)), dy (7, (B, L, C)), dx (8, (B, L, C)), ds0 (9, (B, C, W−1)),
//   part (10, (nblk, C·W + C)), dw (11, (C, W)), db (12, (C)), state (13, (B, C, W−1)), xs (14, (B, C)),
//   ys (15, (B, C)). Absent bias / s0 are bound to a dummy and flagged off in Params.
// Ownership: `forward` and `backward_dx`: one invocation per output element, c fastest (coalesced), the
//   W taps read through the cache; invocations past B·L·C own the state elements. `backward_dw`: a
//   workgroup owns 64 channels × one block of `rpb` rows of (B·L); 4 lanes per channel stride its rows,
//   then a tree over the 4 lanes in workgroup memory (9 KiB) writes one partial row; `backward_dw_final`
//   sums the blocks per (c, i) (two-pass, no atomics, deterministic). `step`: one invocation per (b, c).
// Numerics: f32 throughout; dx recomputes a at its W taps (W² reads, all cached) instead of storing da.
// Limits: W ≤ 8 (the dw window is two vec4s).

struct Params {
  n: u32, row: u32, B: u32, L: u32, C: u32, W: u32,
  has_bias: u32, has_s0: u32, silu_act: u32, nblk: u32, rpb: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> s0: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read_write> final_state: array<f32>;
@group(0) @binding(7) var<storage, read> dy: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;
@group(0) @binding(9) var<storage, read_write> ds0: array<f32>;
@group(0) @binding(10) var<storage, read_write> part: array<f32>;
@group(0) @binding(11) var<storage, read_write> dw: array<f32>;
@group(0) @binding(12) var<storage, read_write> db: array<f32>;
@group(0) @binding(13) var<storage, read_write> state: array<f32>;
@group(0) @binding(14) var<storage, read> xs: array<f32>;
@group(0) @binding(15) var<storage, read_write> ys: array<f32>;

// x[b, s, c] for any time s < L: the initial state (or 0) before the sequence.
fn xin(b: u32, s: i32, c: u32) -> f32 {
  if (s >= 0) { return x[(b * p.L + u32(s)) * p.C + c]; }
  if (p.has_s0 == 0u) { return 0.0; }
  return s0[(b * p.C + c) * (p.W - 1u) + u32(i32(p.W) - 1 + s)];
}

fn preact(b: u32, t: i32, c: u32) -> f32 {
  var a = 0.0;
  if (p.has_bias != 0u) { a = bias[c]; }
  for (var i = 0u; i < p.W; i++) { a += w[c * p.W + i] * xin(b, t - i32(p.W) + 1 + i32(i), c); }
  return a;
}

// da[b, t, c] = dy · act'(a).
fn dpre(b: u32, t: u32, c: u32) -> f32 {
  let g = dy[(b * p.L + t) * p.C + c];
  if (p.silu_act == 0u) { return g; }
  let a = preact(b, i32(t), c);
  let s = sigmoid(a);
  return g * s * (1.0 + a * (1.0 - s));
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.y * p.row + gid.x;
  let ny = p.B * p.L * p.C;
  if (e < ny) {
    let c = e % p.C;
    let t = (e / p.C) % p.L;
    let b = e / (p.C * p.L);
    let a = preact(b, i32(t), c);
    y[e] = select(a, silu(a), p.silu_act != 0u);
  } else if (e < p.n) {
    let k = e - ny; // (b, c, j) of the final state
    let j = k % (p.W - 1u);
    let c = (k / (p.W - 1u)) % p.C;
    let b = k / ((p.W - 1u) * p.C);
    final_state[k] = xin(b, i32(p.L) - i32(p.W) + 1 + i32(j), c);
  }
}

// Σ_i w[c, i] · da[b, s + W − 1 − i, c] over the taps that land inside the sequence.
fn dinput(b: u32, s: i32, c: u32) -> f32 {
  var acc = 0.0;
  for (var i = 0u; i < p.W; i++) {
    let t = s + i32(p.W) - 1 - i32(i);
    if (t >= 0 && t < i32(p.L)) { acc += w[c * p.W + i] * dpre(b, u32(t), c); }
  }
  return acc;
}

@compute @workgroup_size(256)
fn backward_dx(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.y * p.row + gid.x;
  let nx = p.B * p.L * p.C;
  if (e < nx) {
    let c = e % p.C;
    let s = (e / p.C) % p.L;
    let b = e / (p.C * p.L);
    dx[e] = dinput(b, i32(s), c);
  } else if (e < p.n) {
    let k = e - nx; // (b, c, j) of the initial state: time s = j − (W − 1)
    let j = k % (p.W - 1u);
    let c = (k / (p.W - 1u)) % p.C;
    let b = k / ((p.W - 1u) * p.C);
    ds0[k] = dinput(b, i32(j) - i32(p.W) + 1, c);
  }
}

var<workgroup> red_lo: array<vec4f, 256>;
var<workgroup> red_hi: array<vec4f, 256>;

// Partial sums of dw (taps 0..3 in `lo`, 4..7 in `hi`) and dbias over one block of rows (b, t).
@compute @workgroup_size(256)
fn backward_dw(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let c = wg.x * 64u + li % 64u;
  let lane = li / 64u;
  let blk = wg.y;
  var lo = vec4f(0.0);
  var hi = vec4f(0.0);
  var sb = 0.0;
  if (c < p.C) {
    let r1 = min((blk + 1u) * p.rpb, p.B * p.L);
    for (var r = blk * p.rpb + lane; r < r1; r += 4u) {
      let b = r / p.L;
      let t = r % p.L;
      let da = dpre(b, t, c);
      let s = i32(t) - i32(p.W) + 1; // time of tap 0
      var xa = vec4f(0.0);
      for (var i = 0u; i < min(p.W, 4u); i++) { xa[i] = xin(b, s + i32(i), c); }
      lo += da * xa;
      if (p.W > 4u) {
        var xb = vec4f(0.0);
        for (var i = 4u; i < p.W; i++) { xb[i - 4u] = xin(b, s + i32(i), c); }
        hi += da * xb;
      }
      sb += da;
    }
  }
  red_lo[li] = lo;
  red_hi[li] = hi;
  wg_red[li] = sb;
  workgroupBarrier();
  for (var k = 128u; k >= 64u; k >>= 1u) {
    if (li < k) {
      red_lo[li] += red_lo[li + k];
      red_hi[li] += red_hi[li + k];
      wg_red[li] += wg_red[li + k];
    }
    workgroupBarrier();
  }
  if (li < 64u && c < p.C) {
    let row = blk * (p.C * p.W + p.C);
    for (var i = 0u; i < p.W; i++) {
      var v: f32;
      if (i < 4u) { v = red_lo[li][i]; } else { v = red_hi[li][i - 4u]; }
      part[row + c * p.W + i] = v;
    }
    part[row + p.C * p.W + c] = wg_red[li];
  }
}

// dw (C·W entries) then dbias (C): the sum of the partial rows.
@compute @workgroup_size(256)
fn backward_dw_final(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.y * p.row + gid.x;
  if (e >= p.n) { return; }
  let stride = p.C * p.W + p.C;
  var s = 0.0;
  for (var k = 0u; k < p.nblk; k++) { s += part[k * stride + e]; }
  if (e < p.C * p.W) { dw[e] = s; } else { db[e - p.C * p.W] = s; }
}

@compute @workgroup_size(256)
fn step(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.y * p.row + gid.x; // (b, c)
  if (e >= p.n) { return; }
  let c = e % p.C;
  let row = e * (p.W - 1u);
  let xnew = xs[e];
  var a = w[c * p.W + p.W - 1u] * xnew;
  if (p.has_bias != 0u) { a += bias[c]; }
  for (var i = 0u; i + 1u < p.W; i++) { a += w[c * p.W + i] * state[row + i]; }
  ys[e] = select(a, silu(a), p.silu_act != 0u);
  for (var j = 0u; j + 2u < p.W; j++) { state[row + j] = state[row + j + 1u]; }
  if (p.W > 1u) { state[row + p.W - 2u] = xnew; }
}
