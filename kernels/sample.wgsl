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
// sample_next: `sample` for decoding that never reads back (grid (B), a row per workgroup): the step is
// counts[word] − step (a position counter less the prompt), written to that slot of tokens and `next`;
// with one row it then sets counts[word] += 1 (the next step's position) itself, with B > 1 the caller
// dispatches count_up after it (a workgroup cannot know when the others have read the counter).
// Split argmax (greedy decoding of a large vocabulary, where one workgroup walking a row of 128K logits
// costs ~0.13 ms): argmax_part gives each slice of S = ⌈V / G⌉ logits of a row its own workgroup (grid
// (G, B)) and writes the slice's (max, first index of it) to parts (binding 6, (B, G, 2) f32, the index
// as an exact f32 value; an empty or all-NEG_BIG slice gives index V); then sample, sample_next or
// sample_round with nparts = G and the parts bound as their logits (binding 1) reduce the G pairs: the
// largest value, the lowest index among equal ones — the row's first maximum, as the one-pass walk.

struct Params {
  B: u32, V: u32, cap: u32, step: u32, seed: u32, top_k: u32, inv_tau: f32, top_p: f32, word: u32,
  with_dist: u32, nparts: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> tokens: array<i32>;
@group(0) @binding(3) var<storage, read_write> next: array<i32>;
@group(0) @binding(4) var<storage, read_write> dist: array<f32>;
@group(0) @binding(5) var<storage, read_write> counts: array<i32>;
@group(0) @binding(6) var<storage, read_write> parts: array<f32>;

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

// Logits v, v + s, …, v + 7s of row `base` (0 at or past `end`), loaded together (_common.wgsl Eight).
fn lg(base: u32, v: u32, end: u32) -> f32 {
  if (v >= end) { return 0.0; }
  return logits[base + v];
}

fn logit8(base: u32, v: u32, s: u32, end: u32) -> Eight {
  return Eight(vec4f(lg(base, v, end), lg(base, v + s, end), lg(base, v + 2u * s, end), lg(base, v + 3u * s, end)),
               vec4f(lg(base, v + 4u * s, end), lg(base, v + 5u * s, end), lg(base, v + 6u * s, end),
                     lg(base, v + 7u * s, end)));
}

// The invocation's running argmax (the first of equal maxima: entries come in index order).
var<private> am_best: f32;
var<private> am_idx: u32;

fn arg_in(x: f32, v: u32, end: u32) {
  if (v < end && x > am_best) {
    am_best = x;
    am_idx = v;
  }
}

// The running argmax over logits v0 + li, v0 + li + 256, … below `end` of the row at `base`.
fn argmax_walk(li: u32, base: u32, v0: u32, end: u32) {
  am_best = NEG_BIG;
  am_idx = 0xffffffffu;
  for (var v = v0 + li; v < end; v += 8u * 256u) {
    let e = logit8(base, v, 256u, end);
    arg_in(e.a.x, v, end);
    arg_in(e.a.y, v + 256u, end);
    arg_in(e.a.z, v + 512u, end);
    arg_in(e.a.w, v + 768u, end);
    arg_in(e.b.x, v + 1024u, end);
    arg_in(e.b.y, v + 1280u, end);
    arg_in(e.b.z, v + 1536u, end);
    arg_in(e.b.w, v + 1792u, end);
  }
}

// The lowest index of the workgroup's largest running value (every invocation gets it).
fn argmax_reduce(li: u32) -> u32 {
  let best = am_best;
  var bi = am_idx;
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

// Row b's argmax: from its logits, or with p.nparts = G from its G slice pairs (bound as the logits).
fn argmax_row(li: u32, b: u32) -> u32 {
  if (p.nparts == 0u) {
    argmax_walk(li, b * p.V, 0u, p.V);
    return argmax_reduce(li);
  }
  am_best = NEG_BIG;
  am_idx = 0xffffffffu;
  for (var g = li; g < p.nparts; g += 256u) {
    let o = 2u * (b * p.nparts + g);
    let i = u32(logits[o + 1u]);
    if (i < p.V && logits[o] > am_best) {
      am_best = logits[o];
      am_idx = i;
    }
  }
  return argmax_reduce(li);
}

// Bindings: logits (1), parts (6). Slice wg.x of row wg.y: its maximum and the first index of it.
@compute @workgroup_size(256)
fn argmax_part(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let per = (p.V + p.nparts - 1u) / p.nparts;
  let v0 = min(wg.x * per, p.V);
  argmax_walk(li, wg.y * p.V, v0, min(v0 + per, p.V));
  let i = argmax_reduce(li);
  if (li == 0u) {
    let o = 2u * (wg.y * p.nparts + wg.x);
    if (i < p.V) {
      parts[o] = logits[wg.y * p.V + i];
      parts[o + 1u] = f32(i);
    } else {
      parts[o] = NEG_BIG;
      parts[o + 1u] = f32(p.V);
    }
  }
}

fn prob(base: u32, v: u32, m: f32, z: f32) -> f32 {
  return exp((logits[base + v] - m) * p.inv_tau) / z;
}

// Probabilities of logit8's entries (0 at or past `end`).
fn prob8(base: u32, v: u32, s: u32, end: u32, m: f32, z: f32) -> Eight {
  let e = logit8(base, v, s, end);
  let k = vec4u(0u, 1u, 2u, 3u);
  let ok_a = (vec4u(v) + k * s) < vec4u(end);
  let ok_b = (vec4u(v) + (k + 4u) * s) < vec4u(end);
  return Eight(select(vec4f(0.0), exp((e.a - m) * p.inv_tau) / z, ok_a),
               select(vec4f(0.0), exp((e.b - m) * p.inv_tau) / z, ok_b));
}

// Counts (kind 0) or sums (kind 1) the probabilities ≥ θ of a row, strided by 256 from li, in index order.
fn kept_row(li: u32, base: u32, m: f32, z: f32, theta: f32, kind: u32) -> f32 {
  var acc = 0.0;
  for (var v = li; v < p.V; v += 8u * 256u) {
    let e = prob8(base, v, 256u, p.V, m, z);
    acc = kept_in(acc, e.a.x, theta, kind);
    acc = kept_in(acc, e.a.y, theta, kind);
    acc = kept_in(acc, e.a.z, theta, kind);
    acc = kept_in(acc, e.a.w, theta, kind);
    acc = kept_in(acc, e.b.x, theta, kind);
    acc = kept_in(acc, e.b.y, theta, kind);
    acc = kept_in(acc, e.b.z, theta, kind);
    acc = kept_in(acc, e.b.w, theta, kind);
  }
  return acc;
}

// Entries past the row are 0: they are never ≥ a θ > 0, and adding 0 to a sum of probabilities changes
// nothing.
fn kept_in(acc: f32, q: f32, theta: f32, kind: u32) -> f32 {
  if (q < theta) { return acc; }
  if (kind == 0u) { return acc + 1.0; }
  return acc + q;
}

// The kept set's threshold θ (keep p ≥ θ) for row `base`, given the row max m and normaliser z.
fn threshold(li: u32, base: u32, m: f32, z: f32) -> f32 {
  var theta_k = 0.0;
  if (p.top_k > 0u && p.top_k < p.V) {
    var lo = 0.0;
    var hi = 1.0;
    for (var it = 0u; it < 40u; it++) {
      let mid = 0.5 * (lo + hi);
      let c = kept_row(li, base, m, z, mid, 0u);
      if (wg_sum(li, c) >= f32(p.top_k)) { lo = mid; } else { hi = mid; }
    }
    theta_k = lo;
  }
  if (p.top_p >= 1.0) { return theta_k; }
  let zk = wg_sum(li, kept_row(li, base, m, z, theta_k, 1u));
  var lo = theta_k;
  var hi = 1.0;
  for (var it = 0u; it < 40u; it++) {
    let mid = 0.5 * (lo + hi);
    let s = kept_row(li, base, m, z, mid, 1u);
    if (wg_sum(li, s) >= p.top_p * zk) { lo = mid; } else { hi = mid; }
  }
  return lo;
}

fn softmax_stats(li: u32, base: u32) -> vec2f {
  var m = NEG_BIG;
  for (var v = li; v < p.V; v += 8u * 256u) {
    let e = logit8(base, v, 256u, p.V);
    let k = vec4u(0u, 1u, 2u, 3u);
    let ma = select(vec4f(NEG_BIG), e.a, (vec4u(v) + k * 256u) < vec4u(p.V));
    let mb = select(vec4f(NEG_BIG), e.b, (vec4u(v) + (k + 4u) * 256u) < vec4u(p.V));
    m = max(m, max(max(max(ma.x, ma.y), max(ma.z, ma.w)), max(max(mb.x, mb.y), max(mb.z, mb.w))));
  }
  m = wg_max(li, m);
  var z = 0.0;
  for (var v = li; v < p.V; v += 8u * 256u) {
    // exp(x − m)·… with z = 1: the unnormalised terms, 0 past the row, added in index order.
    let e = prob8(base, v, 256u, p.V, m, 1.0);
    z = ((((((((z + e.a.x) + e.a.y) + e.a.z) + e.a.w) + e.b.x) + e.b.y) + e.b.z) + e.b.w);
  }
  return vec2f(m, wg_sum(li, z));
}

// Bindings: logits (1), tokens (2), next (3).
@compute @workgroup_size(256)
fn sample(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  draw_seed = p.seed;
  draw_step = p.step;
  sample_row(wg.x, li);
}

// Bindings: logits (1), tokens (2), next (3), counts (5).
var<workgroup> next_pos: u32;

@compute @workgroup_size(256)
fn sample_next(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  if (li == 0u) { next_pos = u32(counts[p.word]); }
  let pos = workgroupUniformLoad(&next_pos); // invocation 0 alone reads (and with one row writes) the counter
  draw_seed = p.seed;
  draw_step = pos - p.step;
  sample_row(wg.x, li);
  if (p.B == 1u && li == 0u) { counts[p.word] = i32(pos + 1u); }
}

// counts[word] += 1, after a sample_next of B > 1 rows. Bindings: counts (5).
@compute @workgroup_size(1)
fn count_up() {
  counts[p.word] += 1;
}

// Bindings: logits (1), tokens (2), next (3), counts (5).
@compute @workgroup_size(256)
fn sample_round(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  draw_seed = pcg(p.seed ^ pcg(2u * u32(counts[p.word])));
  draw_step = p.step;
  let tok = sample_row(wg.x, li);
  if (p.with_dist != 0u) {
    workgroupBarrier(); // sample_row's last reads of workgroup memory before dist_row reuses it
    dist_row(wg.x, li, tok, true);
  }
}

// Draws row b's token, writes it to its slot of tokens and to next, and returns it (to every invocation).
fn sample_row(b: u32, li: u32) -> u32 {
  let base = b * p.V;
  var tok = 0u;
  if (p.inv_tau <= 0.0) {
    tok = argmax_row(li, b);
  } else {
    let mz = softmax_stats(li, base);
    let theta = threshold(li, base, mz.x, mz.y);
    // Inverse CDF over the kept probabilities in index order: each invocation owns a contiguous chunk.
    let per = (p.V + 255u) / 256u;
    let v0 = li * per;
    let end = min(v0 + per, p.V);
    var s = 0.0;
    for (var v = v0; v < end; v += 8u) {
      let e = prob8(base, v, 1u, end, mz.x, mz.y);
      s = kept_in(s, e.a.x, theta, 1u);
      s = kept_in(s, e.a.y, theta, 1u);
      s = kept_in(s, e.a.z, theta, 1u);
      s = kept_in(s, e.a.w, theta, 1u);
      s = kept_in(s, e.b.x, theta, 1u);
      s = kept_in(s, e.b.y, theta, 1u);
      s = kept_in(s, e.b.z, theta, 1u);
      s = kept_in(s, e.b.w, theta, 1u);
    }
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
      // The first kept v of chunk c where the running mass passes the target (else its last kept v).
      draw_acc = acc;
      draw_last = 0u;
      draw_found = false;
      let cend = min(c * per + per, p.V);
      for (var v = c * per; v < cend && !draw_found; v += 8u) {
        let e = prob8(base, v, 1u, cend, mz.x, mz.y);
        draw_in(e.a.x, v, cend, theta, target_mass);
        draw_in(e.a.y, v + 1u, cend, theta, target_mass);
        draw_in(e.a.z, v + 2u, cend, theta, target_mass);
        draw_in(e.a.w, v + 3u, cend, theta, target_mass);
        draw_in(e.b.x, v + 4u, cend, theta, target_mass);
        draw_in(e.b.y, v + 5u, cend, theta, target_mass);
        draw_in(e.b.z, v + 6u, cend, theta, target_mass);
        draw_in(e.b.w, v + 7u, cend, theta, target_mass);
      }
      idx_red[0] = draw_last;
    }
    workgroupBarrier();
    tok = idx_red[0];
  }
  if (li == 0u) {
    tokens[b * p.cap + draw_step] = i32(tok);
    next[b] = i32(tok);
  }
  return tok;
}

// The inverse CDF's walk through one chunk, entry by entry in index order until the mass passes.
var<private> draw_acc: f32;
var<private> draw_last: u32;
var<private> draw_found: bool;

fn draw_in(q: f32, v: u32, end: u32, theta: f32, target_mass: f32) {
  if (draw_found || v >= end || q < theta) { return; }
  draw_last = v;
  draw_acc += q;
  if (draw_acc > target_mass) { draw_found = true; }
}

// Bindings: logits (1), dist (4). The kept distribution, normalised (for tests and speculative decoding).
@compute @workgroup_size(256)
fn distribution(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  dist_row(wg.x, li, 0u, false);
}

// Row b's kept distribution; at temperature 0 the one-hot of `drawn` with `reuse` (sample_round's own
// argmax: the same pass again would double its cost), else of the row's argmax.
fn dist_row(b: u32, li: u32, drawn: u32, reuse: bool) {
  let base = b * p.V;
  if (p.inv_tau <= 0.0) {
    var tok = drawn;
    if (!reuse) { tok = argmax_row(li, b); }
    for (var v = li; v < p.V; v += 256u) { dist[base + v] = select(0.0, 1.0, v == tok); }
    return;
  }
  let mz = softmax_stats(li, base);
  let theta = threshold(li, base, mz.x, mz.y);
  let total = wg_sum(li, kept_row(li, base, mz.x, mz.y, theta, 1u));
  for (var v = li; v < p.V; v += 8u * 256u) {
    let e = prob8(base, v, 256u, p.V, mz.x, mz.y);
    put_dist(base, v, e.a.x, theta, total);
    put_dist(base, v + 256u, e.a.y, theta, total);
    put_dist(base, v + 512u, e.a.z, theta, total);
    put_dist(base, v + 768u, e.a.w, theta, total);
    put_dist(base, v + 1024u, e.b.x, theta, total);
    put_dist(base, v + 1280u, e.b.y, theta, total);
    put_dist(base, v + 1536u, e.b.z, theta, total);
    put_dist(base, v + 1792u, e.b.w, theta, total);
  }
}

fn put_dist(base: u32, v: u32, q: f32, theta: f32, total: f32) {
  if (v < p.V) { dist[base + v] = select(0.0, q / total, q >= theta); }
}
