// mamba2_step.wgsl — a Mamba-2 mixer's decoding of L ≤ a few tokens in two dispatches and no copies
// (decoding, where a step's time is its number of dispatches and copies): `conv` is conv1d.wgsl `step`
// over L tokens; `step` is mamba2_glue.wgsl `ssd_inputs`, ssd_state.wgsl `step` and mamba2_glue.wgsl
// `add_skip` over L tokens (the SSD recurrence); inside a speculative round both also write the round's
// cache (what `Mamba2Cache.record` copies): the conv inputs, and X, A, B.
//
// conv, for sequence b, channel c, t < L, window w = the last W − 1 inputs (the conv state, oldest first):
//   y[b, t, c] = silu(Σ_{i<W−1} cw[c, i] · w_i + cw[c, W − 1] · x[b, t, c] + cb[c]);  w ← [w_1.., x[b, t, c]]
//   rec = 1: x[b, t, c] → rec_xs[b, slot + t, c]
// step, for token row r = b·L + t, head h, p < P, with g = ⌊h·H_kv / H⌋ and d_xb = H_kv·P:
//   dt = softplus(dt_raw[r, col0 + h] + dt_bias[h]);   a = −exp(A_log[h]) · dt
//   x = xBC[r, g·P + p];  X = x · dt;  B_n = xBC[r, d_xb + g·N + n];  C_n = xBC[r, 2·d_xb + h·N + n]
//   S[b, h, p, n] ← exp(a) · S + X · B_n;   y[r, h, p] = Σ_n S · C_n + D[h] · x        (t = 0, 1, …)
//   rec = 1: X → recX[b, slot + t, h, p], a → recA[b, slot + t, h], B → recB[b, slot + t, h, :]
//
// Ground truth: the kernels named above in sequence, whose float operations these repeat in the same
// order (one token: bit-identical values); the float64 twins are `causalConv1dRef`, `ssdInputsRef`, the
// recurrence H_t = exp(A_t) H + X Bᵀ and `addSkipRef` (lib/ssm/). Shapes: x (B, L, C), conv state
// (B, C, W − 1), cw (C, W), cb (C); xBC (B·L, 2·d_xb + H·N) after the conv; dt_raw (B·L, cols); state
// (B, H, P, N); y (B·L, H, P); round caches (B, T, ·). conv: one invocation per (b, c) (W ≤ 9); step:
// a team of lanes per state row (b, h, p), one lane per state entry (step_rows for N > 256: one
// invocation per row walking its N entries).

