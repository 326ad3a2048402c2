// mamba2_step.wgsl — a Mamba-2 mixer's one-token SSD step in one dispatch (decoding, where a step's time
// is its number of dispatches): mamba2_glue.wgsl `ssd_inputs`, ssd_state.wgsl `step` and mamba2_glue.wgsl
// `add_skip`, and, inside a speculative round, the step's SSD inputs written into the round's cache.
//
// For row r (one token of one sequence), head h, p < P, with g = ⌊h·H_kv / H⌋ and d_xb = H_kv·P:
//   dt = softplus(dt_raw[r, col0 + h] + dt_bias[h]);   a = −exp(A_log[h]) · dt
//   x = xBC[r, g·P + p];  X = x · dt;  B_n = xBC[r, d_xb + g·N + n];  C_n = xBC[r, 2·d_xb + h·N + n]
//   S[r, h, p, n] ← exp(a) · S + X · B_n;   y[r, h, p] = Σ_n S · C_n + D[h] · x
//   rec = 1: X → recX[r, slot, h, p], a → recA[r, slot, h], B → recB[r, slot, h, :] (round capacity T)
//
// Ground truth: those three kernels in sequence, whose float operations it repeats in the same order (so
// the values are bit-identical); the float64 twins are `ssdInputsRef`, the recurrence H_t = exp(A_t) H +
// X Bᵀ, and `addSkipRef` (lib/ssm/). Shapes: xBC (R, 2·d_xb + H·N) after the conv; dt_raw (R, cols);
// state (R, H, P, N); y (R, H, P); recX (R, T, H, P), recA (R, T, H), recB (R, T, H, N). One invocation
// owns one state row (r, h, p) and walks its N entries.

struct Params {
  rows: u32, yrow: u32, H: u32, Hkv: u32, P: u32, N: u32, cols: u32, col0: u32, T: u32, slot: u32, rec: u32,
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

@compute @workgroup_size(256)
fn step(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.y * p.yrow + gid.x; // (r, h, p)
  if (row >= p.rows) { return; }
  let pp = row % p.P;
  let h = (row / p.P) % p.H;
  let r = row / (p.P * p.H);
  let g = h * p.Hkv / p.H;
  let dxb = p.Hkv * p.P;
  let base = r * (2u * dxb + p.H * p.N);
  let dt = softplus(dt_raw[r * p.cols + p.col0 + h] + dt_bias[h]);
  let a = -exp(a_log[h]) * dt;
  let xr = xbc[base + g * p.P + pp];
  let xv = xr * dt;
  let decay = exp(a);
  let at = (r * p.T + p.slot) * p.H + h; // the step's (r, slot, h) in the round's cache
  var acc = 0.0;
  for (var n = 0u; n < p.N; n++) {
    let bn = xbc[base + dxb + g * p.N + n];
    let s = decay * state[row * p.N + n] + xv * bn;
    state[row * p.N + n] = s;
    acc += s * xbc[base + 2u * dxb + h * p.N + n];
    if (p.rec != 0u && pp == 0u) { rec_b[at * p.N + n] = bn; }
  }
  y[row] = acc + d_skip[h] * xr;
  if (p.rec != 0u) {
    rec_x[at * p.P + pp] = xv;
    if (pp == 0u) { rec_a[at] = a; }
  }
}
