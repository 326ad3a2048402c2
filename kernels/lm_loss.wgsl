// lm_loss.wgsl — the LM-head loss of a chunk of rows, with its gradient, so that the full logits
// (R, V) never exist (a Llama-3 vocabulary at 16k tokens is 8.4 GB of f32 logits).
//
// For rows r of the whole batch (R_total of them), student logits s_r = h_r Wᵀ and teacher logits
// t_r = h^T_r W_Tᵀ (both (V)), target y_r, temperature τ:
//
//   ce_r = logsumexp(s_r) − s_r[y_r]                         (0 where y_r = ignore or out of range)
//   kl_r = Σ_v p_v (log p_v − log q_v),   p = softmax(t_r/τ), q = softmax(s_r/τ)     (KL(teacher ‖ student))
//   loss = w_ce · Σ_r ce_r / n  +  w_kl · Σ_r kl_r / d
//
// with n = #rows whose target is valid, d = `kl_div` (MambaInLlama's batchmean: the batch size B) or
// R_total (token mean). The gradient with respect to the chunk's student logits, per unit of the
// loss's gradient, is
//
//   ∂loss/∂s_r[v] = w_ce/n · (softmax(s_r)_v − [v = y_r]) · valid_r  +  w_kl/d · (q_v − p_v)/τ
//
// which `rows` writes over s in place (the chunk's logits are not needed afterwards); the caller turns
// it into dh = (∂/∂s) W and dW = Σ (∂/∂s)ᵀ h with the matmul kernel.
//
//   count  (one workgroup):  stats[3] = n, stats[4] = d
//   rows   (a workgroup per row of the chunk): ce and kl of rows r0 + r into out[r0 + r], out[R_total + r0 + r],
//          and (when write_grad) the gradient over s
//   finish (one workgroup):  stats[0] = loss, stats[1] = Σ ce / n, stats[2] = Σ kl / d
//   scale_by:                y = x · g[0]  (the backward: unit gradients times the loss's gradient)
//
// Ground truth: F.cross_entropy(reduction="mean") + w · F.kl_div(log_softmax(s/τ), softmax(t/τ),
// reduction="sum") / d, as MambaInLlama's train_hybrid.py computes CE + 0.1·KL (τ = 1, d = B); the
// float64 reference is lib/autograd/lm_loss_ref.ts. Maxima are subtracted, so exp() arguments are ≤ 0.

struct Params {
  R: u32,           // rows in this chunk (scale_by: elements)
  V: u32,           // vocabulary (scale_by: elements per grid row)
  yrow: u32,
  r0: u32,          // first row of the chunk in the whole batch
  R_total: u32,
  has_teacher: u32,
  write_grad: u32,
  ignore: i32,
  inv_tau: f32,
  w_ce: f32,
  w_kl: f32,
  kl_div: f32,      // > 0: fixed divisor d; 0: d = R_total
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> s: array<f32>;     // student logits (chunk, V) → gradient
@group(0) @binding(2) var<storage, read> t: array<f32>;           // teacher logits (chunk, V)
@group(0) @binding(3) var<storage, read> targets: array<i32>;     // (R_total)
@group(0) @binding(4) var<storage, read_write> out: array<f32>;   // per-row (ce | kl), 2·R_total
@group(0) @binding(5) var<storage, read_write> stats: array<f32>; // (loss, ce, kl, n, d)
@group(0) @binding(6) var<storage, read> g: array<f32>;           // scale_by: the factor (1)

fn target_valid(y: i32) -> bool {
  return y != p.ignore && y >= 0 && u32(y) < p.V;
}

// log-sum-exp of x·scale over a row of s (which = 0) or t (which = 1); `which` is uniform.
fn lse(li: u32, base: u32, which: u32, scale: f32) -> f32 {
  var m = NEG_BIG;
  if (which == 0u) {
    for (var j = li; j < p.V; j += 256u) { m = max(m, s[base + j] * scale); }
  } else {
    for (var j = li; j < p.V; j += 256u) { m = max(m, t[base + j] * scale); }
  }
  m = wg_max(li, m);
  var z = 0.0;
  if (which == 0u) {
    for (var j = li; j < p.V; j += 256u) { z += exp(s[base + j] * scale - m); }
  } else {
    for (var j = li; j < p.V; j += 256u) { z += exp(t[base + j] * scale - m); }
  }
  return m + log(wg_sum(li, z));
}

// Bindings: targets (3), stats (5). One workgroup over R_total targets.
@compute @workgroup_size(256)
fn count(@builtin(local_invocation_index) li: u32) {
  var n = 0.0;
  for (var r = li; r < p.R_total; r += 256u) {
    if (target_valid(targets[r])) { n += 1.0; }
  }
  n = wg_sum(li, n);
  if (li == 0u) {
    stats[3] = n;
    stats[4] = select(f32(p.R_total), p.kl_div, p.kl_div > 0.0);
  }
}

// Bindings: s (1), t (2), targets (3), out (4), stats (5).
@compute @workgroup_size(256)
fn rows(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.y * p.yrow + wg.x;
  if (r >= p.R) { return; }
  let base = r * p.V;
  let gr = p.r0 + r;
  let y = targets[gr];
  let valid = target_valid(y);
  let l1 = lse(li, base, 0u, 1.0);
  var ce = 0.0;
  if (valid) { ce = l1 - s[base + u32(y)]; }
  var ls = l1;
  var lt = 0.0;
  var kl = 0.0;
  let teacher = p.has_teacher != 0u;
  if (teacher) {
    if (p.inv_tau != 1.0) { ls = lse(li, base, 0u, p.inv_tau); }
    lt = lse(li, base, 1u, p.inv_tau);
    var acc = 0.0;
    for (var j = li; j < p.V; j += 256u) {
      let lq = s[base + j] * p.inv_tau - ls;
      let lp = t[base + j] * p.inv_tau - lt;
      acc += exp(lp) * (lp - lq);
    }
    kl = wg_sum(li, acc);
  } else {
    workgroupBarrier(); // every read of s[base + y] happens before the gradient overwrites s
  }
  if (li == 0u) {
    out[gr] = ce;
    out[p.R_total + gr] = kl;
  }
  if (p.write_grad == 0u) { return; }
  let gce = select(0.0, p.w_ce / max(stats[3], 1.0), valid);
  let gkl = select(0.0, p.w_kl / stats[4] * p.inv_tau, teacher);
  for (var j = li; j < p.V; j += 256u) {
    let x = s[base + j];
    var d = gce * exp(x - l1);
    if (valid && i32(j) == y) { d -= gce; }
    if (teacher) { d += gkl * (exp(x * p.inv_tau - ls) - exp(t[base + j] * p.inv_tau - lt)); }
    s[base + j] = d;
  }
}

// Bindings: out (4), stats (5). One workgroup.
@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) li: u32) {
  var ce = 0.0;
  var kl = 0.0;
  for (var r = li; r < p.R_total; r += 256u) {
    ce += out[r];
    kl += out[p.R_total + r];
  }
  ce = wg_sum(li, ce);
  kl = wg_sum(li, kl);
  if (li == 0u) {
    let cem = ce / max(stats[3], 1.0);
    let klm = kl / stats[4];
    stats[0] = p.w_ce * cem + select(0.0, p.w_kl * klm, p.has_teacher != 0u);
    stats[1] = cem;
    stats[2] = klm;
  }
}

// Bindings: x (1), y = out (4), g (6). One invocation per element (n = p.R, elements per grid row p.V).
@compute @workgroup_size(256)
fn scale_by(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.y * p.V + gid.x;
  if (i < p.R) { out[i] = s[i] * g[0]; }
}
