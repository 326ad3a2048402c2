// mixing.wgsl — the Mamba-2 / SSD mixing matrix M (B, H, T, T) and its backward.
//
// Per (batch b, head h), rows t = output, columns s = source, s ≤ t (M = 0 above the diagonal):
//   M[t][s] = G[t][s] · L[t][s] · w_s + D_h·[t = s]
//   G = C Bᵀ (computed by the strided matmul before mask_fwd, into M itself)
//   L[t][s] = exp(Σ_{s<r≤t} A_r)      the decay, a running sum down column s started at 0 on the
//                                     diagonal (the stable segsum of ssd_minimal.py; no cum[t] − cum[s])
//   w_s = dt_s (HAS_DT) or 1
// Backward, for the gradient dM of Σ M · dM (K = dM ∘ L ∘ w, lower triangle):
//   mask_bwd:  K over G in place;  ddt_s = Σ_{t≥s} dM[t][s] G[t][s] L[t][s]
//   (host)     dC = K B,  dB = Kᵀ C   (strided matmuls)
//   decay_bwd: dA_r = Σ_{k<r} (B_k·dB_k − C_k·dC_k)   (= Σ_{t≥r} Σ_{s<r} K∘G: the row sums C_t·dC_t and
//              column sums B_s·dB_s of K∘G telescope, their diagonals cancel);  dD_h = Σ_{b,t} dM[t][t]
// Ground truth: lib/mixing/mixing_ref.ts (ssdMixingRef, ssdMixingBackwardRef); method.md §1.
//
// Bindings: 1 m: M / G / K (B, H, T, T)   2 av: A (B, T, H)   3 dtv: dt (B, T, H)   4 dv: D (H)
//   5 dm: dM (B, H, T, T)   6 ddt_out (B, T, H)   7 bv, 8 cv: B, C (B, T, H, N)
//   9 dbv, 10 dcv: dB, dC (B, T, H, N)   11 da_out (B, T, H)   12 dd_out (H)
// Ownership: mask_fwd / mask_bwd: a workgroup of 64 owns 64 consecutive columns of one (b, h) (grid
// ⌈T/64⌉ × H × B); each invocation walks its column from t = 0 to T − 1, so that at every t the
// workgroup reads and writes 64 consecutive floats of row t. decay_bwd: one invocation per head h,
// looping over the batch and then t (the prefix sum is sequential; it is O(B·T·N) work per head).
// Numerics: f32; exp of a sum of log-decays (≤ 0 for a decaying SSM), never of a difference.

struct Params { T: u32, H: u32, N: u32, B: u32, has_dt: u32, has_d: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> m: array<f32>;
@group(0) @binding(2) var<storage, read> av: array<f32>;
@group(0) @binding(3) var<storage, read> dtv: array<f32>;
@group(0) @binding(4) var<storage, read> dv: array<f32>;
@group(0) @binding(5) var<storage, read> dm: array<f32>;
@group(0) @binding(6) var<storage, read_write> ddt_out: array<f32>;
@group(0) @binding(7) var<storage, read> bv: array<f32>;
@group(0) @binding(8) var<storage, read> cv: array<f32>;
@group(0) @binding(9) var<storage, read> dbv: array<f32>;
@group(0) @binding(10) var<storage, read> dcv: array<f32>;
@group(0) @binding(11) var<storage, read_write> da_out: array<f32>;
@group(0) @binding(12) var<storage, read_write> dd_out: array<f32>;

// M[t][s] = G[t][s] · exp(seg) · w_s (+ D_h on the diagonal), in place over G.
@compute @workgroup_size(64)
fn mask_fwd(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let s = wg.x * 64u + lid.x;
  let h = wg.y;
  let b = wg.z;
  if (s >= p.T) { return; }
  var w = 1.0;
  if (p.has_dt != 0u) { w = dtv[(b * p.T + s) * p.H + h]; }
  let base = (b * p.H + h) * p.T * p.T;
  var seg = 0.0;
  for (var t = 0u; t < p.T; t++) {
    let i = base + t * p.T + s;
    if (t < s) {
      m[i] = 0.0;
      continue;
    }
    if (t > s) { seg += av[(b * p.T + t) * p.H + h]; }
    var v = m[i] * exp(seg) * w;
    if (t == s && p.has_d != 0u) { v += dv[h]; }
    m[i] = v;
  }
}

// K = dM ∘ L ∘ w over G in place (0 above the diagonal); ddt_s = Σ_t dM G L.
@compute @workgroup_size(64)
fn mask_bwd(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let s = wg.x * 64u + lid.x;
  let h = wg.y;
  let b = wg.z;
  if (s >= p.T) { return; }
  var w = 1.0;
  if (p.has_dt != 0u) { w = dtv[(b * p.T + s) * p.H + h]; }
  let base = (b * p.H + h) * p.T * p.T;
  var seg = 0.0;
  var ddt = 0.0;
  for (var t = 0u; t < p.T; t++) {
    let i = base + t * p.T + s;
    if (t < s) {
      m[i] = 0.0;
      continue;
    }
    if (t > s) { seg += av[(b * p.T + t) * p.H + h]; }
    let dl = dm[i] * exp(seg);
    ddt += dl * m[i];
    m[i] = dl * w;
  }
  if (p.has_dt != 0u) { ddt_out[(b * p.T + s) * p.H + h] = ddt; }
}

// B_k·dB_k − C_k·dC_k for the row starting at element o of the (B, T, H, N) layouts.
fn decay_term(o: u32) -> f32 {
  var acc = 0.0;
  for (var n = 0u; n < p.N; n++) { acc += bv[o + n] * dbv[o + n] - cv[o + n] * dcv[o + n]; }
  return acc;
}

// dA_r = Σ_{k<r} (B_k·dB_k − C_k·dC_k) per (b, h);  dD_h = Σ_{b,t} dM[t][t].
@compute @workgroup_size(64)
fn decay_bwd(@builtin(global_invocation_id) gid: vec3u) {
  let h = gid.x;
  if (h >= p.H) { return; }
  var dd = 0.0;
  for (var b = 0u; b < p.B; b++) {
    var acc = 0.0;
    for (var t = 0u; t < p.T; t++) {
      let r = (b * p.T + t) * p.H + h;
      da_out[r] = acc;
      acc += decay_term(r * p.N);
      if (p.has_d != 0u) { dd += dm[((b * p.H + h) * p.T + t) * p.T + t]; }
    }
  }
  if (p.has_d != 0u) { dd_out[h] = dd; }
}
