// sample.wgsl — next-token selection on the GPU, so decoding needs no readback per token.
//
//   greedy (τ = 0):  tok = argmax_v x_v (lowest index on ties)
//   otherwise:       p = softmax(x / τ)
//                    top-k: keep p_v ≥ θ_k, θ_k the largest θ with #{p ≥ θ} ≥ k
//                    top-p: keep p_v ≥ θ_p, θ_p the largest θ with Σ{p ≥ θ, p ≥ θ_k} ≥ top_p · Σ{p ≥ θ_k}
//                    tok = the first v with Σ_{u ≤ v, kept} p_u > U · Σ_{kept} p,  U = hash(seed, step) ∈ [0, 1)
//
// Ground truth: transformers' TemperatureLogitsWarper → TopKLogitsWarper → TopPLogitsWarper, then
// multinomial sampling (lib/decode/sampling.ts is the host twin; thresholds replace sorting, so ties at
// the cut are all kept). U is a PCG hash of (seed, step): reproducible, no state on the GPU.
// Bindings: logits (1, (B, V)), tokens (2, (B, cap): history, slot `step`), next (3, (B): the next
// step's input ids), dist (4, (B, V): the kept, normalised distribution; written by `distribution`).
// One workgroup of 256 owns one row b; thresholds by 40-step bisection with workgroup reductions.
// sample_round: `sample` inside a speculative round loop that never reads back, with the seed
// pcg(seed ^ pcg(2·round)) of the round counter counts[word] (binding 5; `roundSeed(seed, round, 0)`);
// with_dist = 1 also writes `distribution`'s output into dist (binding 4), the same values in one
// dispatch instead of two.
// sample_next: `sample` for plain decoding that never reads back (one row): the step is
// counts[word] − step (a position counter less the prompt), written to that slot of tokens and `next`,
// then counts[word] += 1 (the next step's position).

struct Params {
  B: u32, V: u32, cap: u32, step: u32, seed: u32, top_k: u32, inv_tau: f32, top_p: f32, word: u32,
  with_dist: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> tokens: array<i32>;
@group(0) @binding(3) var<storage, read_write> next: array<i32>;
@group(0) @binding(4) var<storage, read_write> dist: array<f32>;
@group(0) @binding(5) var<storage, read_write> counts: array<i32>;

var<workgroup> idx_red: array<u32, 256>;
var<workgroup> chunk: array<f32, 256>;
var<private> draw_seed: u32;
var<private> draw_step: u32;

fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

// U ∈ [0, 1) from (seed, row, step): 24 random bits.
fn uniform01(b: u32) -> f32 {
  let h = pcg(pcg(draw_seed ^ pcg(draw_step)) + b);
  return f32(h >> 8u) / 16777216.0;
}

fn argmax_row(li: u32, base: u32) -> u32 {
  var best = NEG_BIG;
  var bi = 0xffffffffu;
  for (var v = li; v < p.V; v += 256u) {
    let x = logits[base + v];
    if (x > best) { best = x; bi = v; }
  }
  let m = wg_max(li, best);
  if (best != m) { bi = 0xffffffffu; }
  idx_red[li] = bi;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (li < k) { idx_red[li] = min(idx_red[li], idx_red[li + k]); }
    workgroupBarrier();
  }
  let r = idx_red[0];
  workgroupBarrier();
  return r;
}

fn prob(base: u32, v: u32, m: f32, z: f32) -> f32 {
  return exp((logits[base + v] - m) * p.inv_tau) / z;
}

// The kept set's threshold θ (keep p ≥ θ) for row `base`, given the row max m and normaliser z.
fn threshold(li: u32, base: u32, m: f32, z: f32) -> f32 {
  var theta_k = 0.0;
  if (p.top_k > 0u && p.top_k < p.V) {
    var lo = 0.0;
    var hi = 1.0;
    for (var it = 0u; it < 40u; it++) {
      let mid = 0.5 * (lo + hi);
      var c = 0.0;
      for (var v = li; v < p.V; v += 256u) { if (prob(base, v, m, z) >= mid) { c += 1.0; } }
      if (wg_sum(li, c) >= f32(p.top_k)) { lo = mid; } else { hi = mid; }
    }
    theta_k = lo;
  }
  if (p.top_p >= 1.0) { return theta_k; }
  var zk = 0.0;
  for (var v = li; v < p.V; v += 256u) { let q = prob(base, v, m, z); if (q >= theta_k) { zk += q; } }
  zk = wg_sum(li, zk);
  var lo = theta_k;
  var hi = 1.0;
  for (var it = 0u; it < 40u; it++) {
    let mid = 0.5 * (lo + hi);
    var s = 0.0;
    for (var v = li; v < p.V; v += 256u) { let q = prob(base, v, m, z); if (q >= mid) { s += q; } }
    if (wg_sum(li, s) >= p.top_p * zk) { lo = mid; } else { hi = mid; }
  }
  return lo;
}

