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
// memory): a workgroup of TX × TY invocations owns BR = 4·TY "rows" and walks "columns" in blocks of
// BC = 4·TX. Rows are queries in `forward` and `backward_dq` (columns: keys), keys in `backward_dkv`
// (columns: queries). Invocation (tx, ty) owns the four rows ty + TY·a (a = 0..3) and the four
// columns tx + TX·j (j = 0..3), strided so that neighbouring lanes read distinct banks; a vec4 holds
// one value per owned row ("row lanes"), so scores, softmax statistics and tile entries are vec4
// operations. Its output accumulators are the rows' head-vector chunks c = tx + TX·cc (vec4 each,
// cc < NC ≤ 8). Every per-invocation value is a named variable or struct field: dynamically indexed
// private arrays would live in local memory on the GPU (the first version of this kernel, with
// arrays, ran at a third of the materialising path's speed). Head vectors are staged as vec4 rows
// padded to PS = PD/4 + 1 vec4, the (BC, rows) tiles as [column][ty] vec4 padded to TP = TY + 1.
// Accumulation is f32. Grid: (row blocks, heads, B); forward and dq take the last (heaviest) query
// blocks first. With PF (when each invocation stages at most 4 vec4 pairs per block), the next
// column block is loaded into registers while the current one is computed.

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

override TX: u32 = 8u;                          // invocations along columns (BC = 4·TX)
override TY: u32 = 8u;                          // invocations along rows (BR = 4·TY)
override PD: u32 = 64u;                         // head dim rounded up to a multiple of 4
override PF: bool = true;                       // prefetch the next column block (needs LOADS ≤ 4)
override NT: u32 = TX * TY;
override BR: u32 = 4u * TY;
override BC: u32 = 4u * TX;
override PV: u32 = PD / 4u;                     // vec4 per head vector
override PS: u32 = PV + 1u;                     // padded stride of staged head vectors (vec4)
override TP: u32 = TY + 1u;                     // padded stride of a tile column (vec4)
override NC: u32 = (PV + TX - 1u) / TX;         // head-vector chunks per invocation (≤ 8)
override LOADS: u32 = (BC * PV + NT - 1u) / NT; // vec4 pairs staged per invocation per block

const LN2: f32 = 0.6931471805599453;
const LOG2E: f32 = 1.4426950408889634;

var<workgroup> rowA: array<vec4f, BR * PS>;  // forward, dq: Q rows (prescaled); dkv: K rows
var<workgroup> rowB: array<vec4f, BR * PS>;  // dq: dO rows; dkv: V rows
var<workgroup> colA: array<vec4f, BC * PS>;  // forward, dq: K block; dkv: Q block (prescaled)
var<workgroup> colB: array<vec4f, BC * PS>;  // forward, dq: V block; dkv: dO block
var<workgroup> tileA: array<vec4f, BC * TP>; // forward: P; dq: dS; dkv: Pᵀ  ([column][ty], row lanes)
var<workgroup> tileB: array<vec4f, BC * TP>; // dkv: dSᵀ
var<workgroup> red: array<vec4f, TX * TP>;   // forward: per-invocation row maxima, then row sums

// Element offset of query row (b, i, h) and of key/value row (b, j, g).
fn q_row(b: u32, i: u32, h: u32) -> u32 { return ((b * p.L + i) * p.Hq + h) * p.P; }
fn kv_row(b: u32, j: u32, g: u32) -> u32 { return ((b * p.cap + j) * p.Hkv + g) * p.P; }

