// speculative.wgsl — the accept / resample / bonus rule of speculative sampling (Leviathan et al. 2023,
// Algorithm 1; `sample_speculative` of itsdaniele/speculative_mamba, method.md §3.9), on the GPU so that
// a round's only readback is its K + 2 result words.
//
// For row b, target distributions p_1..p_{K+1} (p_i the target's next-token distribution after the
// prefix ending in token i − 1 of [t_last, d_1..d_K]) and the draft's q_1..q_K, drafts d_i ~ q_i:
//   r = the first i (0-based) with NOT (u_i · q_i(d_{i+1}) < p_i(d_{i+1})),  u_i = U(seed, step i, row b);
//       r = K when every draft is accepted
//   r < K:  t = a draw from norm(max(p_{r+1} − q_{r+1}, 0))      (resample at the first rejection)
//   r = K:  t = a draw from p_{K+1}                               (the bonus token)
//   draws: the first v with Σ_{u ≤ v} w_u > U(seed, step K, row b) · Σ w  (index order, as sample.wgsl)
// The round emits d_1..d_r, t (1..K+1 tokens). With temperature 0 every p, q is one-hot and the rule is
// greedy prefix matching: accept while d_i = argmax p_i, then emit argmax p_{r+1}.
// U is the PCG hash of sample.wgsl (its host twin is `gpuUniform(seed, step, row)`).
//
// Bindings (outermost first): target (1, (B, K+1, V)), draft (2, (B, K, V)): kept, normalised
// distributions (sample.wgsl `distribution`); tokens (3, (B, K+1) i32): [t_last, d_1..d_K], slot 0
// overwritten with t (the next round's t_last); result (4, (B, K+2) i32): [r, t, d_1..d_K];
// feed (5, (B, 2) i32): [d_K, t] (what a draft that saw every draft token consumes next).
// One workgroup of 256 owns one row; invocation 0 runs the K acceptance tests and the final scan.
//
// accept_round: the same rule for one row inside a round loop that never reads back; the round's state
// is a small i32 buffer the kernel reads and advances (binding 6, words below), so the same recorded
// work serves every round:
//   state = [pos, keep, done, emitted, round]
//   seed of the rule = pcg(p.seed ^ pcg(2·round + 1))   (`roundSeed(seed, round, 1)` on the host)
//   records[round] = [r, t, d_1..d_K]  (result's layout; [−1, −1, …] for a round after the end)
//   emitted tokens d_1..d_r, t are counted until an EOS token (stop_eos, ids in binding 7) or `steps`
//   tokens: then done = 1. keep = r + 1 (the tokens both models keep of what they were fed), 0 once
//   done; pos += keep; round += 1; tokens[0] = t and feed (binding 5) = the draft's next input: t
//   (feed_len 1), or [the token before t, t] = [r > 0 ? d_r : t_last, t] (feed_len 2: a draft kept one
//   token behind, which re-feeds it).
// A round that starts done changes nothing but the round counter.
// accept_round_greedy: accept_round at temperature 0 from the target's argmax tokens (binding 8).

