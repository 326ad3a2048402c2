// optim.wgsl — optimizer kernels: global gradient norm and the AdamW update, all on the GPU so a
// training step needs no readback.
//
//   sum_squares:  partials[slot + w] = Σ_{i in block w} g_i²            (blocks of 4096 values)
//   clip_scale:   norm = sqrt(Σ partials);  stats = (norm, min(1, max_norm / (norm + 1e-6)), t, c₁, c₂)
//                 (max_norm ≤ 0: no clipping, scale 1); a non-finite norm gives scale 0, which
//                 makes adamw skip the step entirely: a NaN/Inf gradient never reaches the weights.
//                 t counts the applied updates only (a skipped step leaves t, c₁, c₂ as they were),
//                 and c_k = 1 − β_kᵗ is kept by the recurrence c ← (1 − β) + β c (c = 0 at t = 0):
//                 exact at t = 1, contractive (errors shrink by β per step), unlike f32 pow(β, t).
//   adamw:        g ← g · scale;  p ← p − lr·wd·p;  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
//                 p ← p − (lr / c₁) · m / (sqrt(v) / sqrt(c₂) + ε)
//
// Ground truth: torch.nn.utils.clip_grad_norm_ (norm over all parameters, scale max/(norm + 1e-6))
// and torch.optim.AdamW (decoupled weight decay, bias corrections as above, foreach=False).
// sum_squares: a workgroup of 256 owns a block of 4096 values (16 each), tree-reduced.
// adamw: one invocation owns one parameter element.

struct Params {
  n: u32, row: u32, slot: u32, count: u32,
  lr: f32, beta1: f32, beta2: f32, eps: f32, wd: f32, one_minus_b1: f32, one_minus_b2: f32, max_norm: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m1: array<f32>;
@group(0) @binding(4) var<storage, read_write> m2: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;

// Bindings: grad (2), partials (5).
@compute @workgroup_size(256)
fn sum_squares(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let block = wg.y * 65535u + wg.x;
  let start = block * 4096u;
  var s = 0.0;
  for (var k = 0u; k < 16u; k++) {
    let i = start + k * 256u + li;
    if (i < p.n) { let g = grad[i]; s += g * g; }
  }
  let t = wg_sum(li, s);
  if (li == 0u) { partials[p.slot + block] = t; }
}

// Bindings: partials (5), stats (6): (norm, scale, t, c₁, c₂). One workgroup over `count` partial sums.
@compute @workgroup_size(256)
fn clip_scale(@builtin(local_invocation_index) li: u32) {
  var s = 0.0;
  for (var i = li; i < p.count; i += 256u) { s += partials[i]; }
  let t = wg_sum(li, s);
  if (li == 0u) {
    let norm = sqrt(t);
    stats[0] = norm;
    var scale = select(1.0, min(1.0, p.max_norm / (norm + 1e-6)), p.max_norm > 0.0);
    if (!(t <= 3.0e38)) { scale = 0.0; } // NaN or ∞ (comparisons with NaN are false)
    stats[1] = scale;
    if (scale > 0.0) {
      stats[2] += 1.0;
      stats[3] = p.one_minus_b1 + p.beta1 * stats[3];
      stats[4] = p.one_minus_b2 + p.beta2 * stats[4];
    }
  }
}

// Bindings: param (1), grad (2), m1 (3), m2 (4), stats (6).
@compute @workgroup_size(256)
fn adamw(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.y * p.row + gid.x;
  if (i >= p.n) { return; }
  if (stats[1] == 0.0) { return; } // non-finite gradients: skip the step
  let g = grad[i] * stats[1];
  var w = param[i];
  w -= p.lr * p.wd * w;
  let m = p.beta1 * m1[i] + (1.0 - p.beta1) * g;
  let v = p.beta2 * m2[i] + (1.0 - p.beta2) * g * g;
  m1[i] = m;
  m2[i] = v;
  param[i] = w - (p.lr / stats[3]) * m / (sqrt(v) / sqrt(stats[4]) + p.eps);
}
