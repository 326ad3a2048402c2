// fused_draft.wgsl — a small Llama's whole greedy draft round in one workgroup (issue #7).
//
// At the bundled size every decoding forward is bound by its dispatches (~7 µs each; a one-token step
// of a two-layer draft is ~20 of them), so a draft of few layers costs almost as much a token as the
// target. Here one workgroup of 256 runs every step of a round in one dispatch. Each step, for token t
// at position pos, is the Llama forward of lib/models/llama.ts (Hugging Face LlamaForCausalLM):
//
//   x = E[t]
//   for each layer ℓ:
//     xn = x · rsqrt(mean x² + ε) · w₁
//     q, k, v = xn·Wqᵀ, xn·Wkᵀ, xn·Wvᵀ; q, k rotated (rotate_half RoPE, the cos/sin table of rope.ts)
//     K_ℓ[pos], V_ℓ[pos] = k, v                                    (the draft's own KV cache)
//     a_h = Σ_{s ≤ pos} softmax_s(q_h · K_ℓ[s, g] / √P) V_ℓ[s, g],   g = h / (H / H_kv)
//     x += a · Woᵀ
//     xn = x · rsqrt(mean x² + ε) · w₂
//     x += (silu(xn·Wgᵀ) ⊙ xn·Wuᵀ) · Wdᵀ
//   d = argmax_v (x · rsqrt(mean x² + ε) · w_f) · W_head[v]          (lowest index on ties)
//
// round (greedy speculative round, state word 0 = pos, the position of t_last): with feed = 2 the
// draft is kept one token behind: it re-feeds the token before t_last (next[0]) at pos − 1 without the
// head, then t_last (next[1]) at pos → d_1, d_1 at pos + 1 → d_2, …, d_{K−1} → d_K; with feed = 1
// (a one-token prompt) t_last = next[0] → d_1 … d_K, then d_K at pos + K without the head, so that a
// fully accepted round finds it cached. d_i goes to tokens[i] (slot 0 is t_last). Positions past the
// accepted ones are rewritten by the next round, so nothing needs rolling back. Nothing runs once
// state word 2 (done) is set. with_logits writes each proposal's logits to logits_out (tests).
// prefill: tokens[first..first + n) at those positions, no head (lib/decode/fused_draft.ts cuts a
// prompt into dispatches of FUSED_DRAFT_PREFILL_CHUNK tokens).
//
// Layouts (lib/decode/fused_draft.ts packs them): every matrix transposed to (in, out), row-major, in
// groups of 8 outputs: f32 (two vec4<u32> a group, read as f32) or, with W_F16, f16 (one vec4<u32>,
// element 2w in the low half of word w). Per layer: [Wq | Wk | Wv] (D, (H + 2 H_kv) P), Wo (H P, D),
// Wg (D, F), Wu (D, F), Wd (F, D); then W_head (D, V). vecs (f32): E (V, D), then per layer w₁, w₂
// (D each), then w_f. kv (f32): (layers, cap, 2, H_kv P), K then V of each position.
// Workgroup memory (f32 words of sh): x, xn (D ≤ 256 each), q | k | v (≤ 512), the MLP's hidden (F ≤
// 768), and a scratch of 1536 that holds the products' partial sums or the attention scores of a chunk
// of heads (hc heads × positions ≤ 1536; the attention's weighted-sum partials go to the 1024 words
// after q, over k, v and the hidden). Products: invocation (g, s) sums its 8 outputs over rows s,
// s + S, …; the S partials are then added in order s = 0..S − 1.

override W_F16: bool = false;
// Timing only (bench/fused_draft_step.ts; wrong outputs): bit 1 leaves out the attention blocks, 2 the
// head's products, 4 the MLP blocks.
override SKIP: u32 = 0u;