// Components 4c … 4c+3 of a head vector at `base`, zero past P (one loader per buffer: WGSL has no
// generic storage pointers).
fn ld_q(base: u32, c: u32) -> vec4f {
  let i = base + 4u * c;
  if (4u * c + 4u <= p.P) { return vec4f(q[i], q[i + 1u], q[i + 2u], q[i + 3u]); }
  var x = vec4f(0.0);
  if (4u * c < p.P) { x.x = q[i]; }
  if (4u * c + 1u < p.P) { x.y = q[i + 1u]; }
  if (4u * c + 2u < p.P) { x.z = q[i + 2u]; }
  return x;
}
fn ld_k(base: u32, c: u32) -> vec4f {
  let i = base + 4u * c;
  if (4u * c + 4u <= p.P) { return vec4f(k[i], k[i + 1u], k[i + 2u], k[i + 3u]); }
  var x = vec4f(0.0);
  if (4u * c < p.P) { x.x = k[i]; }
  if (4u * c + 1u < p.P) { x.y = k[i + 1u]; }
  if (4u * c + 2u < p.P) { x.z = k[i + 2u]; }
  return x;
}
fn ld_v(base: u32, c: u32) -> vec4f {
  let i = base + 4u * c;
  if (4u * c + 4u <= p.P) { return vec4f(v[i], v[i + 1u], v[i + 2u], v[i + 3u]); }
  var x = vec4f(0.0);
  if (4u * c < p.P) { x.x = v[i]; }
  if (4u * c + 1u < p.P) { x.y = v[i + 1u]; }
  if (4u * c + 2u < p.P) { x.z = v[i + 2u]; }
  return x;
}
fn ld_do(base: u32, c: u32) -> vec4f {
  let i = base + 4u * c;
  if (4u * c + 4u <= p.P) { return vec4f(dO[i], dO[i + 1u], dO[i + 2u], dO[i + 3u]); }
  var x = vec4f(0.0);
  if (4u * c < p.P) { x.x = dO[i]; }
  if (4u * c + 1u < p.P) { x.y = dO[i + 1u]; }
  if (4u * c + 2u < p.P) { x.z = dO[i + 2u]; }
  return x;
}

// Stores of components 4c … 4c+3 (those below P).
fn st_o(base: u32, c: u32, y: vec4f) {
  let i = base + 4u * c;
  if (4u * c < p.P) { o[i] = y.x; }
  if (4u * c + 1u < p.P) { o[i + 1u] = y.y; }
  if (4u * c + 2u < p.P) { o[i + 2u] = y.z; }
  if (4u * c + 3u < p.P) { o[i + 3u] = y.w; }
}
fn st_dq(base: u32, c: u32, y: vec4f) {
  let i = base + 4u * c;
  if (4u * c < p.P) { dq[i] = y.x; }
  if (4u * c + 1u < p.P) { dq[i + 1u] = y.y; }
  if (4u * c + 2u < p.P) { dq[i + 2u] = y.z; }
  if (4u * c + 3u < p.P) { dq[i + 3u] = y.w; }
}
fn st_dkv(base: u32, c: u32, yk: vec4f, yv: vec4f) {
  let i = base + 4u * c;
  if (4u * c < p.P) { dk[i] = yk.x; dv[i] = yv.x; }
  if (4u * c + 1u < p.P) { dk[i + 1u] = yk.y; dv[i + 1u] = yv.y; }
  if (4u * c + 2u < p.P) { dk[i + 2u] = yk.z; dv[i + 2u] = yv.z; }
  if (4u * c + 3u < p.P) { dk[i + 3u] = yk.w; dv[i + 3u] = yv.w; }
}

// Component a of a vec4 value, without dynamic indexing.
fn lane(x: vec4f, a: u32) -> f32 {
  return select(select(select(x.x, x.y, a == 1u), x.z, a == 2u), x.w, a == 3u);
}

// ---- staging of column blocks ----

// A staged vec4 pair (colA, colB) of block element e = (column e / PV, chunk e % PV).
struct Two { a: vec4f, b: vec4f }
// The pairs one invocation stages per block (elements li + t·NT, t < LOADS ≤ 4) when prefetching.
struct Pre { t0: Two, t1: Two, t2: Two, t3: Two }

