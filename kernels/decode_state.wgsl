// decode_state.wgsl — rolling a Mamba-2 layer's decoding state back to an accepted prefix
// (speculative decoding, method.md §3.9; `mamba_simple_cache.py` / `selective_state_update_multi_cached`
// of itsdaniele/speculative_mamba keep a checkpoint plus the per-step inputs and replay them).
//
//   ssd_replay:   S ← S₀ (the checkpoint); for t < m:  S ← exp(A_t) · S + X_t B_tᵀ      (no output)
//   selective_replay (Mamba-1): S ← S₀; for t < m, per channel d and state n, with δ = softplus(dt_t[d] + b[d]):
//                 S[d, n] ← exp(δ · A[d, n]) · S[d, n] + δ · B_t[g(d), n] · x_t[d],   g(d) = ⌊d / (D/G)⌋
//   conv_window:  w[b, c, i] = [s₀[b, c, :] | x[b, 0..m, c]][m + i],  i < W − 1
//                 (the last W − 1 conv inputs once m of the round's inputs are kept)
//
// The replay is the SSD recurrence of `ssd_minimal_discrete` over the first m cached steps; the window is
// what `causal_conv1d_update` would hold after feeding those m inputs. Layouts (T = the round's capacity):
// X (B, T, H, P) = x·dt, A (B, T, H) = A·dt, Bs (B, T, H, N): the SSD inputs of the round's steps;
// checkpoint / state (B, H, P, N); conv inputs xs (B, T, C) before the conv; conv states (B, C, W − 1),
// oldest first. Mamba-1: x (B, T, D) after the conv, dt (B, T, D) before the bias and softplus, Bs (B, T, G, N),
// A (D, N), dt bias (D), states (B, D, N); selective_replay reuses the fields H = D, C = G.
// One invocation owns one output element; f32 throughout, as the step kernels (softplus threshold 20).
//
// m on the device (dyn = 1, speculative rounds that never read back): m = clamp(counts[word], 0, m_max)
// with m_max = p.m the steps the round cached; m = m_max leaves `out` as it is (the forward already left
// the state after every cached step there, so keeping all of them replays nothing, as the host path).
// refresh = 1 also writes the resulting state into the checkpoint (the next round's, so the next round
// needs no copy): in place in ssd_replay (one element per invocation), and in conv_window_refresh, where
// one invocation owns a whole (b, c) window row (its reads of the checkpoint come before its writes).

// commit_refresh: ssd_replay (refresh) on the first n invocations and conv_window_refresh on the next
// n_conv (one window row each): a Mamba-2 layer's whole device commit in one dispatch.

