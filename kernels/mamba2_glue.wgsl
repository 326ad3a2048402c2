// mamba2_glue.wgsl — the element-wise steps of a Mamba-2 layer around its conv, SSD and norm
// (MambaInLlama `mamba2/hybrid_mamba_layer.py` forward, method.md §3.2).
//
//   slice_cols:  dst[r, j] = src[r, col0 + j]                       (split zxbcdt = in_proj(u))
//   ssd_inputs:  for head h (kv head g = ⌊h·H_kv/H⌋), with xBC = silu(conv(x | B | C)):
//                dt  = softplus(dt_raw[h] + dt_bias[h])
//                X[h, :] = x[g, :] · dt,   A[h] = −exp(A_log[h]) · dt,   B[h, :] = B[g, :],   C[h, :] = C[h, :]
//   add_skip:    y[h, :] += D[h] · x[g, :]                        (in place)
//   add_skip_out: y[h, :] = Y[h, :] + D[h] · x[g, :]                (into a new y, Y kept for autograd)
//
// x and B are repeated across the query heads of their group after the conv
// (repeat_kv_before_conv = False), as Llama's GQA pairs query head h with kv head ⌊h·H_kv/H⌋.
// Layouts: xBC (R, d_xb + d_xb + d_inner) = x | B | C; zxbcdt (R, 2·d_inner + 2·d_xb + H), dt_raw its last
// H columns; X, Y (R, H, P); A (R, H); Bh, Ch (R, H, N); R = B·L rows. One invocation owns one element.

struct Params { n: u32, row: u32, R: u32, H: u32, Hkv: u32, P: u32, N: u32, cols: u32, col0: u32, ncols: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;       // slice_cols: src; ssd_inputs: xBC; add_skip: xBC
@group(0) @binding(2) var<storage, read_write> dst: array<f32>; // slice_cols: dst; ssd_inputs: X; add_skip: Y
@group(0) @binding(3) var<storage, read> zx: array<f32>;        // zxbcdt (for dt_raw); add_skip_out: Y
@group(0) @binding(4) var<storage, read> vec_a: array<f32>;     // dt_bias / D
@group(0) @binding(5) var<storage, read> vec_b: array<f32>;     // A_log
@group(0) @binding(6) var<storage, read_write> a_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> b_out: array<f32>;
@group(0) @binding(8) var<storage, read_write> c_out: array<f32>;

fn idx(g: vec3u) -> u32 { return g.y * p.row + g.x; }

@compute @workgroup_size(256)
fn slice_cols(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  if (i >= p.n) { return; }
  let r = i / p.ncols;
  dst[i] = src[r * p.cols + p.col0 + i % p.ncols];
}

// One invocation per (r, h, j) with j < max(P, N); writes X (j < P), Bh and Ch (j < N), and A (j = 0).
@compute @workgroup_size(256)
fn ssd_inputs(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  if (i >= p.n) { return; }
  let w = max(p.P, p.N);
  let j = i % w;
  let h = (i / w) % p.H;
  let r = i / (w * p.H);
  let kv = h * p.Hkv / p.H;
  let dxb = p.Hkv * p.P;
  let xbc = r * (2u * dxb + p.H * p.N);
  let dt = softplus(zx[r * p.cols + p.col0 + h] + vec_a[h]);
  if (j < p.P) { dst[(r * p.H + h) * p.P + j] = src[xbc + kv * p.P + j] * dt; }
  if (j < p.N) {
    b_out[(r * p.H + h) * p.N + j] = src[xbc + dxb + kv * p.N + j];
    c_out[(r * p.H + h) * p.N + j] = src[xbc + 2u * dxb + h * p.N + j];
  }
  if (j == 0u) { a_out[r * p.H + h] = -exp(vec_b[h]) * dt; }
}

@compute @workgroup_size(256)
fn add_skip(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  if (i >= p.n) { return; }
  let j = i % p.P;
  let h = (i / p.P) % p.H;
  let r = i / (p.P * p.H);
  let kv = h * p.Hkv / p.H;
  let xbc = r * (2u * p.Hkv * p.P + p.H * p.N);
  dst[i] += vec_a[h] * src[xbc + kv * p.P + j];
}

@compute @workgroup_size(256)
fn add_skip_out(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  if (i >= p.n) { return; }
  let j = i % p.P;
  let h = (i / p.P) % p.H;
  let r = i / (p.P * p.H);
  let kv = h * p.Hkv / p.H;
  let xbc = r * (2u * p.Hkv * p.P + p.H * p.N);
  dst[i] = zx[i] + vec_a[h] * src[xbc + kv * p.P + j];
}