struct Params {
  rows: u32, yrow: u32, H: u32, Hkv: u32, P: u32, N: u32, cols: u32, col0: u32, T: u32, slot: u32, rec: u32,
  L: u32, C: u32, W: u32, lanes: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xbc: array<f32>;
@group(0) @binding(2) var<storage, read> dt_raw: array<f32>;
@group(0) @binding(3) var<storage, read> dt_bias: array<f32>;
@group(0) @binding(4) var<storage, read> a_log: array<f32>;
@group(0) @binding(5) var<storage, read> d_skip: array<f32>;
@group(0) @binding(6) var<storage, read_write> state: array<f32>;
@group(0) @binding(7) var<storage, read_write> y: array<f32>;
@group(0) @binding(8) var<storage, read_write> rec_x: array<f32>;
@group(0) @binding(9) var<storage, read_write> rec_a: array<f32>;
@group(0) @binding(10) var<storage, read_write> rec_b: array<f32>;
@group(0) @binding(11) var<storage, read_write> conv_state: array<f32>;
@group(0) @binding(12) var<storage, read> conv_in: array<f32>;
@group(0) @binding(13) var<storage, read> conv_w: array<f32>;
@group(0) @binding(14) var<storage, read> conv_b: array<f32>;
@group(0) @binding(15) var<storage, read_write> conv_out: array<f32>;
@group(0) @binding(16) var<storage, read_write> rec_xs: array<f32>;

@compute @workgroup_size(256)
fn conv(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.y * p.yrow + gid.x; // (b, c)
  if (e >= p.rows) { return; }
  let c = e % p.C;
  let b = e / p.C;
  let w1 = p.W - 1u;
  var win: array<f32, 8>;
  for (var i = 0u; i < w1; i++) { win[i] = conv_state[e * w1 + i]; }
  for (var t = 0u; t < p.L; t++) {
    let at = (b * p.L + t) * p.C + c;
    let xnew = conv_in[at];
    var a = conv_w[c * p.W + w1] * xnew;
    a += conv_b[c];
    for (var i = 0u; i < w1; i++) { a += conv_w[c * p.W + i] * win[i]; }
    conv_out[at] = silu(a);
    for (var j = 0u; j + 1u < w1; j++) { win[j] = win[j + 1u]; }
    if (w1 > 0u) { win[w1 - 1u] = xnew; }
    if (p.rec != 0u) { rec_xs[(b * p.T + p.slot + t) * p.C + c] = xnew; }
  }
  for (var i = 0u; i < w1; i++) { conv_state[e * w1 + i] = win[i]; }
}

// Token t of sequence b for head h (group g), state row p: its row r, the row's xBC offset, the step
// a = −exp(A_log) · softplus(dt + dt_bias), x, X = x · dt, exp(a), and its (b, slot + t, h) in the round's cache.
struct TokenInputs { r: u32, base: u32, a: f32, xr: f32, xv: f32, decay: f32, at: u32 }

fn token_inputs(b: u32, t: u32, h: u32, g: u32, pp: u32) -> TokenInputs {
  let dxb = p.Hkv * p.P;
  let r = b * p.L + t;
  let base = r * (2u * dxb + p.H * p.N);
  let dt = softplus(dt_raw[r * p.cols + p.col0 + h] + dt_bias[h]);
  let a = -exp(a_log[h]) * dt;
  let xr = xbc[base + g * p.P + pp];
  return TokenInputs(r, base, a, xr, xr * dt, exp(a), (b * p.T + p.slot + t) * p.H + h);
}

// step: a team of `lanes` invocations (a power of two ≥ N, ≤ 256) per state row (b, h, p), lane n
// holding S[b, h, p, n] in a register across the L tokens; per token the lanes' S·C_n meet in workgroup
// memory and lane 0 adds them in n order (the order of ssd_state.wgsl `step`). 256 / lanes rows per
// workgroup (grid: rows · lanes / 256 workgroups, `yrow` per grid row). B_n and C_n are read by
// consecutive lanes (coalesced), and the state is read and written once per call, not once per token:
// H200, brown-llama-6m hybrid verifying 7 tokens, 107 µs per layer for `step_rows` below.
var<workgroup> terms: array<f32, 256>;

@compute @workgroup_size(256)
fn step(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let n = li % p.lanes;
  let row = (wg.y * p.yrow + wg.x) * (256u / p.lanes) + li / p.lanes;
  let live = row < p.rows && n < p.N;
  let rc = min(row, p.rows - 1u);
  let nc = min(n, p.N - 1u);
  let pp = rc % p.P;
  let h = (rc / p.P) % p.H;
  let b = rc / (p.P * p.H);
  let g = h * p.Hkv / p.H;
  let dxb = p.Hkv * p.P;
  var s = 0.0;
  if (live) { s = state[rc * p.N + n]; }
  for (var t = 0u; t < p.L; t++) {
    let k = token_inputs(b, t, h, g, pp);
    let bn = xbc[k.base + dxb + g * p.N + nc];
    s = k.decay * s + k.xv * bn;
    terms[li] = select(0.0, s * xbc[k.base + 2u * dxb + h * p.N + nc], live);
    if (live && p.rec != 0u && pp == 0u) { rec_b[k.at * p.N + n] = bn; }
    workgroupBarrier();
    if (live && n == 0u) {
      var acc = 0.0;
      for (var j = 0u; j < p.N; j++) { acc += terms[li + j]; }
      y[(k.r * p.H + h) * p.P + pp] = acc + d_skip[h] * k.xr;
      if (p.rec != 0u) {
        rec_x[k.at * p.P + pp] = k.xv;
        if (pp == 0u) { rec_a[k.at] = k.a; }
      }
    }
    workgroupBarrier();
  }
  if (live) { state[rc * p.N + n] = s; }
}

// step_rows: the same for N > 256, one invocation per state row walking its N entries for each token.
@compute @workgroup_size(256)
fn step_rows(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.y * p.yrow + gid.x; // (b, h, p)
  if (row >= p.rows) { return; }
  let pp = row % p.P;
  let h = (row / p.P) % p.H;
  let b = row / (p.P * p.H);
  let g = h * p.Hkv / p.H;
  let dxb = p.Hkv * p.P;
  for (var t = 0u; t < p.L; t++) {
    let k = token_inputs(b, t, h, g, pp);
    var acc = 0.0;
    for (var n = 0u; n < p.N; n++) {
      let bn = xbc[k.base + dxb + g * p.N + n];
      let s = k.decay * state[row * p.N + n] + k.xv * bn;
      state[row * p.N + n] = s;
      acc += s * xbc[k.base + 2u * dxb + h * p.N + n];
      if (p.rec != 0u && pp == 0u) { rec_b[k.at * p.N + n] = bn; }
    }
    y[(k.r * p.H + h) * p.P + pp] = acc + d_skip[h] * k.xr;
    if (p.rec != 0u) {
      rec_x[k.at * p.P + pp] = k.xv;
      if (pp == 0u) { rec_a[k.at] = k.a; }
    }
  }
}