fn kv_elem(b: u32, g: u32, k0: u32, e: u32) -> Two {
  var x: Two;
  if (e < BC * PV && k0 + e / PV < p.S) {
    let base = kv_row(b, k0 + e / PV, g);
    x.a = ld_k(base, e % PV);
    x.b = ld_v(base, e % PV);
  }
  return x;
}
fn qdo_elem(b: u32, h: u32, i0: u32, e: u32) -> Two {
  var x: Two;
  if (e < BC * PV && i0 + e / PV < p.L) {
    let base = q_row(b, i0 + e / PV, h);
    x.a = ld_q(base, e % PV) * p.scale2;
    x.b = ld_do(base, e % PV);
  }
  return x;
}
fn stage_elem(e: u32, x: Two) {
  if (e < BC * PV) {
    colA[(e / PV) * PS + e % PV] = x.a;
    colB[(e / PV) * PS + e % PV] = x.b;
  }
}
fn fetch_kv(b: u32, g: u32, k0: u32, li: u32) -> Pre {
  var x: Pre;
  x.t0 = kv_elem(b, g, k0, li);
  if (LOADS > 1u) { x.t1 = kv_elem(b, g, k0, li + NT); }
  if (LOADS > 2u) { x.t2 = kv_elem(b, g, k0, li + 2u * NT); }
  if (LOADS > 3u) { x.t3 = kv_elem(b, g, k0, li + 3u * NT); }
  return x;
}
fn fetch_qdo(b: u32, h: u32, i0: u32, li: u32) -> Pre {
  var x: Pre;
  x.t0 = qdo_elem(b, h, i0, li);
  if (LOADS > 1u) { x.t1 = qdo_elem(b, h, i0, li + NT); }
  if (LOADS > 2u) { x.t2 = qdo_elem(b, h, i0, li + 2u * NT); }
  if (LOADS > 3u) { x.t3 = qdo_elem(b, h, i0, li + 3u * NT); }
  return x;
}
fn stage(x: Pre, li: u32) {
  stage_elem(li, x.t0);
  if (LOADS > 1u) { stage_elem(li + NT, x.t1); }
  if (LOADS > 2u) { stage_elem(li + 2u * NT, x.t2); }
  if (LOADS > 3u) { stage_elem(li + 3u * NT, x.t3); }
}
// Without prefetch: load and store straight away.
fn stage_kv_now(b: u32, g: u32, k0: u32, li: u32) {
  for (var e = li; e < BC * PV; e += NT) { stage_elem(e, kv_elem(b, g, k0, e)); }
}
fn stage_qdo_now(b: u32, h: u32, i0: u32, li: u32) {
  for (var e = li; e < BC * PV; e += NT) { stage_elem(e, qdo_elem(b, h, i0, e)); }
}

// ---- per-invocation products ----

// The four owned columns' dot products with the four owned rows: s.cj has row lanes.
struct Cols { c0: vec4f, c1: vec4f, c2: vec4f, c3: vec4f }

fn dot_rows(x0: vec4f, x1: vec4f, x2: vec4f, x3: vec4f, y: vec4f) -> vec4f {
  return vec4f(dot(x0, y), dot(x1, y), dot(x2, y), dot(x3, y));
}
// rowA · colA
fn scores_a(tx: u32, ty: u32) -> Cols {
  var s: Cols;
  for (var c = 0u; c < PV; c++) {
    let x0 = rowA[ty * PS + c];
    let x1 = rowA[(ty + TY) * PS + c];
    let x2 = rowA[(ty + 2u * TY) * PS + c];
    let x3 = rowA[(ty + 3u * TY) * PS + c];
    s.c0 += dot_rows(x0, x1, x2, x3, colA[tx * PS + c]);
    s.c1 += dot_rows(x0, x1, x2, x3, colA[(tx + TX) * PS + c]);
    s.c2 += dot_rows(x0, x1, x2, x3, colA[(tx + 2u * TX) * PS + c]);
    s.c3 += dot_rows(x0, x1, x2, x3, colA[(tx + 3u * TX) * PS + c]);
  }
  return s;
}
// rowB · colB
fn scores_b(tx: u32, ty: u32) -> Cols {
  var s: Cols;
  for (var c = 0u; c < PV; c++) {
    let x0 = rowB[ty * PS + c];
    let x1 = rowB[(ty + TY) * PS + c];
    let x2 = rowB[(ty + 2u * TY) * PS + c];
    let x3 = rowB[(ty + 3u * TY) * PS + c];
    s.c0 += dot_rows(x0, x1, x2, x3, colB[tx * PS + c]);
    s.c1 += dot_rows(x0, x1, x2, x3, colB[(tx + TX) * PS + c]);
    s.c2 += dot_rows(x0, x1, x2, x3, colB[(tx + 2u * TX) * PS + c]);
    s.c3 += dot_rows(x0, x1, x2, x3, colB[(tx + 3u * TX) * PS + c]);
  }
  return s;
}