fn softmax_stats(li: u32, base: u32) -> vec2f {
  var m = NEG_BIG;
  for (var v = li; v < p.V; v += 256u) { m = max(m, logits[base + v]); }
  m = wg_max(li, m);
  var z = 0.0;
  for (var v = li; v < p.V; v += 256u) { z += exp((logits[base + v] - m) * p.inv_tau); }
  return vec2f(m, wg_sum(li, z));
}

// Bindings: logits (1), tokens (2), next (3).
@compute @workgroup_size(256)
fn sample(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  draw_seed = p.seed;
  draw_step = p.step;
  sample_row(wg.x, li);
}

// Bindings: logits (1), tokens (2), next (3), counts (5). One row.
var<workgroup> next_pos: u32;

@compute @workgroup_size(256)
fn sample_next(@builtin(local_invocation_index) li: u32) {
  if (li == 0u) { next_pos = u32(counts[p.word]); }
  let pos = workgroupUniformLoad(&next_pos); // invocation 0 alone reads and writes the counter
  draw_seed = p.seed;
  draw_step = pos - p.step;
  sample_row(0u, li);
  if (li == 0u) { counts[p.word] = i32(pos + 1u); }
}

// Bindings: logits (1), tokens (2), next (3), counts (5).
@compute @workgroup_size(256)
fn sample_round(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  draw_seed = pcg(p.seed ^ pcg(2u * u32(counts[p.word])));
  draw_step = p.step;
  sample_row(wg.x, li);
  if (p.with_dist != 0u) {
    workgroupBarrier(); // sample_row's last reads of workgroup memory before dist_row reuses it
    dist_row(wg.x, li);
  }
}

fn sample_row(b: u32, li: u32) {
  let base = b * p.V;
  var tok = 0u;
  if (p.inv_tau <= 0.0) {
    tok = argmax_row(li, base);
  } else {
    let mz = softmax_stats(li, base);
    let theta = threshold(li, base, mz.x, mz.y);
    // Inverse CDF over the kept probabilities in index order: each invocation owns a contiguous chunk.
    let per = (p.V + 255u) / 256u;
    let v0 = li * per;
    var s = 0.0;
    for (var v = v0; v < min(v0 + per, p.V); v++) { let q = prob(base, v, mz.x, mz.y); if (q >= theta) { s += q; } }
    chunk[li] = s;
    let total = wg_sum(li, s);
    if (li == 0u) {
      let target_mass = uniform01(b) * total;
      var acc = 0.0;
      var c = 0u;
      loop {
        if (c >= 255u || acc + chunk[c] > target_mass) { break; }
        acc += chunk[c];
        c++;
      }
      var last = 0u;
      var found = false;
      for (var v = c * per; v < min(c * per + per, p.V); v++) {
        let q = prob(base, v, mz.x, mz.y);
        if (q >= theta) {
          last = v;
          acc += q;
          if (acc > target_mass) { found = true; break; }
        }
      }
      idx_red[0] = last;
    }
    workgroupBarrier();
    tok = idx_red[0];
  }
  if (li == 0u) {
    tokens[b * p.cap + draw_step] = i32(tok);
    next[b] = i32(tok);
  }
}

// Bindings: logits (1), dist (4). The kept distribution, normalised (for tests and speculative decoding).
@compute @workgroup_size(256)
fn distribution(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  dist_row(wg.x, li);
}

fn dist_row(b: u32, li: u32) {
  let base = b * p.V;
  if (p.inv_tau <= 0.0) {
    let tok = argmax_row(li, base);
    for (var v = li; v < p.V; v += 256u) { dist[base + v] = select(0.0, 1.0, v == tok); }
    return;
  }
  let mz = softmax_stats(li, base);
  let theta = threshold(li, base, mz.x, mz.y);
  var s = 0.0;
  for (var v = li; v < p.V; v += 256u) { let q = prob(base, v, mz.x, mz.y); if (q >= theta) { s += q; } }
  let total = wg_sum(li, s);
  for (var v = li; v < p.V; v += 256u) {
    let q = prob(base, v, mz.x, mz.y);
    dist[base + v] = select(0.0, q / total, q >= theta);
  }
}