struct Params {
  n: u32, row: u32, B: u32, T: u32, H: u32, P: u32, N: u32, m: u32, C: u32, W1: u32, dyn: u32, word: u32,
  refresh: u32, n_conv: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> ckpt: array<f32>; // (B, H, P, N) or (B, C, W − 1)
@group(0) @binding(2) var<storage, read> xs: array<f32>;       // X (B, T, H, P) or conv inputs (B, T, C)
@group(0) @binding(3) var<storage, read> decay: array<f32>;    // A (B, T, H)
@group(0) @binding(4) var<storage, read> bs: array<f32>;       // Bs (B, T, H, N)
@group(0) @binding(5) var<storage, read_write> out: array<f32>; // state (B, H, P, N) or window (B, C, W − 1)
@group(0) @binding(6) var<storage, read> a_mat: array<f32>;    // Mamba-1 A (D, N)
@group(0) @binding(7) var<storage, read> dt_bias: array<f32>;  // Mamba-1 dt bias (D)
@group(0) @binding(8) var<storage, read> counts: array<i32>;   // dyn = 1: m = counts[word]
@group(0) @binding(9) var<storage, read_write> ck_conv: array<f32>;  // commit_refresh: conv checkpoint
@group(0) @binding(10) var<storage, read> conv_xs: array<f32>;       // commit_refresh: conv inputs
@group(0) @binding(11) var<storage, read_write> conv_out: array<f32>; // commit_refresh: conv state

fn idx(g: vec3u) -> u32 { return g.y * p.row + g.x; }

// The steps to keep; m_max (= p.m) means "all of them" and is skipped in the dynamic case.
fn kept_steps() -> u32 {
  if (p.dyn == 0u) { return p.m; }
  return u32(clamp(counts[p.word], 0, i32(p.m)));
}

// State element i (b, h, p, n) of the checkpoint after the first m cached steps of the SSD recurrence.
fn ssd_replayed(i: u32, m: u32) -> f32 {
  let n = i % p.N;
  let pp = (i / p.N) % p.P;
  let h = (i / (p.N * p.P)) % p.H;
  let b = i / (p.N * p.P * p.H);
  var s = ckpt[i];
  for (var t = 0u; t < m; t++) {
    let bt = b * p.T + t;
    s = exp(decay[bt * p.H + h]) * s + xs[(bt * p.H + h) * p.P + pp] * bs[(bt * p.H + h) * p.N + n];
  }
  return s;
}

@compute @workgroup_size(256)
fn ssd_replay(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  let m = kept_steps();
  if (i >= p.n) { return; }
  if (p.dyn != 0u && m >= p.m) {
    if (p.refresh != 0u) { ckpt[i] = out[i]; }
    return;
  }
  let s = ssd_replayed(i, m);
  out[i] = s;
  if (p.refresh != 0u) { ckpt[i] = s; }
}

// One invocation per window row (b, c) (n = B·C, W − 1 ≤ 8): the window after m kept inputs into `out`
// and the checkpoint (out as it is when m = m_max).
@compute @workgroup_size(256)
fn conv_window_refresh(@builtin(global_invocation_id) g: vec3u) {
  let e = idx(g);
  if (e >= p.n) { return; }
  let m = kept_steps();
  let c = e % p.C;
  let b = e / p.C;
  var v: array<f32, 8>;
  for (var k = 0u; k < p.W1; k++) {
    let j = m + k;
    if (m >= p.m) {
      v[k] = out[e * p.W1 + k];
    } else if (j < p.W1) {
      v[k] = ckpt[e * p.W1 + j];
    } else {
      v[k] = xs[(b * p.T + j - p.W1) * p.C + c];
    }
  }
  for (var k = 0u; k < p.W1; k++) {
    out[e * p.W1 + k] = v[k];
    ckpt[e * p.W1 + k] = v[k];
  }
}

@compute @workgroup_size(256)
fn conv_window(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  let m = kept_steps();
  if (i >= p.n || (p.dyn != 0u && m >= p.m)) { return; }
  let k = i % p.W1;
  let c = (i / p.W1) % p.C;
  let b = i / (p.W1 * p.C);
  let j = m + k; // position in [checkpoint (W − 1) | round inputs]
  if (j < p.W1) {
    out[i] = ckpt[(b * p.C + c) * p.W1 + j];
  } else {
    out[i] = xs[(b * p.T + j - p.W1) * p.C + c];
  }
}

@compute @workgroup_size(256)
fn selective_replay(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  let m = kept_steps();
  if (i >= p.n || (p.dyn != 0u && m >= p.m)) { return; }
  let n = i % p.N;
  let d = (i / p.N) % p.H;
  let b = i / (p.N * p.H);
  let grp = d / (p.H / p.C);
  let a = a_mat[d * p.N + n];
  var s = ckpt[i];
  for (var t = 0u; t < m; t++) {
    let bt = b * p.T + t;
    let delta = softplus(decay[bt * p.H + d] + dt_bias[d]);
    s = exp(delta * a) * s + delta * bs[(bt * p.C + grp) * p.N + n] * xs[bt * p.H + d];
  }
  out[i] = s;
}

@compute @workgroup_size(256)
fn commit_refresh(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  let m = kept_steps();
  if (i < p.n) {
    if (m >= p.m) {
      ckpt[i] = out[i];
      return;
    }
    let s = ssd_replayed(i, m);
    out[i] = s;
    ckpt[i] = s;
    return;
  }
  let e = i - p.n;
  if (e >= p.n_conv) { return; }
  let c = e % p.C;
  let b = e / p.C;
  var v: array<f32, 8>;
  for (var k = 0u; k < p.W1; k++) {
    let j = m + k;
    if (m >= p.m) {
      v[k] = conv_out[e * p.W1 + k];
    } else if (j < p.W1) {
      v[k] = ck_conv[e * p.W1 + j];
    } else {
      v[k] = conv_xs[(b * p.T + j - p.W1) * p.C + c];
    }
  }
  for (var k = 0u; k < p.W1; k++) {
    conv_out[e * p.W1 + k] = v[k];
    ck_conv[e * p.W1 + k] = v[k];
  }
}
