// flash_attention.wgsl — fused causal GQA attention (FlashAttention-2), forward and backward, with no
// (L, S) score or probability matrix in memory.
//
// Shapes: q (B, L, H_q, P), k and v (B, cap, H_kv, P) of which the first S positions are valid (a KV
// cache may hold more), out (B, L, H_q, P), lse and D (B, H_q, L). Query head h reads kv head
// g = ⌊h / group⌋, group = H_q / H_kv. Query row i sits at absolute position off + i, off = S − L, and
// sees keys j ≤ off + i. With s_ij = scale · q_i · k_j:
//
//   forward:   m_i = max_j s_ij,  l_i = Σ_j exp(s_ij − m_i),  o_i = Σ_j exp(s_ij − m_i) v_j / l_i,
//              lse_i = m_i + log l_i
//   computed block by block over keys with the online softmax (FA2 Alg. 1): for each key block,
//   m' = max(m, rowmax(s)), α = exp(m − m'), l ← α l + Σ exp(s − m'), o ← α o + exp(s − m') V.
//   Exponentials are base 2: q is prescaled by scale2 = scale · log2(e), so exp(s − m) = exp2(s₂ − m₂).
//
//   backward (recomputation, FA2 Alg. 2), with P_ij = exp(s_ij − lse_i) and D_i = Σ_p dO_ip O_ip:
//     dV_j = Σ_i P_ij dO_i,  dP_ij = dO_i · v_j,  dS_ij = P_ij (dP_ij − D_i),
//     dQ_i = scale Σ_j dS_ij k_j,  dK_j = scale Σ_i dS_ij q_i,
//   dK and dV summed over the query heads of each kv group inside one workgroup (no atomics), or,
//   when there are too few key blocks to fill the GPU (hsplit = 1), one workgroup per query head
//   writing per-head partials (B, cap, H_q, P) that `backward_dkv_sum` adds over each group.
//
// Ground truth: the materialising path (lib/tensor/attention.ts: matmul + causal softmax + matmul)
// and attentionRef / attentionBackwardRef in lib/tensor/ops_ref.ts (float64 loops).
//
// Tiling (override constants; lib/tensor/flash_attention.ts picks them to fit the device's workgroup
// memory): a workgroup of TX × TY invocations owns BR = TY · RQ "rows" and walks "columns" in blocks
// of BC = 4 · TX. Invocation (tx, ty) owns rows ty·RQ … ty·RQ + RQ − 1 and columns tx + TX·jj
// (jj = 0..3, strided so that the TX lanes of a row read distinct banks), and the head-vector chunks
// c = tx + TX·cc (vec4 each, cc < NC) of its rows' accumulators. Rows are queries in `forward` and
// `backward_dq` (columns: keys), keys in `backward_dkv` (columns: queries). Head vectors are staged
// as vec4 rows padded to PS = PD/4 + 1 vec4 (bank conflicts), the (BR, BC) tiles as rows of TX + 1
// vec4. Accumulation is f32. Grid: (row blocks, heads, B); forward and dq take the last (heaviest)
// query blocks first. With PF, each invocation loads the next column block's vec4s (LOADS pairs) into
// registers while the current block is computed, and stores them into workgroup memory after the
// next barrier (global latency hidden behind the block's arithmetic).