// Output accumulators: rRcC = row lane R, head-vector chunk C (c = tx + TX·C, C < NC ≤ 8).
struct Acc {
  r0c0: vec4f, r1c0: vec4f, r2c0: vec4f, r3c0: vec4f,
  r0c1: vec4f, r1c1: vec4f, r2c1: vec4f, r3c1: vec4f,
  r0c2: vec4f, r1c2: vec4f, r2c2: vec4f, r3c2: vec4f,
  r0c3: vec4f, r1c3: vec4f, r2c3: vec4f, r3c3: vec4f,
  r0c4: vec4f, r1c4: vec4f, r2c4: vec4f, r3c4: vec4f,
  r0c5: vec4f, r1c5: vec4f, r2c5: vec4f, r3c5: vec4f,
  r0c6: vec4f, r1c6: vec4f, r2c6: vec4f, r3c6: vec4f,
  r0c7: vec4f, r1c7: vec4f, r2c7: vec4f, r3c7: vec4f,
}
// Head-vector chunks tx + TX·C of one staged column (zero past PV).
struct Chunks { c0: vec4f, c1: vec4f, c2: vec4f, c3: vec4f, c4: vec4f, c5: vec4f, c6: vec4f, c7: vec4f }

fn chunks_a(col: u32, tx: u32) -> Chunks {
  var x: Chunks;
  x.c0 = select(vec4f(0.0), colA[col * PS + tx], tx < PV);
  if (NC > 1u && tx + TX < PV) { x.c1 = colA[col * PS + tx + TX]; }
  if (NC > 2u && tx + 2u * TX < PV) { x.c2 = colA[col * PS + tx + 2u * TX]; }
  if (NC > 3u && tx + 3u * TX < PV) { x.c3 = colA[col * PS + tx + 3u * TX]; }
  if (NC > 4u && tx + 4u * TX < PV) { x.c4 = colA[col * PS + tx + 4u * TX]; }
  if (NC > 5u && tx + 5u * TX < PV) { x.c5 = colA[col * PS + tx + 5u * TX]; }
  if (NC > 6u && tx + 6u * TX < PV) { x.c6 = colA[col * PS + tx + 6u * TX]; }
  if (NC > 7u && tx + 7u * TX < PV) { x.c7 = colA[col * PS + tx + 7u * TX]; }
  return x;
}
fn chunks_b(col: u32, tx: u32) -> Chunks {
  var x: Chunks;
  x.c0 = select(vec4f(0.0), colB[col * PS + tx], tx < PV);
  if (NC > 1u && tx + TX < PV) { x.c1 = colB[col * PS + tx + TX]; }
  if (NC > 2u && tx + 2u * TX < PV) { x.c2 = colB[col * PS + tx + 2u * TX]; }
  if (NC > 3u && tx + 3u * TX < PV) { x.c3 = colB[col * PS + tx + 3u * TX]; }
  if (NC > 4u && tx + 4u * TX < PV) { x.c4 = colB[col * PS + tx + 4u * TX]; }
  if (NC > 5u && tx + 5u * TX < PV) { x.c5 = colB[col * PS + tx + 5u * TX]; }
  if (NC > 6u && tx + 6u * TX < PV) { x.c6 = colB[col * PS + tx + 6u * TX]; }
  if (NC > 7u && tx + 7u * TX < PV) { x.c7 = colB[col * PS + tx + 7u * TX]; }
  return x;
}