struct Params {
  D: u32, H: u32, Hkv: u32, P: u32, F: u32, V: u32, layers: u32, cap: u32,
  K: u32, feed: u32, with_logits: u32, n: u32, eps: f32, layer_groups: u32, head_group: u32, first: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> mats: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> vecs: array<f32>;
@group(0) @binding(3) var<storage, read> rope: array<f32>;
@group(0) @binding(4) var<storage, read_write> kv: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> tokens: array<i32>;
@group(0) @binding(6) var<storage, read> next: array<i32>;
@group(0) @binding(7) var<storage, read> state: array<i32>;
@group(0) @binding(8) var<storage, read_write> logits_out: array<f32>;

const X = 0u;
const XN = 256u;
const QKV = 512u;
const HID = 1024u;
// The attention's weighted-sum partials (1024 words over k, v and the hidden; q stays).
const PART = 768u;
const SCR = 1792u;
const SCR_N = 1536u;
var<workgroup> sh: array<f32, 3328>;
var<workgroup> u_pos: i32;
var<workgroup> u_done: i32;
var<workgroup> best_i: array<u32, 256>;

// The 8 weights of group gi (outputs 8j..8j + 7 of one row of a transposed matrix).
fn group8(gi: u32) -> Pair {
  if (W_F16) {
    let u = mats[gi];
    return Pair(half4(u.xy), half4(u.zw));
  }
  return Pair(bitcast<vec4f>(mats[2u * gi]), bitcast<vec4f>(mats[2u * gi + 1u]));
}

// y = in · W (in: sh[src..src + I), W: (I, O) from group w0). mode 0: sh[dst + o] = y_o;
// 1: sh[dst + o] += y_o; 2: sh[dst + o] = silu(sh[dst + o]) · y_o. O ≤ 2048, O % 8 = 0.
fn product(li: u32, w0: u32, src: u32, I: u32, O: u32, dst: u32, mode: u32) {
  let G = O / 8u;
  let S = max(1u, min(256u / G, SCR_N / O));
  let g = li % G;
  let s = li / G;
  if (s < S) {
    var a = vec4f(0.0);
    var b = vec4f(0.0);
    var i = s;
    // Four rows' loads issued before their sums.
    for (; i + 3u * S < I; i += 4u * S) {
      let w1 = group8(w0 + i * G + g);
      let w2 = group8(w0 + (i + S) * G + g);
      let w3 = group8(w0 + (i + 2u * S) * G + g);
      let w4 = group8(w0 + (i + 3u * S) * G + g);
      let x1 = sh[src + i];
      let x2 = sh[src + i + S];
      let x3 = sh[src + i + 2u * S];
      let x4 = sh[src + i + 3u * S];
      a += x1 * w1.a;
      b += x1 * w1.b;
      a += x2 * w2.a;
      b += x2 * w2.b;
      a += x3 * w3.a;
      b += x3 * w3.b;
      a += x4 * w4.a;
      b += x4 * w4.b;
    }
    for (; i < I; i += S) {
      let w = group8(w0 + i * G + g);
      let x = sh[src + i];
      a += x * w.a;
      b += x * w.b;
    }
    let r = SCR + s * O + 8u * g;
    sh[r] = a.x;
    sh[r + 1u] = a.y;
    sh[r + 2u] = a.z;
    sh[r + 3u] = a.w;
    sh[r + 4u] = b.x;
    sh[r + 5u] = b.y;
    sh[r + 6u] = b.z;
    sh[r + 7u] = b.w;
  }
  workgroupBarrier();
  for (var o = li; o < O; o += 256u) {
    var y = 0.0;
    for (var k = 0u; k < S; k++) {
      y += sh[SCR + k * O + o];
    }
    if (mode == 0u) {
      sh[dst + o] = y;
    } else if (mode == 1u) {
      sh[dst + o] += y;
    } else {
      sh[dst + o] = silu(sh[dst + o]) * y;
    }
  }
  workgroupBarrier();
}

// xn = x · rsqrt(mean x² + ε) · w (w at vecs[wv]).
fn rms_norm(li: u32, wv: u32) {
  var ss = 0.0;
  for (var i = li; i < p.D; i += 256u) {
    ss += sh[X + i] * sh[X + i];
  }
  let inv = inverseSqrt(wg_sum(li, ss) / f32(p.D) + p.eps);
  for (var i = li; i < p.D; i += 256u) {
    sh[XN + i] = sh[X + i] * inv * vecs[wv + i];
  }
  workgroupBarrier();
}

// The cache's vec4 index of (layer, position, K or V, element 4e).
fn kv_at(layer: u32, pos: u32, which: u32, e4: u32) -> u32 {
  let kvd4 = p.Hkv * p.P / 4u;
  return ((layer * p.cap + pos) * 2u + which) * kvd4 + e4;
}

// One layer's attention block at `pos`, x += o_proj(attention); leaves xn free.
fn attention_block(li: u32, layer: u32, pos: u32) {
  let HP = p.H * p.P;
  let kvd = p.Hkv * p.P;
  let w0 = layer * p.layer_groups;
  rms_norm(li, p.V * p.D + layer * 2u * p.D);
  product(li, w0, XN, p.D, HP + 2u * kvd, QKV, 0u);
  // rotate_half RoPE of q and k (their heads are contiguous in sh: H of q, then H_kv of k).
  let half = p.P / 2u;
  for (var j = li; j < (p.H + p.Hkv) * half; j += 256u) {
    let base = QKV + (j / half) * p.P;
    let i = j % half;
    let c = rope[pos * p.P + i];
    let s = rope[pos * p.P + half + i];
    let x1 = sh[base + i];
    let x2 = sh[base + half + i];
    sh[base + i] = x1 * c - x2 * s;
    sh[base + half + i] = x2 * c + x1 * s;
  }
  workgroupBarrier();
  for (var e4 = li; e4 < kvd / 4u; e4 += 256u) {
    let k = QKV + HP + 4u * e4;
    let v = k + kvd;
    kv[kv_at(layer, pos, 0u, e4)] = vec4f(sh[k], sh[k + 1u], sh[k + 2u], sh[k + 3u]);
    kv[kv_at(layer, pos, 1u, e4)] = vec4f(sh[v], sh[v + 1u], sh[v + 2u], sh[v + 3u]);
  }
  storageBarrier();
  workgroupBarrier();
  // The heads in chunks of hc (a power of two, hc · (pos + 1) scores in the scratch); within a chunk,
  // head hh owns invocations hh·m … hh·m + m − 1 (m = 256 / hc) for its max, sum and weighted sum.
  let T = pos + 1u;
  let P4 = p.P / 4u;
  var hc = 1u;
  while (hc * 2u <= p.H && hc * 2u * T <= SCR_N && 256u / (hc * 2u) >= P4) {
    hc *= 2u;
  }
  let m = 256u / hc;
  let seg = li / m;
  let k = li % m;
  let scale = inverseSqrt(f32(p.P));
  for (var h0 = 0u; h0 < p.H; h0 += hc) {
    let hn = min(hc, p.H - h0);
    // s[hh, t] = q_h · K[t, g] / √P
    for (var j = li; j < hn * T; j += 256u) {
      let h = h0 + j / T;
      let t = j % T;
      let g = h / (p.H / p.Hkv);
      var dot = vec4f(0.0);
      for (var e4 = 0u; e4 < P4; e4++) {
        let qe = QKV + h * p.P + 4u * e4;
        dot += vec4f(sh[qe], sh[qe + 1u], sh[qe + 2u], sh[qe + 3u]) * kv[kv_at(layer, t, 0u, g * P4 + e4)];
      }
      sh[SCR + j] = lane_sum(dot) * scale;
    }
    workgroupBarrier();
    // Each head's max, then e = exp(s − max) in place and its sum, by trees over its m invocations.
    var mx = NEG_BIG;
    if (seg < hn) {
      for (var t = k; t < T; t += m) {
        mx = max(mx, sh[SCR + seg * T + t]);
      }
    }
    wg_red[li] = mx;
    workgroupBarrier();
    for (var stride = m / 2u; stride > 0u; stride >>= 1u) {
      if (k < stride) {
        wg_red[li] = max(wg_red[li], wg_red[li + stride]);
      }
      workgroupBarrier();
    }
    mx = wg_red[seg * m];
    var l = 0.0;
    if (seg < hn) {
      for (var t = k; t < T; t += m) {
        let e = exp(sh[SCR + seg * T + t] - mx);
        sh[SCR + seg * T + t] = e;
        l += e;
      }
    }
    workgroupBarrier();
    wg_red[li] = l;
    workgroupBarrier();
    for (var stride = m / 2u; stride > 0u; stride >>= 1u) {
      if (k < stride) {
        wg_red[li] += wg_red[li + stride];
      }
      workgroupBarrier();
    }
    // a_h = Σ_t e_t V[t, g] / Σ e: invocation (e4, r) of head hh sums 4 elements over positions r,
    // r + R, … (R = m / (P/4)); its partial parked past q (k, v and the MLP's hidden are free here),
    // then the R partials added in order.
    let R = m / P4;
    let e4 = k % P4;
    let r = k / P4;
    if (seg < hn) {
      let g = (h0 + seg) / (p.H / p.Hkv);
      let sc = SCR + seg * T;
      var acc = vec4f(0.0);
      var t = r;
      for (; t + R < T; t += 2u * R) {
        let v1 = kv[kv_at(layer, t, 1u, g * P4 + e4)];
        let v2 = kv[kv_at(layer, t + R, 1u, g * P4 + e4)];
        acc += sh[sc + t] * v1;
        acc += sh[sc + t + R] * v2;
      }
      if (t < T) {
        acc += sh[sc + t] * kv[kv_at(layer, t, 1u, g * P4 + e4)];
      }
      let o = PART + 4u * li;
      sh[o] = acc.x;
      sh[o + 1u] = acc.y;
      sh[o + 2u] = acc.z;
      sh[o + 3u] = acc.w;
    }
    workgroupBarrier();
    for (var j = li; j < hn * p.P; j += 256u) {
      let hh = j / p.P;
      let e = j % p.P;
      var o = 0.0;
      for (var rr = 0u; rr < R; rr++) {
        o += sh[PART + 4u * (hh * m + rr * P4 + e / 4u) + e % 4u];
      }
      sh[XN + (h0 + hh) * p.P + e] = o / wg_red[hh * m];
    }
    workgroupBarrier();
  }
  product(li, w0 + p.D * (HP + 2u * kvd) / 8u, XN, HP, p.D, X, 1u);
}

// One layer's MLP block, x += down(silu(gate(xn)) ⊙ up(xn)).
fn mlp_block(li: u32, layer: u32) {
  let HP = p.H * p.P;
  let kvd = p.Hkv * p.P;
  let wg0 = layer * p.layer_groups + (p.D * (HP + 2u * kvd) + HP * p.D) / 8u;
  rms_norm(li, p.V * p.D + layer * 2u * p.D + p.D);
  product(li, wg0, XN, p.D, p.F, HID, 0u);
  product(li, wg0 + p.D * p.F / 8u, XN, p.D, p.F, HID, 2u);
  product(li, wg0 + 2u * p.D * p.F / 8u, HID, p.F, p.D, X, 1u);
}

// Every layer for token `tok` at `pos` (writes the cache at pos).
fn layers_step(li: u32, tok: u32, pos: u32) {
  for (var i = li; i < p.D; i += 256u) {
    sh[X + i] = vecs[tok * p.D + i];
  }
  workgroupBarrier();
  for (var layer = 0u; layer < p.layers; layer++) {
    if ((SKIP & 1u) == 0u) {
      attention_block(li, layer, pos);
    }
    if ((SKIP & 4u) == 0u) {
      mlp_block(li, layer);
    }
  }
}

// The final norm, the head and its argmax (lowest index on ties); `slot` ≥ 1 also writes the logits
// to logits_out row slot − 1 when with_logits is set.
fn head_argmax(li: u32, slot: u32) -> u32 {
  rms_norm(li, p.V * p.D + p.layers * 2u * p.D);
  let G = p.V / 8u;
  var best = NEG_BIG;
  var idx = 0xffffffffu;
  // Groups g and g + 256 together, four rows at a time: 8 groups' loads in flight per invocation.
  for (var g = li; g < G && (SKIP & 2u) == 0u; g += 512u) {
    let g2 = min(g + 256u, G - 1u); // a repeat of g's last group when past the end (not counted)
    var a = vec4f(0.0);
    var b = vec4f(0.0);
    var a2 = vec4f(0.0);
    var b2 = vec4f(0.0);
    var i = 0u;
    for (; i + 3u < p.D; i += 4u) {
      let w1 = group8(p.head_group + i * G + g);
      let w2 = group8(p.head_group + (i + 1u) * G + g);
      let w3 = group8(p.head_group + (i + 2u) * G + g);
      let w4 = group8(p.head_group + (i + 3u) * G + g);
      let u1 = group8(p.head_group + i * G + g2);
      let u2 = group8(p.head_group + (i + 1u) * G + g2);
      let u3 = group8(p.head_group + (i + 2u) * G + g2);
      let u4 = group8(p.head_group + (i + 3u) * G + g2);
      let x = vec4f(sh[XN + i], sh[XN + i + 1u], sh[XN + i + 2u], sh[XN + i + 3u]);
      a += x.x * w1.a;
      b += x.x * w1.b;
      a += x.y * w2.a;
      b += x.y * w2.b;
      a += x.z * w3.a;
      b += x.z * w3.b;
      a += x.w * w4.a;
      b += x.w * w4.b;
      a2 += x.x * u1.a;
      b2 += x.x * u1.b;
      a2 += x.y * u2.a;
      b2 += x.y * u2.b;
      a2 += x.z * u3.a;
      b2 += x.z * u3.b;
      a2 += x.w * u4.a;
      b2 += x.w * u4.b;
    }
    for (; i < p.D; i++) {
      let w = group8(p.head_group + i * G + g);
      let u = group8(p.head_group + i * G + g2);
      a += sh[XN + i] * w.a;
      b += sh[XN + i] * w.b;
      a2 += sh[XN + i] * u.a;
      b2 += sh[XN + i] * u.b;
    }
    var y = array<f32, 16>(a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w, a2.x, a2.y, a2.z, a2.w, b2.x, b2.y, b2.z, b2.w);
    let n = select(8u, 16u, g + 256u < G);
    for (var k = 0u; k < n; k++) {
      let v = select(8u * g + k, 8u * (g + 256u) + k - 8u, k >= 8u);
      if (y[k] > best) {
        best = y[k];
        idx = v;
      }
      if (p.with_logits != 0u) {
        logits_out[(slot - 1u) * p.V + v] = y[k];
      }
    }
  }
  // Tree over invocations: the larger value, the lower index among equal ones.
  wg_red[li] = best;
  best_i[li] = idx;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (li < k) {
      let v = wg_red[li + k];
      let j = best_i[li + k];
      if (v > wg_red[li] || (v == wg_red[li] && j < best_i[li])) {
        wg_red[li] = v;
        best_i[li] = j;
      }
    }
    workgroupBarrier();
  }
  let d = best_i[0];
  workgroupBarrier();
  return select(0u, d, d < p.V);
}

// Bindings 1–8. One workgroup.
@compute @workgroup_size(256)
fn round(@builtin(local_invocation_index) li: u32) {
  if (li == 0u) {
    u_pos = state[0];
    u_done = state[2];
  }
  let pos = u32(workgroupUniformLoad(&u_pos));
  if (workgroupUniformLoad(&u_done) != 0) {
    return;
  }
  var tok: u32;
  if (p.feed == 2u) {
    layers_step(li, u32(next[0]), pos - 1u);
    tok = u32(next[1]);
  } else {
    tok = u32(next[0]);
  }
  for (var i = 1u; i <= p.K; i++) {
    layers_step(li, tok, pos + i - 1u);
    tok = head_argmax(li, i);
    if (li == 0u) {
      tokens[i] = i32(tok);
    }
  }
  if (p.feed == 1u) {
    layers_step(li, tok, pos + p.K);
  }
}

// Bindings 1–5 (tokens: the prompt ids). One workgroup.
@compute @workgroup_size(256)
fn prefill(@builtin(local_invocation_index) li: u32) {
  for (var i = p.first; i < p.first + p.n; i++) {
    layers_step(li, u32(tokens[i]), i);
  }
}