struct Params {
  L: u32, S: u32, cap: u32, Hq: u32, Hkv: u32, P: u32, group: u32, nblk: u32,
  scale2: f32, n: u32, yrow: u32, hsplit: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;     // out (forward writes, backward reads)
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;   // (B, H_q, L), natural log
@group(0) @binding(6) var<storage, read> dO: array<f32>;
@group(0) @binding(7) var<storage, read_write> delta: array<f32>; // D (B, H_q, L)
@group(0) @binding(8) var<storage, read_write> dq: array<f32>;
@group(0) @binding(9) var<storage, read_write> dk: array<f32>;
@group(0) @binding(10) var<storage, read_write> dv: array<f32>;
@group(0) @binding(11) var<storage, read> part_k: array<f32>; // per-query-head partials (hsplit = 1)
@group(0) @binding(12) var<storage, read> part_v: array<f32>;

override TX: u32 = 8u;                   // invocations along columns (BC = 4·TX columns per block)
override TY: u32 = 32u;                  // invocations along rows
override RQ: u32 = 1u;                   // rows per invocation (RQ ≤ 4)
override PD: u32 = 64u;                  // head dim rounded up to a multiple of 4
override NT: u32 = TX * TY;
override BR: u32 = TY * RQ;
override BC: u32 = 4u * TX;
override PV: u32 = PD / 4u;              // vec4 per head vector
override PS: u32 = PV + 1u;              // padded stride of staged head vectors (vec4)
override CS: u32 = TX + 1u;              // padded stride of a (BR, BC) tile row (vec4)
override NC: u32 = (PV + TX - 1u) / TX;  // head-vector chunks per invocation (RQ · NC ≤ 16)
override LOADS: u32 = (BC * PV + NT - 1u) / NT; // vec4 pairs per invocation per column block (≤ 16)
override PF: bool = true;                // prefetch the next column block into registers

const LN2: f32 = 0.6931471805599453;
const LOG2E: f32 = 1.4426950408889634;

var<workgroup> rowA: array<vec4f, BR * PS>;  // forward, dq: Q rows (prescaled); dkv: K rows
var<workgroup> rowB: array<vec4f, BR * PS>;  // dq: dO rows; dkv: V rows
var<workgroup> colA: array<vec4f, BC * PS>;  // forward, dq: K block; dkv: Q block (prescaled)
var<workgroup> colB: array<vec4f, BC * PS>;  // forward, dq: V block; dkv: dO block
var<workgroup> tileA: array<vec4f, BR * CS>; // forward: P; dq: dS; dkv: P
var<workgroup> tileB: array<vec4f, BR * CS>; // dkv: dS
var<workgroup> red: array<f32, BR * TX>;     // forward: per-row partial maxima, then sums

// Element offset of query row (b, i, h) and of key/value row (b, j, g).
fn q_row(b: u32, i: u32, h: u32) -> u32 { return ((b * p.L + i) * p.Hq + h) * p.P; }
fn kv_row(b: u32, j: u32, g: u32) -> u32 { return ((b * p.cap + j) * p.Hkv + g) * p.P; }

// Components 4c … 4c+3 of a head vector at `base`, zero past P. One loader per buffer (WGSL has no
// generic storage pointers).
fn ld_q(base: u32, c: u32) -> vec4f {
  var x = vec4f(0.0);
  for (var d = 0u; d < 4u; d++) { if (4u * c + d < p.P) { x[d] = q[base + 4u * c + d]; } }
  return x;
}
fn ld_k(base: u32, c: u32) -> vec4f {
  var x = vec4f(0.0);
  for (var d = 0u; d < 4u; d++) { if (4u * c + d < p.P) { x[d] = k[base + 4u * c + d]; } }
  return x;
}
fn ld_v(base: u32, c: u32) -> vec4f {
  var x = vec4f(0.0);
  for (var d = 0u; d < 4u; d++) { if (4u * c + d < p.P) { x[d] = v[base + 4u * c + d]; } }
  return x;
}
fn ld_do(base: u32, c: u32) -> vec4f {
  var x = vec4f(0.0);
  for (var d = 0u; d < 4u; d++) { if (4u * c + d < p.P) { x[d] = dO[base + 4u * c + d]; } }
  return x;
}

// A column block's vec4 pairs owned by one invocation for staging: element e = li + t·NT of the
// (BC, PV) block, t < LOADS.
struct Pair { a: array<vec4f, 16>, b: array<vec4f, 16> }

// K, V rows k0 … k0 + BC − 1 of kv head g (zero past S).
fn fetch_kv(b: u32, g: u32, k0: u32, li: u32) -> Pair {
  var x: Pair;
  for (var t = 0u; t < LOADS; t++) {
    let e = li + t * NT;
    if (e < BC * PV && k0 + e / PV < p.S) {
      let base = kv_row(b, k0 + e / PV, g);
      x.a[t] = ld_k(base, e % PV);
      x.b[t] = ld_v(base, e % PV);
    }
  }
  return x;
}

// scale2 · Q and dO rows i0 … i0 + BC − 1 of query head h (zero past L).
fn fetch_qdo(b: u32, h: u32, i0: u32, li: u32) -> Pair {
  var x: Pair;
  for (var t = 0u; t < LOADS; t++) {
    let e = li + t * NT;
    if (e < BC * PV && i0 + e / PV < p.L) {
      let base = q_row(b, i0 + e / PV, h);
      x.a[t] = ld_q(base, e % PV) * p.scale2;
      x.b[t] = ld_do(base, e % PV);
    }
  }
  return x;
}

// Stores a fetched block into colA (pair.a) and colB (pair.b).
fn stage_cols(x: Pair, li: u32) {
  for (var t = 0u; t < LOADS; t++) {
    let e = li + t * NT;
    if (e < BC * PV) {
      colA[(e / PV) * PS + e % PV] = x.a[t];
      colB[(e / PV) * PS + e % PV] = x.b[t];
    }
  }
}

// Dot products of the invocation's RQ rows with its four columns: rowA · colA and rowB · colB.
fn dots_a(tx: u32, ty: u32) -> array<vec4f, 4> {
  var s: array<vec4f, 4>;
  for (var c = 0u; c < PV; c++) {
    let k0 = colA[tx * PS + c];
    let k1 = colA[(tx + TX) * PS + c];
    let k2 = colA[(tx + 2u * TX) * PS + c];
    let k3 = colA[(tx + 3u * TX) * PS + c];
    for (var a = 0u; a < RQ; a++) {
      let x = rowA[(ty * RQ + a) * PS + c];
      s[a] += vec4f(dot(x, k0), dot(x, k1), dot(x, k2), dot(x, k3));
    }
  }
  return s;
}
fn dots_b(tx: u32, ty: u32) -> array<vec4f, 4> {
  var s: array<vec4f, 4>;
  for (var c = 0u; c < PV; c++) {
    let k0 = colB[tx * PS + c];
    let k1 = colB[(tx + TX) * PS + c];
    let k2 = colB[(tx + 2u * TX) * PS + c];
    let k3 = colB[(tx + 3u * TX) * PS + c];
    for (var a = 0u; a < RQ; a++) {
      let x = rowB[(ty * RQ + a) * PS + c];
      s[a] += vec4f(dot(x, k0), dot(x, k1), dot(x, k2), dot(x, k3));
    }
  }
  return s;
}

// Column tx + TX·jj of tile row `row` (vec4 index, component).
fn tile_at(row: u32, col: u32) -> vec2u { return vec2u(row * CS + col / 4u, col % 4u); }

@compute @workgroup_size(TX, TY)
fn forward(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let tx = lid.x;
  let ty = lid.y;
  let q0 = (p.nblk - 1u - wg.x) * BR;
  let h = wg.y;
  let b = wg.z;
  let g = h / p.group;
  let off = p.S - p.L;
  for (var e = li; e < BR * PV; e += NT) {
    let r = e / PV;
    let c = e % PV;
    var x = vec4f(0.0);
    if (q0 + r < p.L) { x = ld_q(q_row(b, q0 + r, h), c) * p.scale2; }
    rowA[r * PS + c] = x;
  }
  var m: array<f32, 4>;
  var l: array<f32, 4>;
  var acc: array<vec4f, 16>;
  for (var a = 0u; a < 4u; a++) { m[a] = NEG_BIG; }
  // Keys up to the block's last query (padded rows past L see no more than that).
  let kend = min(p.S, off + q0 + BR);
  let nkb = (kend + BC - 1u) / BC;
  var next: Pair;
  if (PF) { next = fetch_kv(b, g, 0u, li); }
  for (var kb = 0u; kb < nkb; kb++) {
    let k0 = kb * BC;
    workgroupBarrier(); // the previous block's readers are done with colA/colB/tileA
    if (PF) { stage_cols(next, li); } else { stage_cols(fetch_kv(b, g, k0, li), li); }
    workgroupBarrier();
    if (PF && kb + 1u < nkb) { next = fetch_kv(b, g, k0 + BC, li); }
    var s = dots_a(tx, ty);
    for (var a = 0u; a < RQ; a++) {
      let i = q0 + ty * RQ + a;
      for (var jj = 0u; jj < 4u; jj++) {
        let j = k0 + tx + TX * jj;
        if (j >= p.S || j > off + i) { s[a][jj] = NEG_BIG; }
      }
      red[(ty * RQ + a) * TX + tx] = max(max(s[a].x, s[a].y), max(s[a].z, s[a].w));
    }
    workgroupBarrier();
    for (var a = 0u; a < RQ; a++) {
      let row = ty * RQ + a;
      var mn = m[a];
      for (var t = 0u; t < TX; t++) { mn = max(mn, red[row * TX + t]); }
      // Block 0 holds key 0, visible to every row, so mn is finite from the first block on.
      let alpha = exp2(m[a] - mn);
      let pr = exp2(s[a] - vec4f(mn));
      l[a] = l[a] * alpha + (pr.x + pr.y + pr.z + pr.w);
      m[a] = mn;
      for (var cc = 0u; cc < NC; cc++) { acc[a * NC + cc] *= alpha; }
      for (var jj = 0u; jj < 4u; jj++) {
        let at = tile_at(row, tx + TX * jj);
        tileA[at.x][at.y] = pr[jj];
      }
    }
    workgroupBarrier();
    // acc(rows, chunks) += P (rows, BC) · V (BC, chunks)
    for (var c4 = 0u; c4 < TX; c4++) {
      var pr: array<vec4f, 4>;
      for (var a = 0u; a < RQ; a++) { pr[a] = tileA[(ty * RQ + a) * CS + c4]; }
      for (var d = 0u; d < 4u; d++) {
        let key = 4u * c4 + d;
        for (var cc = 0u; cc < NC; cc++) {
          let c = tx + TX * cc;
          if (c < PV) {
            let x = colB[key * PS + c];
            for (var a = 0u; a < RQ; a++) { acc[a * NC + cc] += pr[a][d] * x; }
          }
        }
      }
    }
  }
  // l_i: each invocation summed its own columns; add the TX partial sums of each row.
  workgroupBarrier();
  for (var a = 0u; a < RQ; a++) { red[(ty * RQ + a) * TX + tx] = l[a]; }
  workgroupBarrier();
  for (var a = 0u; a < RQ; a++) {
    let row = ty * RQ + a;
    let i = q0 + row;
    if (i >= p.L) { continue; }
    var lt = 0.0;
    for (var t = 0u; t < TX; t++) { lt += red[row * TX + t]; }
    let inv = 1.0 / lt;
    let base = q_row(b, i, h);
    for (var cc = 0u; cc < NC; cc++) {
      let c = tx + TX * cc;
      if (c < PV) {
        let y = acc[a * NC + cc] * inv;
        for (var d = 0u; d < 4u; d++) { if (4u * c + d < p.P) { o[base + 4u * c + d] = y[d]; } }
      }
    }
    if (tx == 0u) { lse[(b * p.Hq + h) * p.L + i] = (m[a] + log2(lt)) * LN2; }
  }
}

// D_i = Σ_p dO_ip · O_ip for every row r = (b·L + i)·H_q + h of out (B, L, H_q, P); one invocation per
// row. Bindings: o (4), dO (6), delta (7).
@compute @workgroup_size(64)
fn backward_delta(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = (wg.y * p.yrow + wg.x) * 64u + li;
  if (r >= p.n) { return; }
  let h = r % p.Hq;
  let i = (r / p.Hq) % p.L;
  let b = r / (p.Hq * p.L);
  var s = 0.0;
  for (var e = 0u; e < p.P; e++) { s += dO[r * p.P + e] * o[r * p.P + e]; }
  delta[(b * p.Hq + h) * p.L + i] = s;
}

// dQ for one query block: walks the visible key blocks like `forward`, with dS in tileA.
// Bindings: q, k, v (1–3), lse (5), dO (6), delta (7), dq (8).
@compute @workgroup_size(TX, TY)
fn backward_dq(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let tx = lid.x;
  let ty = lid.y;
  let q0 = (p.nblk - 1u - wg.x) * BR;
  let h = wg.y;
  let b = wg.z;
  let g = h / p.group;
  let off = p.S - p.L;
  for (var e = li; e < BR * PV; e += NT) {
    let r = e / PV;
    let c = e % PV;
    var x = vec4f(0.0);
    var y = vec4f(0.0);
    if (q0 + r < p.L) {
      let base = q_row(b, q0 + r, h);
      x = ld_q(base, c) * p.scale2;
      y = ld_do(base, c);
    }
    rowA[r * PS + c] = x;
    rowB[r * PS + c] = y;
  }
  var lse2: array<f32, 4>;
  var dd: array<f32, 4>;
  for (var a = 0u; a < RQ; a++) {
    let i = q0 + ty * RQ + a;
    if (i < p.L) {
      lse2[a] = lse[(b * p.Hq + h) * p.L + i] * LOG2E;
      dd[a] = delta[(b * p.Hq + h) * p.L + i];
    }
  }
  var acc: array<vec4f, 16>;
  let kend = min(p.S, off + q0 + BR);
  let nkb = (kend + BC - 1u) / BC;
  var next: Pair;
  if (PF) { next = fetch_kv(b, g, 0u, li); }
  for (var kb = 0u; kb < nkb; kb++) {
    let k0 = kb * BC;
    workgroupBarrier();
    if (PF) { stage_cols(next, li); } else { stage_cols(fetch_kv(b, g, k0, li), li); }
    workgroupBarrier();
    if (PF && kb + 1u < nkb) { next = fetch_kv(b, g, k0 + BC, li); }
    let s = dots_a(tx, ty);  // s₂ = scale2 · q · k
    let dp = dots_b(tx, ty); // dP = dO · v
    for (var a = 0u; a < RQ; a++) {
      let i = q0 + ty * RQ + a;
      for (var jj = 0u; jj < 4u; jj++) {
        let j = k0 + tx + TX * jj;
        var ds = 0.0;
        if (j < p.S && j <= off + i && i < p.L) { ds = exp2(s[a][jj] - lse2[a]) * (dp[a][jj] - dd[a]); }
        let at = tile_at(ty * RQ + a, tx + TX * jj);
        tileA[at.x][at.y] = ds;
      }
    }
    workgroupBarrier();
    // acc(rows, chunks) += dS (rows, BC) · K (BC, chunks)
    for (var c4 = 0u; c4 < TX; c4++) {
      var sr: array<vec4f, 4>;
      for (var a = 0u; a < RQ; a++) { sr[a] = tileA[(ty * RQ + a) * CS + c4]; }
      for (var d = 0u; d < 4u; d++) {
        let key = 4u * c4 + d;
        for (var cc = 0u; cc < NC; cc++) {
          let c = tx + TX * cc;
          if (c < PV) {
            let x = colA[key * PS + c];
            for (var a = 0u; a < RQ; a++) { acc[a * NC + cc] += sr[a][d] * x; }
          }
        }
      }
    }
  }
  let scale = p.scale2 * LN2;
  for (var a = 0u; a < RQ; a++) {
    let i = q0 + ty * RQ + a;
    if (i >= p.L) { continue; }
    let base = q_row(b, i, h);
    for (var cc = 0u; cc < NC; cc++) {
      let c = tx + TX * cc;
      if (c < PV) {
        let y = acc[a * NC + cc] * scale;
        for (var d = 0u; d < 4u; d++) { if (4u * c + d < p.P) { dq[base + 4u * c + d] = y[d]; } }
      }
    }
  }
}

// dK, dV for one key block of kv head g: rows are keys, columns queries; walks every query head of
// the group (hsplit = 0; grid y = kv heads) or one query head h (hsplit = 1; grid y = query heads,
// dk/dv are then the partials (B, cap, H_q, P)) and every query block that sees the keys.
// Bindings: q, k, v (1–3), lse (5), dO (6), delta (7), dk (9), dv (10).
@compute @workgroup_size(TX, TY)
fn backward_dkv(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let tx = lid.x;
  let ty = lid.y;
  let k0 = wg.x * BR;
  let b = wg.z;
  let off = p.S - p.L;
  // query heads [h_lo, h_hi) of kv head g; results go to head h_out of Hout heads
  var g = wg.y;
  var h_lo = g * p.group;
  var h_hi = h_lo + p.group;
  var Hout = p.Hkv;
  if (p.hsplit == 1u) {
    g = wg.y / p.group;
    h_lo = wg.y;
    h_hi = wg.y + 1u;
    Hout = p.Hq;
  }
  for (var e = li; e < BR * PV; e += NT) {
    let r = e / PV;
    let c = e % PV;
    var x = vec4f(0.0);
    var y = vec4f(0.0);
    if (k0 + r < p.S) {
      let base = kv_row(b, k0 + r, g);
      x = ld_k(base, c);
      y = ld_v(base, c);
    }
    rowA[r * PS + c] = x;
    rowB[r * PS + c] = y;
  }
  var acck: array<vec4f, 16>;
  var accv: array<vec4f, 16>;
  // Query i sees key j iff j ≤ off + i: the first block that sees k0 starts at i = k0 − off.
  var qstart = 0u;
  if (k0 > off) { qstart = (k0 - off) / BC; }
  let nqb = (p.L + BC - 1u) / BC;
  // one flat walk over (head, query block) pairs, so that the next pair can be prefetched
  var nq = 0u;
  if (qstart < nqb) { nq = nqb - qstart; }
  let steps = (h_hi - h_lo) * nq;
  var next: Pair;
  if (PF && steps > 0u) { next = fetch_qdo(b, h_lo, qstart * BC, li); }
  for (var st = 0u; st < steps; st++) {
    {
      let h = h_lo + st / nq;
      let i0 = (qstart + st % nq) * BC;
      let rowbase = (b * p.Hq + h) * p.L;
      workgroupBarrier();
      if (PF) { stage_cols(next, li); } else { stage_cols(fetch_qdo(b, h, i0, li), li); }
      if (PF && st + 1u < steps) {
        next = fetch_qdo(b, h_lo + (st + 1u) / nq, (qstart + (st + 1u) % nq) * BC, li);
      }
      // lse₂ and D of this invocation's four query columns
      var lq = vec4f(0.0);
      var dd = vec4f(0.0);
      for (var jj = 0u; jj < 4u; jj++) {
        let i = i0 + tx + TX * jj;
        if (i < p.L) {
          lq[jj] = lse[rowbase + i] * LOG2E;
          dd[jj] = delta[rowbase + i];
        }
      }
      workgroupBarrier();
      let s = dots_a(tx, ty);  // s₂ᵀ = k · (scale2 · q)
      let dp = dots_b(tx, ty); // dPᵀ = v · dO
      for (var a = 0u; a < RQ; a++) {
        let j = k0 + ty * RQ + a;
        for (var jj = 0u; jj < 4u; jj++) {
          let i = i0 + tx + TX * jj;
          var pr = 0.0;
          if (i < p.L && j < p.S && j <= off + i) { pr = exp2(s[a][jj] - lq[jj]); }
          let at = tile_at(ty * RQ + a, tx + TX * jj);
          tileA[at.x][at.y] = pr;
          tileB[at.x][at.y] = pr * (dp[a][jj] - dd[jj]);
        }
      }
      workgroupBarrier();
      // accv(keys, chunks) += Pᵀ (keys, BC) · dO (BC, chunks); acck += dSᵀ · (scale2 · Q)
      for (var c4 = 0u; c4 < TX; c4++) {
        var pr: array<vec4f, 4>;
        var sr: array<vec4f, 4>;
        for (var a = 0u; a < RQ; a++) {
          pr[a] = tileA[(ty * RQ + a) * CS + c4];
          sr[a] = tileB[(ty * RQ + a) * CS + c4];
        }
        for (var d = 0u; d < 4u; d++) {
          let col = 4u * c4 + d;
          for (var cc = 0u; cc < NC; cc++) {
            let c = tx + TX * cc;
            if (c < PV) {
              let x = colB[col * PS + c];
              let y = colA[col * PS + c];
              for (var a = 0u; a < RQ; a++) {
                accv[a * NC + cc] += pr[a][d] * x;
                acck[a * NC + cc] += sr[a][d] * y;
              }
            }
          }
        }
      }
    }
  }
  // dK = scale · Σ dS q = ln 2 · Σ dS (scale2 · q), since scale2 = scale · log2(e).
  for (var a = 0u; a < RQ; a++) {
    let j = k0 + ty * RQ + a;
    if (j >= p.cap) { continue; }
    let base = ((b * p.cap + j) * Hout + wg.y) * p.P;
    for (var cc = 0u; cc < NC; cc++) {
      let c = tx + TX * cc;
      if (c < PV) {
        let yk = acck[a * NC + cc] * LN2;
        let yv = accv[a * NC + cc];
        for (var d = 0u; d < 4u; d++) {
          if (4u * c + d < p.P) {
            dk[base + 4u * c + d] = yk[d];
            dv[base + 4u * c + d] = yv[d];
          }
        }
      }
    }
  }
}

// hsplit = 1: dK, dV (B, cap, H_kv, P) = the sums of the per-query-head partials (B, cap, H_q, P) over
// each group (its heads are consecutive: row r·group + jh). One invocation per output element.
// Bindings: dk (9), dv (10), part_k (11), part_v (12).
@compute @workgroup_size(64)
fn backward_dkv_sum(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let e = (wg.y * p.yrow + wg.x) * 64u + li;
  if (e >= p.n) { return; }
  let r = e / p.P;
  let c = e % p.P;
  var sk = 0.0;
  var sv = 0.0;
  for (var jh = 0u; jh < p.group; jh++) {
    sk += part_k[(r * p.group + jh) * p.P + c];
    sv += part_v[(r * p.group + jh) * p.P + c];
  }
  dk[e] = sk;
  dv[e] = sv;
}