// acc(rows, chunks) += w (row lanes) ⊗ x (chunks)
fn acc_add(acc: ptr<function, Acc>, w: vec4f, x: Chunks) {
  (*acc).r0c0 += w.x * x.c0;
  (*acc).r1c0 += w.y * x.c0;
  (*acc).r2c0 += w.z * x.c0;
  (*acc).r3c0 += w.w * x.c0;
  if (NC > 1u) {
    (*acc).r0c1 += w.x * x.c1;
    (*acc).r1c1 += w.y * x.c1;
    (*acc).r2c1 += w.z * x.c1;
    (*acc).r3c1 += w.w * x.c1;
  }
  if (NC > 2u) {
    (*acc).r0c2 += w.x * x.c2;
    (*acc).r1c2 += w.y * x.c2;
    (*acc).r2c2 += w.z * x.c2;
    (*acc).r3c2 += w.w * x.c2;
  }
  if (NC > 3u) {
    (*acc).r0c3 += w.x * x.c3;
    (*acc).r1c3 += w.y * x.c3;
    (*acc).r2c3 += w.z * x.c3;
    (*acc).r3c3 += w.w * x.c3;
  }
  if (NC > 4u) {
    (*acc).r0c4 += w.x * x.c4;
    (*acc).r1c4 += w.y * x.c4;
    (*acc).r2c4 += w.z * x.c4;
    (*acc).r3c4 += w.w * x.c4;
  }
  if (NC > 5u) {
    (*acc).r0c5 += w.x * x.c5;
    (*acc).r1c5 += w.y * x.c5;
    (*acc).r2c5 += w.z * x.c5;
    (*acc).r3c5 += w.w * x.c5;
  }
  if (NC > 6u) {
    (*acc).r0c6 += w.x * x.c6;
    (*acc).r1c6 += w.y * x.c6;
    (*acc).r2c6 += w.z * x.c6;
    (*acc).r3c6 += w.w * x.c6;
  }
  if (NC > 7u) {
    (*acc).r0c7 += w.x * x.c7;
    (*acc).r1c7 += w.y * x.c7;
    (*acc).r2c7 += w.z * x.c7;
    (*acc).r3c7 += w.w * x.c7;
  }
}
// acc(row R, ·) *= f[R]
fn acc_scale(acc: ptr<function, Acc>, f: vec4f) {
  (*acc).r0c0 *= f.x;
  (*acc).r1c0 *= f.y;
  (*acc).r2c0 *= f.z;
  (*acc).r3c0 *= f.w;
  if (NC > 1u) {
    (*acc).r0c1 *= f.x;
    (*acc).r1c1 *= f.y;
    (*acc).r2c1 *= f.z;
    (*acc).r3c1 *= f.w;
  }
  if (NC > 2u) {
    (*acc).r0c2 *= f.x;
    (*acc).r1c2 *= f.y;
    (*acc).r2c2 *= f.z;
    (*acc).r3c2 *= f.w;
  }
  if (NC > 3u) {
    (*acc).r0c3 *= f.x;
    (*acc).r1c3 *= f.y;
    (*acc).r2c3 *= f.z;
    (*acc).r3c3 *= f.w;
  }
  if (NC > 4u) {
    (*acc).r0c4 *= f.x;
    (*acc).r1c4 *= f.y;
    (*acc).r2c4 *= f.z;
    (*acc).r3c4 *= f.w;
  }
  if (NC > 5u) {
    (*acc).r0c5 *= f.x;
    (*acc).r1c5 *= f.y;
    (*acc).r2c5 *= f.z;
    (*acc).r3c5 *= f.w;
  }
  if (NC > 6u) {
    (*acc).r0c6 *= f.x;
    (*acc).r1c6 *= f.y;
    (*acc).r2c6 *= f.z;
    (*acc).r3c6 *= f.w;
  }
  if (NC > 7u) {
    (*acc).r0c7 *= f.x;
    (*acc).r1c7 *= f.y;
    (*acc).r2c7 *= f.z;
    (*acc).r3c7 *= f.w;
  }
}
// Accumulator of row lane a, chunk cc (runtime selection at the end only).
fn acc_get(acc: Acc, a: u32, cc: u32) -> vec4f {
  switch (cc * 4u + a) {
    case 0u: { return acc.r0c0; }
    case 1u: { return acc.r1c0; }
    case 2u: { return acc.r2c0; }
    case 3u: { return acc.r3c0; }
    case 4u: { return acc.r0c1; }
    case 5u: { return acc.r1c1; }
    case 6u: { return acc.r2c1; }
    case 7u: { return acc.r3c1; }
    case 8u: { return acc.r0c2; }
    case 9u: { return acc.r1c2; }
    case 10u: { return acc.r2c2; }
    case 11u: { return acc.r3c2; }
    case 12u: { return acc.r0c3; }
    case 13u: { return acc.r1c3; }
    case 14u: { return acc.r2c3; }
    case 15u: { return acc.r3c3; }
    case 16u: { return acc.r0c4; }
    case 17u: { return acc.r1c4; }
    case 18u: { return acc.r2c4; }
    case 19u: { return acc.r3c4; }
    case 20u: { return acc.r0c5; }
    case 21u: { return acc.r1c5; }
    case 22u: { return acc.r2c5; }
    case 23u: { return acc.r3c5; }
    case 24u: { return acc.r0c6; }
    case 25u: { return acc.r1c6; }
    case 26u: { return acc.r2c6; }
    case 27u: { return acc.r3c6; }
    case 28u: { return acc.r0c7; }
    case 29u: { return acc.r1c7; }
    case 30u: { return acc.r2c7; }
    default: { return acc.r3c7; }
  }
}