struct Params {
  B: u32, K: u32, V: u32, seed: u32, steps: u32, stop_eos: u32, n_eos: u32, rec_cap: u32, feed_len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> target_p: array<f32>;
@group(0) @binding(2) var<storage, read> draft_q: array<f32>;
@group(0) @binding(3) var<storage, read_write> tokens: array<i32>;
@group(0) @binding(4) var<storage, read_write> result: array<i32>;
@group(0) @binding(5) var<storage, read_write> feed: array<i32>;
@group(0) @binding(6) var<storage, read_write> state: array<i32>;
@group(0) @binding(7) var<storage, read> eos: array<i32>;

const POS = 0u;
const KEEP = 1u;
const DONE = 2u;
const EMITTED = 3u;
const ROUND = 4u;

var<workgroup> n_accepted: u32;
var<workgroup> rule_seed: u32;
var<workgroup> chunk: array<f32, 256>;

fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

fn uniform01(step: u32, b: u32) -> f32 {
  let h = pcg(pcg(rule_seed ^ pcg(step)) + b);
  return f32(h >> 8u) / 16777216.0;
}

// The unnormalised weight of token v in the final draw after r accepted drafts (0 at or past `end`).
fn weight(b: u32, r: u32, v: u32, end: u32) -> f32 {
  if (v >= end) { return 0.0; }
  let pv = target_p[(b * (p.K + 1u) + r) * p.V + v];
  if (r < p.K) { return max(pv - draft_q[(b * p.K + r) * p.V + v], 0.0); }
  return pv;
}

// Weights v … v + 7, loaded together (_common.wgsl Eight).
fn weight8(b: u32, r: u32, v: u32, end: u32) -> Eight {
  return Eight(vec4f(weight(b, r, v, end), weight(b, r, v + 1u, end), weight(b, r, v + 2u, end),
                     weight(b, r, v + 3u, end)),
               vec4f(weight(b, r, v + 4u, end), weight(b, r, v + 5u, end), weight(b, r, v + 6u, end),
                     weight(b, r, v + 7u, end)));
}

// The final draw's walk through one chunk, entry by entry in index order until the mass passes.
var<private> draw_acc: f32;
var<private> draw_tok: u32;
var<private> draw_found: bool;

fn draw_in(w: f32, v: u32, target_mass: f32) {
  if (draw_found || w <= 0.0) { return; }
  draw_tok = v;
  draw_acc += w;
  if (draw_acc > target_mass) { draw_found = true; }
}

// The rule for row b with seed `rule_seed` (set by invocation 0 before): returns (r, t); invocation 0's
// values are the ones that count. Must be called in uniform control flow (workgroup reductions).
fn rule(b: u32, li: u32) -> vec2u {
  let K1 = p.K + 1u;
  if (li == 0u) {
    var r = p.K;
    for (var i = 0u; i < p.K; i++) {
      let d = u32(tokens[b * K1 + 1u + i]);
      let pv = target_p[(b * K1 + i) * p.V + d];
      let qv = draft_q[(b * p.K + i) * p.V + d];
      if (!(uniform01(i, b) * qv < pv)) {
        r = i;
        break;
      }
    }
    n_accepted = r;
  }
  workgroupBarrier();
  let r = n_accepted;
  // Inverse CDF over the weights in index order: each invocation owns a contiguous chunk.
  let per = (p.V + 255u) / 256u;
  let v0 = li * per;
  let end = min(v0 + per, p.V);
  var s = 0.0;
  for (var v = v0; v < end; v += 8u) {
    let e = weight8(b, r, v, end);
    s = ((((((((s + e.a.x) + e.a.y) + e.a.z) + e.a.w) + e.b.x) + e.b.y) + e.b.z) + e.b.w);
  }
  chunk[li] = s;
  let total = wg_sum(li, s);
  if (li == 0u) {
    let target_mass = uniform01(p.K, b) * total;
    var acc = 0.0;
    var c = 0u;
    loop {
      if (c >= 255u || acc + chunk[c] > target_mass) { break; }
      acc += chunk[c];
      c++;
    }
    draw_acc = acc;
    draw_tok = 0u;
    draw_found = false;
    for (var cc = c; cc < 256u && !draw_found; cc++) {
      let cend = min(cc * per + per, p.V);
      for (var v = cc * per; v < cend && !draw_found; v += 8u) {
        let e = weight8(b, r, v, cend);
        draw_in(e.a.x, v, target_mass);
        draw_in(e.a.y, v + 1u, target_mass);
        draw_in(e.a.z, v + 2u, target_mass);
        draw_in(e.a.w, v + 3u, target_mass);
        draw_in(e.b.x, v + 4u, target_mass);
        draw_in(e.b.y, v + 5u, target_mass);
        draw_in(e.b.z, v + 6u, target_mass);
        draw_in(e.b.w, v + 7u, target_mass);
      }
    }
    chunk[0] = bitcast<f32>(draw_tok);
  }
  return vec2u(r, bitcast<u32>(chunk[0]));
}

@compute @workgroup_size(256)
fn accept(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.x;
  let K1 = p.K + 1u;
  if (li == 0u) { rule_seed = p.seed; }
  workgroupBarrier();
  let rt = rule(b, li);
  if (li == 0u) {
    let r = rt.x;
    let t = i32(rt.y);
    let base = b * (p.K + 2u);
    result[base] = i32(r);
    result[base + 1u] = t;
    for (var i = 0u; i < p.K; i++) { result[base + 2u + i] = tokens[b * K1 + 1u + i]; }
    feed[b * 2u] = tokens[b * K1 + p.K];
    feed[b * 2u + 1u] = t;
    tokens[b * K1] = t;
  }
}

fn is_eos(t: i32) -> bool {
  for (var i = 0u; i < p.n_eos; i++) { if (eos[i] == t) { return true; } }
  return false;
}

// One row (B = 1): workgroup 0.
@compute @workgroup_size(256)
fn accept_round(@builtin(local_invocation_index) li: u32) {
  if (li == 0u) { rule_seed = pcg(p.seed ^ pcg(2u * u32(state[ROUND]) + 1u)); }
  workgroupBarrier();
  let rt = rule(0u, li);
  if (li == 0u) { close_round(rt.x, i32(rt.y)); }
}

// accept_round at temperature 0 from tokens alone: target_tok (binding 8, (K + 1) i32) holds the
// target's argmax after each of [t_last, d_1..d_K] (sample.wgsl at temperature 0), and the rule is
// greedy prefix matching — r = the first i with d_{i+1} ≠ target_tok[i] (K if none), t = target_tok[r].
// With one-hot p and q this is exactly what `rule` computes, without their (K + 1 + K) · V entries.
@group(0) @binding(8) var<storage, read> target_tok: array<i32>;

@compute @workgroup_size(1)
fn accept_round_greedy() {
  var r = p.K;
  for (var i = 0u; i < p.K; i++) {
    if (tokens[1u + i] != target_tok[i]) {
      r = i;
      break;
    }
  }
  close_round(r, target_tok[r]);
}

// The round's bookkeeping once the rule gave (r, t): the round counter, the record, the emitted count and
// done, keep and the position, the next round's t_last and the draft's feed (one invocation).
fn close_round(r: u32, t: i32) {
  let round = u32(state[ROUND]);
  state[ROUND] = i32(round + 1u);
  let base = round * (p.K + 2u);
  let rec = round < p.rec_cap;
  if (state[DONE] != 0) {
    if (rec) {
      for (var i = 0u; i < p.K + 2u; i++) { result[base + i] = -1; }
    }
    state[KEEP] = 0;
    return;
  }
  if (rec) {
    result[base] = i32(r);
    result[base + 1u] = t;
    for (var i = 0u; i < p.K; i++) { result[base + 2u + i] = tokens[1u + i]; }
  }
  var emitted = u32(state[EMITTED]);
  var done = false;
  for (var i = 0u; i <= r; i++) {
    var tok = t;
    if (i < r) { tok = tokens[1u + i]; }
    if (p.stop_eos != 0u && is_eos(tok)) { done = true; break; }
    emitted++;
    if (emitted >= p.steps) { done = true; break; }
  }
  state[EMITTED] = i32(emitted);
  var keep = i32(r) + 1;
  if (done) {
    state[DONE] = 1;
    keep = 0;
  }
  state[KEEP] = keep;
  state[POS] += keep;
  if (p.feed_len == 2u) {
    feed[0] = tokens[r]; // d_r, or t_last when r = 0
    feed[1] = t;
  } else {
    feed[0] = t;
  }
  tokens[0] = t;
}
