// softmax.wgsl — row-wise softmax family: causal attention softmax, log-softmax, cross-entropy.
//
//   causal_softmax: for row r = (b, h, t) of scores (R, S), with past = S − T:
//                   P[r, s] = exp(x[r, s] − m) / Σ_{j ≤ t+past} exp(x[r, j] − m) for s ≤ t + past, else 0
//   log_softmax:    y[r, v] = x[r, v] − m − log Σ_j exp(x[r, j] − m)
//   cross_entropy:  loss[r] = logsumexp(x[r, :]) − x[r, target[r]]   (0 where targets[r] = ignore)
//
//   softmax_backward (in place on dP):   dS[r, s] = P[r, s] · (dP[r, s] − Σ_j P[r, j] dP[r, j])
//   mean_cross_entropy (one workgroup):  out = (Σ_r loss[r] / n, n) with n = #rows whose target ≠ ignore
//   cross_entropy_backward:              dx[r, v] = g / n · (softmax(x[r])_v − [v = target[r]]), 0 on ignored rows
//   cross_entropy_backward_seq:          the same with the weight sign · coef[⌊r / T⌋] · g per row (sequence sums)
//
// Ground truth: torch.softmax with a causal mask (LlamaAttention eager, f32), F.log_softmax,
// F.cross_entropy(reduction="none"). m is the row maximum, so every exp() argument is ≤ 0.
// One workgroup of 256 owns one row; reductions are trees in workgroup memory. Rows beyond 65535
// use grid y (row = wg.y · yrow + wg.x).

struct Params { R: u32, S: u32, T: u32, yrow: u32, ignore: i32, sign: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> targets: array<i32>;

@group(0) @binding(4) var<storage, read_write> stats: array<f32>; // (mean, n) of mean_cross_entropy
@group(0) @binding(5) var<storage, read> gout: array<f32>;         // the loss's gradient (1)

// Max and log-sum-exp of x[base .. base + n).
fn row_lse(li: u32, base: u32, n: u32) -> vec2f {
  var m = NEG_BIG;
  for (var j = li; j < n; j += 256u) { m = max(m, x[base + j]); }
  m = wg_max(li, m);
  var s = 0.0;
  for (var j = li; j < n; j += 256u) { s += exp(x[base + j] - m); }
  s = wg_sum(li, s);
  return vec2f(m, m + log(s));
}

@compute @workgroup_size(256)
fn causal_softmax(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.y * p.yrow + wg.x;
  if (r >= p.R) { return; }
  let base = r * p.S;
  let valid = (r % p.T) + (p.S - p.T) + 1u; // columns 0 .. t + past
  let ml = row_lse(li, base, valid);
  for (var j = li; j < p.S; j += 256u) {
    var v = 0.0;
    if (j < valid) { v = exp(x[base + j] - ml.y); }
    x[base + j] = v;
  }
}

@compute @workgroup_size(256)
fn log_softmax(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.y * p.yrow + wg.x;
  if (r >= p.R) { return; }
  let base = r * p.S;
  let ml = row_lse(li, base, p.S);
  for (var j = li; j < p.S; j += 256u) { y[base + j] = x[base + j] - ml.y; }
}

@compute @workgroup_size(256)
fn cross_entropy(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.y * p.yrow + wg.x;
  if (r >= p.R) { return; }
  let base = r * p.S;
  let ml = row_lse(li, base, p.S);
  if (li == 0u) {
    let t = targets[r];
    if (t == p.ignore || t < 0 || u32(t) >= p.S) { y[r] = 0.0; } else { y[r] = ml.y - x[base + u32(t)]; }
  }
}

// Bindings: P (1), dP → dS in place (2).
@compute @workgroup_size(256)
fn softmax_backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.y * p.yrow + wg.x;
  if (r >= p.R) { return; }
  let base = r * p.S;
  var d = 0.0;
  for (var j = li; j < p.S; j += 256u) { d += x[base + j] * y[base + j]; }
  d = wg_sum(li, d);
  for (var j = li; j < p.S; j += 256u) { y[base + j] = x[base + j] * (y[base + j] - d); }
}

// Bindings: per-row losses (1), targets (3), stats (4). One workgroup; R rows of losses.
@compute @workgroup_size(256)
fn mean_cross_entropy(@builtin(local_invocation_index) li: u32) {
  var s = 0.0;
  var n = 0.0;
  for (var r = li; r < p.R; r += 256u) {
    s += x[r];
    if (targets[r] != p.ignore && targets[r] >= 0 && u32(targets[r]) < p.S) { n += 1.0; }
  }
  s = wg_sum(li, s);
  n = wg_sum(li, n);
  if (li == 0u) {
    stats[0] = s / max(n, 1.0);
    stats[1] = n;
  }
}

// Bindings: logits (1), dlogits (2), targets (3), stats (4), gout (5).
@compute @workgroup_size(256)
fn cross_entropy_backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.y * p.yrow + wg.x;
  if (r >= p.R) { return; }
  let base = r * p.S;
  let t = targets[r];
  let valid = t != p.ignore && t >= 0 && u32(t) < p.S;
  let ml = row_lse(li, base, p.S);
  let g = gout[0] / max(stats[1], 1.0);
  for (var j = li; j < p.S; j += 256u) {
    var v = 0.0;
    if (valid) {
      v = exp(x[base + j] - ml.y);
      if (i32(j) == t) { v -= 1.0; }
      v *= g;
    }
    y[base + j] = v;
  }
}

// Bindings: logits (1), dlogits (2), targets (3), stats = (·, coef[0..B)) (4), gout (5).
@compute @workgroup_size(256)
fn cross_entropy_backward_seq(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.y * p.yrow + wg.x;
  if (r >= p.R) { return; }
  let base = r * p.S;
  let t = targets[r];
  let valid = t != p.ignore && t >= 0 && u32(t) < p.S;
  let ml = row_lse(li, base, p.S);
  let g = p.sign * stats[1u + r / p.T] * gout[0];
  for (var j = li; j < p.S; j += 256u) {
    var v = 0.0;
    if (valid) {
      v = exp(x[base + j] - ml.y);
      if (i32(j) == t) { v -= 1.0; }
      v *= g;
    }
    y[base + j] = v;
  }
}
