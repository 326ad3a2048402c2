// mamba2_glue_bwd.wgsl — gradients of the element-wise steps of a Mamba-2 layer (kernels/mamba2_glue.wgsl),
// for the gradient of Σ out · d(out). Ground truth: the forward of MambaInLlama
// `mamba2/hybrid_mamba_layer.py` (method.md §3.2) differentiated by hand; float64 twins in
// lib/ssm/mamba2_glue_ref.ts.
//
//   scatter_cols:     d src[r, col0 + j] = d dst[r, j]    (or 0 where the slice got no gradient)
//   ssd_inputs_dxbc:  with dt = softplus(dt_raw + dt_bias), heads h of kv head g (⌊h·H_kv/H⌋ = g):
//                     d x[g, p] = Σ_h dX[h, p] · dt[h],   d B[g, n] = Σ_h dBh[h, n],   d C[h, n] = dCh[h, n]
//   ssd_inputs_ddt:   d dt[h] = Σ_p dX[h, p] · x[g, p] + dA[h] · (−exp(A_log[h]))
//                     d dt_raw[h] = d dt[h] · σ(dt_raw[h] + dt_bias[h])          (softplus' = σ)
//                     a_term[h]  = dA[h] · A[h]   (per row; Σ_rows is d A_log, as ∂A/∂A_log = A)
//   skip_dxbc:        d x[g, p] = Σ_h D[h] · dY[h, p]   (the B and C columns get 0)
//   skip_dd:          d_term[h] = Σ_p dY[h, p] · x[g, p]   (per row; Σ_rows is d D)
//
// The per-row terms of d dt_bias, d A_log and d D are reduced over rows by the caller with
// lib/tensor/reduce.ts sumColumns (fixed-order partial sums, no atomics: deterministic).
// Layouts: xBC (R, 2·H_kv·P + H·N) = x | B | C; dt_raw read from rows of `cols` values at column col0
// ((R, H) itself when cols = H, col0 = 0); dX, dY (R, H, P); dA (R, H); dBh, dCh (R, H, N); R = B·L.
// One invocation owns one output element (d xBC, d src) or one (row, head) pair (the dt, D terms).
// Numerics: f32, sums over ≤ H heads or P channels in a fixed order.

struct Params { n: u32, row: u32, R: u32, H: u32, Hkv: u32, P: u32, N: u32, cols: u32, col0: u32, ncols: u32, flag: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> in_a: array<f32>;   // scatter: d dst; dxbc, ddt: dX; skip: dY
@group(0) @binding(2) var<storage, read> in_b: array<f32>;   // dxbc: dBh; ddt: dA; skip_dxbc: D
@group(0) @binding(3) var<storage, read> in_c: array<f32>;   // dxbc: dCh; ddt, skip_dd: xBC
@group(0) @binding(4) var<storage, read> dt_src: array<f32>; // dt_raw rows (R, cols)
@group(0) @binding(5) var<storage, read> dt_bias: array<f32>; // (H)
@group(0) @binding(6) var<storage, read> a_log: array<f32>;  // (H)
@group(0) @binding(7) var<storage, read_write> out0: array<f32>;
@group(0) @binding(8) var<storage, read_write> out1: array<f32>;

fn idx(g: vec3u) -> u32 { return g.y * p.row + g.x; }

// The first query head of kv head g and the one after its last: ⌊h·H_kv/H⌋ = g ⟺ g·H ≤ h·H_kv < (g+1)·H.
fn heads_of(g: u32) -> vec2u {
  return vec2u((g * p.H + p.Hkv - 1u) / p.Hkv, ((g + 1u) * p.H + p.Hkv - 1u) / p.Hkv);
}

fn dt_at(r: u32, h: u32) -> f32 {
  return dt_src[r * p.cols + p.col0 + h] + dt_bias[h];
}

@compute @workgroup_size(256)
fn scatter_cols(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  if (i >= p.n) { return; }
  let r = i / p.ncols;
  var v = 0.0;
  if (p.flag == 1u) { v = in_a[i]; }
  out0[r * p.cols + p.col0 + i % p.ncols] = v;
}

// One invocation per element of d xBC (R, 2·H_kv·P + H·N).
@compute @workgroup_size(256)
fn ssd_inputs_dxbc(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  if (i >= p.n) { return; }
  let dxb = p.Hkv * p.P;
  let width = 2u * dxb + p.H * p.N;
  let c = i % width;
  let r = i / width;
  var v = 0.0;
  if (c < dxb) {
    let hs = heads_of(c / p.P);
    for (var h = hs.x; h < hs.y; h++) { v += in_a[(r * p.H + h) * p.P + c % p.P] * softplus(dt_at(r, h)); }
  } else if (c < 2u * dxb) {
    let k = c - dxb;
    let hs = heads_of(k / p.N);
    for (var h = hs.x; h < hs.y; h++) { v += in_b[(r * p.H + h) * p.N + k % p.N]; }
  } else {
    v = in_c[r * p.H * p.N + c - 2u * dxb];
  }
  out0[i] = v;
}

// One invocation per (r, h): out0 = d dt_raw (R, H), out1 = dA · A (R, H).
@compute @workgroup_size(256)
fn ssd_inputs_ddt(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  if (i >= p.n) { return; }
  let h = i % p.H;
  let r = i / p.H;
  let kv = h * p.Hkv / p.H;
  let xrow = r * (2u * p.Hkv * p.P + p.H * p.N) + kv * p.P;
  var s = 0.0;
  for (var j = 0u; j < p.P; j++) { s += in_a[i * p.P + j] * in_c[xrow + j]; }
  let raw = dt_at(r, h);
  let a = -exp(a_log[h]);
  let da = in_b[i];
  out0[i] = (s + da * a) * sigmoid(raw);
  out1[i] = da * a * softplus(raw);
}

// One invocation per element of d xBC (R, 2·H_kv·P + H·N): the skip's share (x columns only).
@compute @workgroup_size(256)
fn skip_dxbc(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  if (i >= p.n) { return; }
  let dxb = p.Hkv * p.P;
  let width = 2u * dxb + p.H * p.N;
  let c = i % width;
  let r = i / width;
  var v = 0.0;
  if (c < dxb) {
    let hs = heads_of(c / p.P);
    for (var h = hs.x; h < hs.y; h++) { v += in_b[h] * in_a[(r * p.H + h) * p.P + c % p.P]; }
  }
  out0[i] = v;
}

// One invocation per (r, h): out0 = Σ_p dY · x (R, H).
@compute @workgroup_size(256)
fn skip_dd(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  if (i >= p.n) { return; }
  let h = i % p.H;
  let r = i / p.H;
  let kv = h * p.Hkv / p.H;
  let xrow = r * (2u * p.Hkv * p.P + p.H * p.N) + kv * p.P;
  var s = 0.0;
  for (var j = 0u; j < p.P; j++) { s += in_a[i * p.P + j] * in_c[xrow + j]; }
  out0[i] = s;
}
