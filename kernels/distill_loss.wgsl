// distill_loss.wgsl — distillation losses, per row, with their backward.
//
//   kl_rows (mode 0, forward KL):  ℓ_r = Σ_v p_v (log p_v − log q_v)      p = softmax(t/τ) teacher, q = softmax(s/τ) student
//   kl_rows (mode 1, reverse KL):  ℓ_r = Σ_v q_v (log q_v − log p_v)
//   kl_backward: d ℓ_r / d s_v = (q_v − p_v)/τ (forward);  q_v (f_v − Σ_u q_u f_u)/τ with f = log q − log p (reverse)
//   l2_rows:     ℓ_r = ‖a_r − b_r‖₂;   l2_backward: dℓ_r/da_r = (a_r − b_r)/‖a_r − b_r‖ (0 when equal)
//   finish:      stats = (Σ_r ℓ_r · [label_r ≠ ignore] / n, n), n = #valid rows (mean) or `div` (fixed divisor)
//
// Ground truth: F.kl_div(log_softmax(s), softmax(t), reduction="batchmean") of MambaInLlama (τ = 1,
// divisor = batch), M1's reverse KL (token mean over labels ≠ −100), MOHAWK stage 2 (mean over tokens of
// the L2 norm) and stage 1 (torch.linalg.matrix_norm(·, "fro") per (batch, head), mean).
// One workgroup of 256 owns one row (tree reductions); rows beyond 65535 use grid y.

struct Params { R: u32, C: u32, yrow: u32, mode: u32, inv_tau: f32, ignore: i32, has_labels: u32, div: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> s: array<f32>;        // student logits / a
@group(0) @binding(2) var<storage, read> t: array<f32>;        // teacher logits / b
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // per-row loss, or the gradient rows
@group(0) @binding(4) var<storage, read> labels: array<i32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read> gout: array<f32>;

// log-sum-exp of x/τ over a row of s (which = 0) or t (which = 1).
fn lse(li: u32, base: u32, which: u32) -> f32 {
  var m = NEG_BIG;
  for (var j = li; j < p.C; j += 256u) {
    m = max(m, select(s[base + j], t[base + j], which == 1u) * p.inv_tau);
  }
  m = wg_max(li, m);
  var z = 0.0;
  for (var j = li; j < p.C; j += 256u) {
    z += exp(select(s[base + j], t[base + j], which == 1u) * p.inv_tau - m);
  }
  return m + log(wg_sum(li, z));
}

fn row_valid(r: u32) -> bool {
  return p.has_labels == 0u || labels[r] != p.ignore;
}

// Bindings: s (1), t (2), out (3).
@compute @workgroup_size(256)
fn kl_rows(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.y * p.yrow + wg.x;
  if (r >= p.R) { return; }
  let base = r * p.C;
  let ls = lse(li, base, 0u);
  let lt = lse(li, base, 1u);
  var acc = 0.0;
  for (var j = li; j < p.C; j += 256u) {
    let lq = s[base + j] * p.inv_tau - ls;
    let lp = t[base + j] * p.inv_tau - lt;
    if (p.mode == 0u) { acc += exp(lp) * (lp - lq); } else { acc += exp(lq) * (lq - lp); }
  }
  acc = wg_sum(li, acc);
  if (li == 0u) { out[r] = acc; }
}

// Bindings: s (1), t (2), out = ds (3), labels (4), stats (5), gout (6).
@compute @workgroup_size(256)
fn kl_backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.y * p.yrow + wg.x;
  if (r >= p.R) { return; }
  let base = r * p.C;
  let ls = lse(li, base, 0u);
  let lt = lse(li, base, 1u);
  let g = select(0.0, gout[0] / stats[1], row_valid(r)) * p.inv_tau;
  var ef = 0.0; // E_q[log q − log p], for the reverse KL
  if (p.mode == 1u) {
    for (var j = li; j < p.C; j += 256u) {
      let lq = s[base + j] * p.inv_tau - ls;
      ef += exp(lq) * (lq - (t[base + j] * p.inv_tau - lt));
    }
    ef = wg_sum(li, ef);
  }
  for (var j = li; j < p.C; j += 256u) {
    let lq = s[base + j] * p.inv_tau - ls;
    let lp = t[base + j] * p.inv_tau - lt;
    var d = exp(lq) - exp(lp);
    if (p.mode == 1u) { d = exp(lq) * (lq - lp - ef); }
    out[base + j] = g * d;
  }
}

// Bindings: s = a (1), t = b (2), out (3).
@compute @workgroup_size(256)
fn l2_rows(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.y * p.yrow + wg.x;
  if (r >= p.R) { return; }
  let base = r * p.C;
  var acc = 0.0;
  for (var j = li; j < p.C; j += 256u) { let d = s[base + j] - t[base + j]; acc += d * d; }
  acc = wg_sum(li, acc);
  if (li == 0u) { out[r] = sqrt(acc); }
}

// Bindings: a (1), b (2), out = da (3), labels (4), stats (5), gout (6).
@compute @workgroup_size(256)
fn l2_backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.y * p.yrow + wg.x;
  if (r >= p.R) { return; }
  let base = r * p.C;
  var acc = 0.0;
  for (var j = li; j < p.C; j += 256u) { let d = s[base + j] - t[base + j]; acc += d * d; }
  let norm = sqrt(wg_sum(li, acc));
  var g = 0.0;
  if (row_valid(r) && norm > 0.0) { g = gout[0] / stats[1] / norm; }
  for (var j = li; j < p.C; j += 256u) { out[base + j] = g * (s[base + j] - t[base + j]); }
}

// Bindings: out = per-row losses (3), labels (4), stats (5). One workgroup.
@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) li: u32) {
  var acc = 0.0;
  var n = 0.0;
  for (var r = li; r < p.R; r += 256u) {
    if (row_valid(r)) { acc += out[r]; n += 1.0; }
  }
  acc = wg_sum(li, acc);
  n = wg_sum(li, n);
  if (li == 0u) {
    let d = select(max(n, 1.0), p.div, p.div > 0.0);
    stats[0] = acc / d;
    stats[1] = d;
  }
}

// dpo: with per-sequence sums of token cross-entropy (= −log π(y)) for the policy's chosen (w) and
// rejected (l) answers and the frozen reference's:
//   z_b = β · ((ref_w − pol_w) − (ref_l − pol_l))            (= β[(log π/π_ref)(y_w) − (log π/π_ref)(y_l)])
//   loss = mean_b softplus(−z_b) = mean_b −log σ(z_b)
//   coef[b] = ∂loss/∂pol_w[b] = β σ(−z_b) / B,  ∂loss/∂pol_l[b] = −coef[b]
// Ground truth: TRL's DPOTrainer sigmoid loss, as MambaInLlama's train_dpo.py uses it.
// Bindings: out = (pol_w, pol_l, ref_w, ref_l) sums, 4·B (3), stats = (loss, coef[0..B)) (5). One workgroup.
@compute @workgroup_size(256)
fn dpo(@builtin(local_invocation_index) li: u32) {
  let B = p.R;
  var acc = 0.0;
  for (var b = li; b < B; b += 256u) {
    let z = p.div * ((out[2u * B + b] - out[b]) - (out[3u * B + b] - out[B + b]));
    acc += softplus(-z);
    stats[1u + b] = p.div * sigmoid(-z) / f32(B);
  }
  acc = wg_sum(li, acc);
  if (li == 0u) { stats[0] = acc / f32(B); }
}