// Row lanes of rows ty + TY·a for a block starting at row r0.
fn rows_of(r0: u32, ty: u32) -> vec4u {
  return vec4u(r0 + ty, r0 + ty + TY, r0 + ty + 2u * TY, r0 + ty + 3u * TY);
}

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
    var x = vec4f(0.0);
    if (q0 + r < p.L) { x = ld_q(q_row(b, q0 + r, h), e % PV) * p.scale2; }
    rowA[r * PS + e % PV] = x;
  }
  let rows = rows_of(q0, ty);          // absolute positions of the owned rows: off + rows
  let vis = vec4u(off) + rows;         // a row sees keys j ≤ vis
  var m = vec4f(NEG_BIG);
  var l = vec4f(0.0);
  var acc: Acc;
  let kend = min(p.S, off + q0 + BR);  // keys up to the block's last row
  let nkb = (kend + BC - 1u) / BC;
  var next: Pre;
  if (PF) { next = fetch_kv(b, g, 0u, li); }
  for (var kb = 0u; kb < nkb; kb++) {
    let k0 = kb * BC;
    workgroupBarrier(); // the previous block's readers are done with colA/colB/tileA/red
    if (PF) { stage(next, li); } else { stage_kv_now(b, g, k0, li); }
    workgroupBarrier();
    if (PF && kb + 1u < nkb) { next = fetch_kv(b, g, k0 + BC, li); }
    var s = scores_a(tx, ty);
    // causal mask (and keys past S): masked scores become NEG_BIG
    let j0 = k0 + tx;
    let big = vec4f(NEG_BIG);
    s.c0 = select(s.c0, big, (vec4u(j0) > vis) | vec4<bool>(j0 >= p.S));
    s.c1 = select(s.c1, big, (vec4u(j0 + TX) > vis) | vec4<bool>(j0 + TX >= p.S));
    s.c2 = select(s.c2, big, (vec4u(j0 + 2u * TX) > vis) | vec4<bool>(j0 + 2u * TX >= p.S));
    s.c3 = select(s.c3, big, (vec4u(j0 + 3u * TX) > vis) | vec4<bool>(j0 + 3u * TX >= p.S));
    red[tx * TP + ty] = max(max(s.c0, s.c1), max(s.c2, s.c3));
    workgroupBarrier();
    var mn = m;
    for (var t = 0u; t < TX; t++) { mn = max(mn, red[t * TP + ty]); }
    // Block 0 holds key 0, visible to every row, so mn is finite from the first block on.
    let alpha = exp2(m - mn);
    let p0 = exp2(s.c0 - mn);
    let p1 = exp2(s.c1 - mn);
    let p2 = exp2(s.c2 - mn);
    let p3 = exp2(s.c3 - mn);
    l = l * alpha + ((p0 + p1) + (p2 + p3));
    m = mn;
    acc_scale(&acc, alpha);
    tileA[tx * TP + ty] = p0;
    tileA[(tx + TX) * TP + ty] = p1;
    tileA[(tx + 2u * TX) * TP + ty] = p2;
    tileA[(tx + 3u * TX) * TP + ty] = p3;
    workgroupBarrier();
    // acc(rows, chunks) += P (rows, BC) · V (BC, chunks)
    for (var j = 0u; j < BC; j++) { acc_add(&acc, tileA[j * TP + ty], chunks_b(j, tx)); }
  }
  // l_i: each invocation summed its own columns; add the TX partial sums of each row.
  workgroupBarrier();
  red[tx * TP + ty] = l;
  workgroupBarrier();
  var lt = vec4f(0.0);
  for (var t = 0u; t < TX; t++) { lt += red[t * TP + ty]; }
  let inv = 1.0 / lt;
  let lse_out = (m + log2(lt)) * LN2;
  for (var a = 0u; a < 4u; a++) {
    let i = q0 + ty + TY * a;
    if (i >= p.L) { continue; }
    let base = q_row(b, i, h);
    for (var cc = 0u; cc < NC; cc++) {
      let c = tx + TX * cc;
      if (c < PV) { st_o(base, c, acc_get(acc, a, cc) * lane(inv, a)); }
    }
    if (tx == 0u) { lse[(b * p.Hq + h) * p.L + i] = lane(lse_out, a); }
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

// Per-row values of a (B, H_q, L) array for the owned rows (zero past L).
fn row_vals_lse(base: u32, rows: vec4u) -> vec4f {
  var x = vec4f(0.0);
  if (rows.x < p.L) { x.x = lse[base + rows.x]; }
  if (rows.y < p.L) { x.y = lse[base + rows.y]; }
  if (rows.z < p.L) { x.z = lse[base + rows.z]; }
  if (rows.w < p.L) { x.w = lse[base + rows.w]; }
  return x;
}
fn row_vals_delta(base: u32, rows: vec4u) -> vec4f {
  var x = vec4f(0.0);
  if (rows.x < p.L) { x.x = delta[base + rows.x]; }
  if (rows.y < p.L) { x.y = delta[base + rows.y]; }
  if (rows.z < p.L) { x.z = delta[base + rows.z]; }
  if (rows.w < p.L) { x.w = delta[base + rows.w]; }
  return x;
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
    var x = vec4f(0.0);
    var y = vec4f(0.0);
    if (q0 + r < p.L) {
      let base = q_row(b, q0 + r, h);
      x = ld_q(base, e % PV) * p.scale2;
      y = ld_do(base, e % PV);
    }
    rowA[r * PS + e % PV] = x;
    rowB[r * PS + e % PV] = y;
  }
  let rows = rows_of(q0, ty);
  let vis = vec4u(off) + rows;
  let valid = rows < vec4u(p.L);
  let lse2 = row_vals_lse((b * p.Hq + h) * p.L, rows) * LOG2E;
  let dd = row_vals_delta((b * p.Hq + h) * p.L, rows);
  var acc: Acc;
  let kend = min(p.S, off + q0 + BR);
  let nkb = (kend + BC - 1u) / BC;
  var next: Pre;
  if (PF) { next = fetch_kv(b, g, 0u, li); }
  for (var kb = 0u; kb < nkb; kb++) {
    let k0 = kb * BC;
    workgroupBarrier();
    if (PF) { stage(next, li); } else { stage_kv_now(b, g, k0, li); }
    workgroupBarrier();
    if (PF && kb + 1u < nkb) { next = fetch_kv(b, g, k0 + BC, li); }
    let s = scores_a(tx, ty);  // s₂ = scale2 · q · k
    let dp = scores_b(tx, ty); // dP = dO · v
    let j0 = k0 + tx;
    let zero = vec4f(0.0);
    // dS = P ⊙ (dP − D), P = exp2(s₂ − lse₂); zero where masked
    let ok0 = valid & (vec4u(j0) <= vis) & vec4<bool>(j0 < p.S);
    let ok1 = valid & (vec4u(j0 + TX) <= vis) & vec4<bool>(j0 + TX < p.S);
    let ok2 = valid & (vec4u(j0 + 2u * TX) <= vis) & vec4<bool>(j0 + 2u * TX < p.S);
    let ok3 = valid & (vec4u(j0 + 3u * TX) <= vis) & vec4<bool>(j0 + 3u * TX < p.S);
    tileA[tx * TP + ty] = select(zero, exp2(s.c0 - lse2) * (dp.c0 - dd), ok0);
    tileA[(tx + TX) * TP + ty] = select(zero, exp2(s.c1 - lse2) * (dp.c1 - dd), ok1);
    tileA[(tx + 2u * TX) * TP + ty] = select(zero, exp2(s.c2 - lse2) * (dp.c2 - dd), ok2);
    tileA[(tx + 3u * TX) * TP + ty] = select(zero, exp2(s.c3 - lse2) * (dp.c3 - dd), ok3);
    workgroupBarrier();
    // acc(rows, chunks) += dS (rows, BC) · K (BC, chunks)
    for (var j = 0u; j < BC; j++) { acc_add(&acc, tileA[j * TP + ty], chunks_a(j, tx)); }
  }
  let scale = p.scale2 * LN2;
  for (var a = 0u; a < 4u; a++) {
    let i = q0 + ty + TY * a;
    if (i >= p.L) { continue; }
    let base = q_row(b, i, h);
    for (var cc = 0u; cc < NC; cc++) {
      let c = tx + TX * cc;
      if (c < PV) { st_dq(base, c, acc_get(acc, a, cc) * scale); }
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
  // query heads [h_lo, h_hi) of kv head g; results go to head wg.y of Hout heads
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
    var x = vec4f(0.0);
    var y = vec4f(0.0);
    if (k0 + r < p.S) {
      let base = kv_row(b, k0 + r, g);
      x = ld_k(base, e % PV);
      y = ld_v(base, e % PV);
    }
    rowA[r * PS + e % PV] = x;
    rowB[r * PS + e % PV] = y;
  }
  let keys = rows_of(k0, ty);
  let keys_ok = keys < vec4u(p.S);
  var acck: Acc;
  var accv: Acc;
  // Query i sees key j iff j ≤ off + i: the first block that sees k0 starts at i = k0 − off.
  var qstart = 0u;
  if (k0 > off) { qstart = (k0 - off) / BC; }
  let nqb = (p.L + BC - 1u) / BC;
  // one flat walk over (head, query block) pairs, so that the next pair can be prefetched
  var nq = 0u;
  if (qstart < nqb) { nq = nqb - qstart; }
  let steps = (h_hi - h_lo) * nq;
  var next: Pre;
  if (PF && steps > 0u) { next = fetch_qdo(b, h_lo, qstart * BC, li); }
  for (var st = 0u; st < steps; st++) {
    let h = h_lo + st / nq;
    let i0 = (qstart + st % nq) * BC;
    let rowbase = (b * p.Hq + h) * p.L;
    workgroupBarrier();
    if (PF) { stage(next, li); } else { stage_qdo_now(b, h, i0, li); }
    if (PF && st + 1u < steps) {
      next = fetch_qdo(b, h_lo + (st + 1u) / nq, (qstart + (st + 1u) % nq) * BC, li);
    }
    // lse₂ and D of the four owned query columns i0 + tx + TX·j
    let cols = vec4u(i0 + tx, i0 + tx + TX, i0 + tx + 2u * TX, i0 + tx + 3u * TX);
    let lq = row_vals_lse(rowbase, cols) * LOG2E;
    let dd = row_vals_delta(rowbase, cols);
    workgroupBarrier();
    let s = scores_a(tx, ty);  // s₂ᵀ = k · (scale2 · q)
    let dp = scores_b(tx, ty); // dPᵀ = v · dO
    // Pᵀ = exp2(s₂ᵀ − lse₂[col]), dSᵀ = Pᵀ ⊙ (dPᵀ − D[col]); zero where masked
    let zero = vec4f(0.0);
    let ok0 = keys_ok & (keys <= vec4u(off + cols.x)) & vec4<bool>(cols.x < p.L);
    let ok1 = keys_ok & (keys <= vec4u(off + cols.y)) & vec4<bool>(cols.y < p.L);
    let ok2 = keys_ok & (keys <= vec4u(off + cols.z)) & vec4<bool>(cols.z < p.L);
    let ok3 = keys_ok & (keys <= vec4u(off + cols.w)) & vec4<bool>(cols.w < p.L);
    let p0 = select(zero, exp2(s.c0 - vec4f(lq.x)), ok0);
    let p1 = select(zero, exp2(s.c1 - vec4f(lq.y)), ok1);
    let p2 = select(zero, exp2(s.c2 - vec4f(lq.z)), ok2);
    let p3 = select(zero, exp2(s.c3 - vec4f(lq.w)), ok3);
    tileA[tx * TP + ty] = p0;
    tileA[(tx + TX) * TP + ty] = p1;
    tileA[(tx + 2u * TX) * TP + ty] = p2;
    tileA[(tx + 3u * TX) * TP + ty] = p3;
    tileB[tx * TP + ty] = p0 * (dp.c0 - vec4f(dd.x));
    tileB[(tx + TX) * TP + ty] = p1 * (dp.c1 - vec4f(dd.y));
    tileB[(tx + 2u * TX) * TP + ty] = p2 * (dp.c2 - vec4f(dd.z));
    tileB[(tx + 3u * TX) * TP + ty] = p3 * (dp.c3 - vec4f(dd.w));
    workgroupBarrier();
    // accv(keys, chunks) += Pᵀ (keys, BC) · dO (BC, chunks); acck += dSᵀ · (scale2 · Q)
    for (var j = 0u; j < BC; j++) {
      acc_add(&accv, tileA[j * TP + ty], chunks_b(j, tx));
      acc_add(&acck, tileB[j * TP + ty], chunks_a(j, tx));
    }
  }
  // dK = scale · Σ dS q = ln 2 · Σ dS (scale2 · q), since scale2 = scale · log2(e).
  for (var a = 0u; a < 4u; a++) {
    let j = k0 + ty + TY * a;
    if (j >= p.cap) { continue; }
    let base = ((b * p.cap + j) * Hout + wg.y) * p.P;
    for (var cc = 0u; cc < NC; cc++) {
      let c = tx + TX * cc;
      if (c < PV) { st_dkv(base, c, acc_get(acck, a, cc) * LN2, acc_get(accv, a, cc)); }
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
