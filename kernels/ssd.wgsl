// ssd.wgsl — Mamba-2 SSD, chunked: the chunk-parallel passes (forward and backward).
//
// Per (batch b, head h) and chunk c of Q steps (Q ≤ 64; the last chunk may be shorter, q = its length),
// with cum_l = Σ_{k≤l} a_k, suf_s = Σ_{k=s+1..q−1} a_k, T = cum_{q−1}, Lm[l][s] = exp(Σ_{k=s+1..l} a_k):
//   chunk_state:  S_c = Σ_s exp(suf_s) X_s B_sᵀ          (P × N; T_c → t_out)
//                 with DY_C:                             dH_c^off = Σ_l exp(cum_l) dY_l C_lᵀ
//   chunk_scan:   Y_l = Σ_{s≤l} (C_l·B_s) Lm[l][s] X_s + exp(cum_l) H_c C_l   (H_c: state entering c)
//   chunk_bwd:    G = C Bᵀ, M = G∘Lm, dYX = dY Xᵀ, dG = dYX∘Lm, R = M∘dYX, dS = 𝒢_{c+1}
//                 dX_s = Σ_l M[l][s] dY_l + exp(suf_s) dS B_s
//                 dC_l = Σ_s dG[l][s] B_s + exp(cum_l) dYᵀ_l H_c
//                 dB_s = Σ_l dG[l][s] C_l + exp(suf_s) dSᵀ X_s
//                 dA_k = Σ_{l≥k} (rowR_l − colR_l + yoff_l) + Σ_{s<k} w_s + exp(T)⟨dS, H_c⟩
//                 (yoff_l = dY_l·Y_off_l, w_s = X_s·(exp(suf_s) dS B_s); derivation in lib/ssm/ssd_ref.ts)
// The inter-chunk recurrence between these passes is kernels/ssd_state.wgsl.
// Ground truth: ssd_minimal_discrete (mamba_ssm/modules/ssd_minimal.py); lib/ssm/ssd_ref.ts.
//
// Bindings (every entry reads 1–7 through `ld`; absent ones are a dummy):
//   1 X (B, L, H, P)  2 A (B, L, H)  3 B (B, L, H, N)  4 C (B, L, H, N)  5 dY (B, L, H, P)
//   6 hin: state entering each chunk (B, nc, H, P, N)  7 dsb: dS_c = 𝒢_{c+1} (B, nc, H, P, N)
//   chunk_state: 8 s_out (B, nc, H, P, N), 9 t_out (B, H, nc)     chunk_scan: 10 y_out (B, L, H, P)
//   chunk_bwd: 11 dX, 12 dB, 13 dC (layouts of X, B, C), 14 dA (B, L, H)
// Ownership: one workgroup of 16×16 owns one (c, h, b) (grid nc × H × B): chunks run in parallel.
// Every product is a 64×64 output tile, invocation (ty, tx) owning rows 4ty…+3 and columns 4tx…+3 in
// four vec4 accumulators; wider P or N loop over tiles. Operands are staged in slices of 16 along the
// reduction axis (sa, sb; rows padded to 68 floats against bank conflicts; the next slice is fetched
// while this one is multiplied). The Q×Q matrix (M or dG) lives in msh (16 KiB), written in the
// orientation the next product reads; before that msh holds up to two more slices, so that products
// sharing a staged operand run in one pass (forward: C Bᵀ with C H_cᵀ; backward: C Bᵀ with B dSᵀ, and
// dY Xᵀ with X dS and dY H_c). 26.8 KiB of workgroup memory in all (≤ 32 KiB).
// File length: the entries share the staging and product helpers, and WGSL has no include.
// Numerics: f32. Decays are exps of sums that never cancel: cum and suf by Hillis–Steele scans of a
// (no T − cum), Lm from block sums of the disjoint ranges (the stable segsum); above the diagonal Lm is
// 0 without an exp. Rows past q load as 0, so a ragged chunk needs no padding copy.

struct Params { L: u32, H: u32, P: u32, N: u32, Q: u32, nc: u32 }

// chunk_state's operands, fixed when the pipeline is built (so that loads need no branch on them):
// false: S_c from (X, B, exp(suf)); true: dH_c^off from (dY, C, exp(cum)).
override DY_C: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xs: array<f32>;
@group(0) @binding(2) var<storage, read> av: array<f32>;
@group(0) @binding(3) var<storage, read> bs: array<f32>;
@group(0) @binding(4) var<storage, read> cs: array<f32>;
@group(0) @binding(5) var<storage, read> dys: array<f32>;
@group(0) @binding(6) var<storage, read> hin: array<f32>;
@group(0) @binding(7) var<storage, read> dsb: array<f32>;
@group(0) @binding(8) var<storage, read_write> s_out: array<f32>;
@group(0) @binding(9) var<storage, read_write> t_out: array<f32>;
@group(0) @binding(10) var<storage, read_write> y_out: array<f32>;
@group(0) @binding(11) var<storage, read_write> dx_out: array<f32>;
@group(0) @binding(12) var<storage, read_write> db_out: array<f32>;
@group(0) @binding(13) var<storage, read_write> dc_out: array<f32>;
@group(0) @binding(14) var<storage, read_write> da_out: array<f32>;

// Operand ids for `ld`.
const BX: u32 = 0u;
const BB: u32 = 1u;
const BC: u32 = 2u;
const BDY: u32 = 3u;
const BH: u32 = 4u;
const BDS: u32 = 5u;
const NONE: u32 = 99u;
const SL: u32 = 17u; // slab row stride in vec4s: 64 values + 4 of padding

var<workgroup> sa: array<vec4f, 272>; // (16, 68): [k][i/4], the left operand's slice
var<workgroup> sb: array<vec4f, 272>; // (16, 68): [k][j/4], the right operand's slice
// (64, 64): [k][i/4], M or dG (or a third slice). Sized by the override MSH: the forward's chunk_state never
// touches it, and declared workgroup memory is allocated whether used or not. Sized 1 there, the SSD forward
// went 1.00 → 0.824 ms on the H200 (B4 L2048 H32 P64 N64; docs/results.md §8h).
override MSH: u32 = 1024u;
var<workgroup> msh: array<vec4f, MSH>;
var<workgroup> a_sh: array<f32, 64>;
var<workgroup> bsum: array<f32, 16>; // sums of a over blocks of 4 steps
var<workgroup> sc_p: array<f32, 64>; // prefix scan (cum, later Σ w)
var<workgroup> sc_s: array<f32, 64>; // suffix scan (suf, later dcum)
var<workgroup> epre: array<f32, 64>; // exp(cum_l)
var<workgroup> esuf: array<f32, 64>; // exp(suf_s)

var<private> g_b: u32;
var<private> g_c: u32;
var<private> g_h: u32;
var<private> t0: u32;
var<private> qc: u32;
var<private> ty: u32;
var<private> tx: u32;
var<private> tot: f32;
var<private> acc0: vec4f; // the product being computed
var<private> acc1: vec4f;
var<private> acc2: vec4f;
var<private> acc3: vec4f;
var<private> bcc0: vec4f; // a second product sharing its staged slices
var<private> bcc1: vec4f;
var<private> bcc2: vec4f;
var<private> bcc3: vec4f;
var<private> ccc0: vec4f; // a third one (chunk_bwd: dY H_c)
var<private> ccc1: vec4f;
var<private> ccc2: vec4f;
var<private> ccc3: vec4f;

// Element (r, c) of an operand, 0 outside it: r = step in the chunk and c = feature for X, B, C, dY;
// r = p and c = n for the (P, N) states.
fn ld(buf: u32, r: u32, c: u32) -> f32 {
  if (buf >= BH) {
    if (r >= p.P || c >= p.N) { return 0.0; }
    let i = (((g_b * p.nc + g_c) * p.H + g_h) * p.P + r) * p.N + c;
    if (buf == BH) { return hin[i]; }
    return dsb[i];
  }
  let row = (g_b * p.L + t0 + r) * p.H + g_h;
  let width = select(p.N, p.P, buf == BX || buf == BDY);
  if (r >= qc || c >= width) { return 0.0; }
  switch buf {
    case 0u: { return xs[row * p.P + c]; }
    case 1u: { return bs[row * p.N + c]; }
    case 2u: { return cs[row * p.N + c]; }
    default: { return dys[row * p.P + c]; }
  }
}

// A slice is slab[k][i] = operand(i0 + i, k0 + k), k < 16, i < 64; invocation li moves entries
// e = li + 256m (m < 4). With k_contig, i runs along the operand's rows r and k along its contiguous
// axis c, else the reverse; either way consecutive invocations read consecutive c.
fn slot(k_contig: bool, m: u32, li: u32) -> vec2u {
  let e = li + 256u * m;
  return select(vec2u(e % 64u, e / 64u), vec2u(e / 16u, e % 16u), k_contig); // (i, k)
}

// One entry of a slice; wsel 1 / 2 scales by exp(suf_r) / exp(cum_r).
fn fetch1(buf: u32, k_contig: bool, i0: u32, k0: u32, wsel: u32, m: u32, li: u32) -> f32 {
  let s = slot(k_contig, m, li);
  let r = select(k0 + s.y, i0 + s.x, k_contig);
  let c = select(i0 + s.x, k0 + s.y, k_contig);
  var v = ld(buf, r, c);
  if (wsel == 1u) { v *= esuf[min(r, 63u)]; }
  if (wsel == 2u) { v *= epre[min(r, 63u)]; }
  return v;
}

fn fetch(buf: u32, k_contig: bool, i0: u32, k0: u32, wsel: u32, li: u32) -> vec4f {
  return vec4f(fetch1(buf, k_contig, i0, k0, wsel, 0u, li), fetch1(buf, k_contig, i0, k0, wsel, 1u, li),
               fetch1(buf, k_contig, i0, k0, wsel, 2u, li), fetch1(buf, k_contig, i0, k0, wsel, 3u, li));
}

// Writes fetched entries to slice dst (0 sa, 1 sb, 2 and 3 the first two slab-sized parts of msh).
fn put1(dst: u32, k_contig: bool, m: u32, li: u32, v: f32) {
  let s = slot(k_contig, m, li);
  let q = s.y * SL + s.x / 4u;
  switch dst {
    case 0u: { sa[q][s.x % 4u] = v; }
    case 1u: { sb[q][s.x % 4u] = v; }
    case 2u: { msh[q][s.x % 4u] = v; }
    default: { msh[16u * SL + q][s.x % 4u] = v; }
  }
}

fn put(dst: u32, k_contig: bool, v: vec4f, li: u32) {
  put1(dst, k_contig, 0u, li, v.x);
  put1(dst, k_contig, 1u, li, v.y);
  put1(dst, k_contig, 2u, li, v.z);
  put1(dst, k_contig, 3u, li, v.w);
}

fn zero_acc() {
  acc0 = vec4f(0.0);
  acc1 = vec4f(0.0);
  acc2 = vec4f(0.0);
  acc3 = vec4f(0.0);
}

// acc ← bcc (the second product becomes the current one).
fn take_b() {
  acc0 = bcc0;
  acc1 = bcc1;
  acc2 = bcc2;
  acc3 = bcc3;
}

// acc += sa × sb over one slice.
fn mma_ab() {
  for (var k = 0u; k < 16u; k++) {
    let a = sa[k * SL + ty];
    let b = sb[k * SL + tx];
    acc0 += a.x * b;
    acc1 += a.y * b;
    acc2 += a.z * b;
    acc3 += a.w * b;
  }
}

// acc += sa × sb, bcc += (sb if chain, else sa) × msh slice 2 and, with third, ccc += sa × msh slice 3.
fn mma2(chain: bool, third: bool) {
  for (var k = 0u; k < 16u; k++) {
    let a = sa[k * SL + ty];
    let b = sb[k * SL + tx];
    let a2 = select(a, sb[k * SL + ty], chain);
    let c = msh[k * SL + tx];
    acc0 += a.x * b;
    acc1 += a.y * b;
    acc2 += a.z * b;
    acc3 += a.w * b;
    bcc0 += a2.x * c;
    bcc1 += a2.y * c;
    bcc2 += a2.z * c;
    bcc3 += a2.w * c;
    if (third) {
      let d = msh[(16u + k) * SL + tx];
      ccc0 += a.x * d;
      ccc1 += a.y * d;
      ccc2 += a.z * d;
      ccc3 += a.w * d;
    }
  }
}

// acc += msh[k0 … k0+15] × sb.
fn mma_mb(k0: u32) {
  for (var k = 0u; k < 16u; k++) {
    let a = msh[(k0 + k) * 16u + ty];
    let b = sb[k * SL + tx];
    acc0 += a.x * b;
    acc1 += a.y * b;
    acc2 += a.z * b;
    acc3 += a.w * b;
  }
}

// acc rows ·= exp(cum) (pre) or exp(suf) of the rows' steps.
fn scale_rows(pre: bool) {
  let r = 4u * ty;
  if (pre) {
    acc0 *= epre[r];
    acc1 *= epre[r + 1u];
    acc2 *= epre[r + 2u];
    acc3 *= epre[r + 3u];
  } else {
    acc0 *= esuf[r];
    acc1 *= esuf[r + 1u];
    acc2 *= esuf[r + 2u];
    acc3 *= esuf[r + 3u];
  }
}
// Inclusive prefix scan of sc_p and inclusive suffix scan of sc_s, in place (Hillis–Steele).
fn scan2(li: u32) {
  for (var d = 1u; d < 64u; d <<= 1u) {
    var vp = 0.0;
    var vs = 0.0;
    if (li < 64u) {
      vp = sc_p[li];
      if (li >= d) { vp += sc_p[li - d]; }
      vs = sc_s[li];
      if (li + d < 64u) { vs += sc_s[li + d]; }
    }
    workgroupBarrier();
    if (li < 64u) {
      sc_p[li] = vp;
      sc_s[li] = vs;
    }
    workgroupBarrier();
  }
}

// Loads the chunk's a (0 past q) and its decays epre = exp(cum), esuf = exp(suf), tot = T.
fn prologue(wg: vec3u, lid: vec3u, li: u32) {
  g_c = wg.x;
  g_h = wg.y;
  g_b = wg.z;
  t0 = g_c * p.Q;
  qc = min(p.Q, p.L - t0);
  ty = lid.y;
  tx = lid.x;
  if (li < 64u) {
    var v = 0.0;
    if (li < qc) { v = av[(g_b * p.L + t0 + li) * p.H + g_h]; }
    a_sh[li] = v;
    sc_p[li] = v;
    sc_s[li] = v;
  }
  workgroupBarrier();
  if (li < 16u) { bsum[li] = (a_sh[4u * li] + a_sh[4u * li + 1u]) + (a_sh[4u * li + 2u] + a_sh[4u * li + 3u]); }
  scan2(li);
  if (li < 64u) {
    epre[li] = exp(sc_p[li]);
    esuf[li] = exp(select(0.0, sc_s[min(li + 1u, 63u)], li < 63u));
  }
  tot = sc_p[63];
  workgroupBarrier();
}

// Lm on this invocation's 4×4 block (row r of the block = column r of the matrix): exp of sums of
// a over disjoint ranges (the block's suffix, whole blocks between, the row block's prefix).
fn decay_tile() -> mat4x4f {
  if (tx > ty) { return mat4x4f(); }
  let ar = vec4f(a_sh[4u * ty], a_sh[4u * ty + 1u], a_sh[4u * ty + 2u], a_sh[4u * ty + 3u]);
  if (tx == ty) {
    return mat4x4f(vec4f(1.0, 0.0, 0.0, 0.0), vec4f(exp(ar.y), 1.0, 0.0, 0.0),
                   vec4f(exp(ar.y + ar.z), exp(ar.z), 1.0, 0.0),
                   vec4f(exp(ar.y + ar.z + ar.w), exp(ar.z + ar.w), exp(ar.w), 1.0));
  }
  let ac = vec4f(a_sh[4u * tx], a_sh[4u * tx + 1u], a_sh[4u * tx + 2u], a_sh[4u * tx + 3u]);
  var mid = 0.0;
  for (var j = tx + 1u; j < ty; j++) { mid += bsum[j]; }
  let col = vec4f(ac.y + ac.z + ac.w, ac.z + ac.w, ac.w, 0.0) + mid;
  return mat4x4f(exp(col + ar.x), exp(col + (ar.x + ar.y)), exp(col + (ar.x + ar.y + ar.z)),
                 exp(col + (ar.x + ar.y + ar.z + ar.w)));
}

// The decay applied to the accumulated 4×4 block: acc ∘ Lm.
fn masked_acc() -> mat4x4f {
  let lm = decay_tile();
  return mat4x4f(acc0 * lm[0], acc1 * lm[1], acc2 * lm[2], acc3 * lm[3]);
}

// acc = Σ_{k<K} U(i0 + i, k) · V(j0 + j, k), the next slice fetched while this one is multiplied.
fn product(u: u32, u_kc: bool, i0: u32, wsel: u32, v: u32, v_kc: bool, j0: u32, K: u32, li: u32) {
  zero_acc();
  var fu = fetch(u, u_kc, i0, 0u, wsel, li);
  var fv = fetch(v, v_kc, j0, 0u, 0u, li);
  for (var k0 = 0u; k0 < K; k0 += 16u) {
    put(0u, u_kc, fu, li);
    put(1u, v_kc, fv, li);
    workgroupBarrier();
    if (k0 + 16u < K) {
      fu = fetch(u, u_kc, i0, k0 + 16u, wsel, li);
      fv = fetch(v, v_kc, j0, k0 + 16u, 0u, li);
    }
    mma_ab();
    workgroupBarrier();
  }
}

// Products sharing staged slices, in one pass over k < K: acc = U Vᵀ (both k_contig, from row 0),
// bcc = (V if chain, else U) · W(j, k) and, when x ≠ NONE, ccc = U · X(j, k) (W's and X's first 64
// columns; *_kc as in `slot`).
fn product2(chain: bool, u: u32, v: u32, w: u32, w_kc: bool, x: u32, x_kc: bool, K: u32, li: u32) {
  let third = x != NONE;
  zero_acc();
  bcc0 = vec4f(0.0);
  bcc1 = vec4f(0.0);
  bcc2 = vec4f(0.0);
  bcc3 = vec4f(0.0);
  ccc0 = vec4f(0.0);
  ccc1 = vec4f(0.0);
  ccc2 = vec4f(0.0);
  ccc3 = vec4f(0.0);
  var fu = fetch(u, true, 0u, 0u, 0u, li);
  var fv = fetch(v, true, 0u, 0u, 0u, li);
  var fw = fetch(w, w_kc, 0u, 0u, 0u, li);
  var fx = vec4f(0.0);
  if (third) { fx = fetch(x, x_kc, 0u, 0u, 0u, li); }
  for (var k0 = 0u; k0 < K; k0 += 16u) {
    put(0u, true, fu, li);
    put(1u, true, fv, li);
    put(2u, w_kc, fw, li);
    if (third) { put(3u, x_kc, fx, li); }
    workgroupBarrier();
    if (k0 + 16u < K) {
      fu = fetch(u, true, 0u, k0 + 16u, 0u, li);
      fv = fetch(v, true, 0u, k0 + 16u, 0u, li);
      fw = fetch(w, w_kc, 0u, k0 + 16u, 0u, li);
      if (third) { fx = fetch(x, x_kc, 0u, k0 + 16u, 0u, li); }
    }
    mma2(chain, third);
    workgroupBarrier();
  }
}

// acc += Σ_{k<q} msh[k][i] · V(k, j0 + j) (V's rows are steps). msh is 0 where k > i (k_le_i) or
// k < i (!k_le_i): slices of k wholly on that side of this invocation's rows are skipped.
fn product_m(v: u32, j0: u32, k_le_i: bool, li: u32) {
  var fv = fetch(v, false, j0, 0u, 0u, li);
  for (var k0 = 0u; k0 < qc; k0 += 16u) {
    put(1u, false, fv, li);
    workgroupBarrier();
    if (k0 + 16u < qc) { fv = fetch(v, false, j0, k0 + 16u, 0u, li); }
    if ((k_le_i && k0 <= 4u * ty + 3u) || (!k_le_i && k0 + 15u >= 4u * ty)) { mma_mb(k0); }
    workgroupBarrier();
  }
}

// Row i of this invocation's block of acc.
fn acc_row(i: u32) -> vec4f {
  switch i {
    case 0u: { return acc0; }
    case 1u: { return acc1; }
    case 2u: { return acc2; }
    default: { return acc3; }
  }
}

// Where row i of this invocation's block goes in an output whose element (r, c) sits at
// base + r·rs + c (rows 4ty + i < rows, columns c0 + 4tx + j < cols): (index of j = 0, valid j).
fn out_row(i: u32, base: u32, rs: u32, rows: u32, c0: u32, cols: u32) -> vec2u {
  let r = 4u * ty + i;
  let c = c0 + 4u * tx;
  if (r >= rows || c >= cols) { return vec2u(0u, 0u); }
  return vec2u(base + r * rs + c, min(cols - c, 4u));
}

// this invocation's 4 values of an operand row: U(r, c … c+3).
fn ld4(buf: u32, r: u32, c: u32) -> vec4f {
  return vec4f(ld(buf, r, c), ld(buf, r, c + 1u), ld(buf, r, c + 2u), ld(buf, r, c + 3u));
}

// Σ_j acc[i][j] · U(4ty + i, c0 + 4tx + j) per row i: a row-wise dot with an operand.
fn dot_rows(buf: u32, c0: u32) -> vec4f {
  let r = 4u * ty;
  let c = c0 + 4u * tx;
  return vec4f(dot(acc0, ld4(buf, r, c)), dot(acc1, ld4(buf, r + 1u, c)), dot(acc2, ld4(buf, r + 2u, c)),
               dot(acc3, ld4(buf, r + 3u, c)));
}

// Σ over tx of each invocation's vec4 of row values (rows 4ty…+3) → one value per row, for li < 64.
fn sum_over_tx(v: vec4f, li: u32) -> f32 {
  workgroupBarrier();
  sa[tx * 16u + ty] = v;
  workgroupBarrier();
  var s = 0.0;
  if (li < 64u) {
    for (var k = 0u; k < 16u; k++) { s += sa[k * 16u + li / 4u][li % 4u]; }
  }
  workgroupBarrier();
  return s;
}

// Offset of (b, t0, h, 0) in a (B, L, H, F) tensor (row stride H·F).
fn seq_base(width: u32) -> u32 {
  return ((g_b * p.L + t0) * p.H + g_h) * width;
}

// Writes M (or dG) to msh as [k = s][i = l] (t = false) or [k = l][i = s] (t = true).
fn put_m(m: mat4x4f, t: bool) {
  if (t) {
    for (var i = 0u; i < 4u; i++) { msh[(4u * ty + i) * 16u + tx] = m[i]; }
  } else {
    for (var j = 0u; j < 4u; j++) { msh[(4u * tx + j) * 16u + ty] = vec4f(m[0][j], m[1][j], m[2][j], m[3][j]); }
  }
  workgroupBarrier();
}

@compute @workgroup_size(16, 16)
fn chunk_state(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
               @builtin(local_invocation_index) li: u32) {
  prologue(wg, lid, li);
  let base = ((g_b * p.nc + g_c) * p.H + g_h) * p.P * p.N;
  for (var p0 = 0u; p0 < p.P; p0 += 64u) {
    for (var n0 = 0u; n0 < p.N; n0 += 64u) {
      product(select(BX, BDY, DY_C), false, p0, select(1u, 2u, DY_C), select(BB, BC, DY_C), false, n0, qc, li);
      for (var i = 0u; i < 4u; i++) {
        let o = out_row(i, base + p0 * p.N, p.N, p.P - p0, n0, p.N);
        let v = acc_row(i);
        for (var j = 0u; j < o.y; j++) { s_out[o.x + j] = v[j]; }
      }
    }
  }
  if (!DY_C && li == 0u) { t_out[(g_b * p.H + g_h) * p.nc + g_c] = tot; }
}

@compute @workgroup_size(16, 16)
fn chunk_scan(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
              @builtin(local_invocation_index) li: u32) {
  prologue(wg, lid, li);
  product2(false, BC, BB, BH, true, NONE, false, p.N, li); // G = C Bᵀ; bcc = C H_cᵀ (first P tile)
  put_m(masked_acc(), false);
  for (var p0 = 0u; p0 < p.P; p0 += 64u) {
    if (p0 == 0u) { take_b(); } else { product(BC, true, 0u, 0u, BH, true, p0, p.N, li); }
    scale_rows(true); // exp(cum_l) H_c C_l
    product_m(BX, p0, true, li); // + M X
    for (var i = 0u; i < 4u; i++) {
      let o = out_row(i, seq_base(p.P), p.H * p.P, qc, p0, p.P);
      let v = acc_row(i);
      for (var j = 0u; j < o.y; j++) { y_out[o.x + j] = v[j]; }
    }
  }
}

@compute @workgroup_size(16, 16)
fn chunk_bwd(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
             @builtin(local_invocation_index) li: u32) {
  prologue(wg, lid, li);
  // dX = Mᵀ dY + exp(suf_s) dS B_s; w_s = Σ_p X_s · (state part)
  product2(true, BC, BB, BDS, true, NONE, false, p.N, li); // G = C Bᵀ; bcc = B dSᵀ (first P tile)
  let m = masked_acc();
  put_m(m, true);
  var wv = vec4f(0.0);
  for (var p0 = 0u; p0 < p.P; p0 += 64u) {
    if (p0 == 0u) { take_b(); } else { product(BB, true, 0u, 0u, BDS, true, p0, p.N, li); }
    scale_rows(false);
    wv += dot_rows(BX, p0);
    product_m(BDY, p0, false, li);
    for (var i = 0u; i < 4u; i++) {
      let o = out_row(i, seq_base(p.P), p.H * p.P, qc, p0, p.P);
      let v = acc_row(i);
      for (var j = 0u; j < o.y; j++) { dx_out[o.x + j] = v[j]; }
    }
  }
  let w = sum_over_tx(wv, li);
  if (li < 64u) { sc_p[li] = w; }
  // dYX = dY Xᵀ; bcc = X dS and ccc = dY H_c (first N tile)
  product2(true, BDY, BX, BDS, false, BH, false, p.P, li);
  let dg = masked_acc();
  let r = mat4x4f(m[0] * acc0, m[1] * acc1, m[2] * acc2, m[3] * acc3); // R = M ∘ dYX
  // rowR − colR → sc_s (sb holds the column sums: [ty][s/4])
  sb[ty * 16u + tx] = r[0] + r[1] + r[2] + r[3];
  let one = vec4f(1.0);
  let rows = sum_over_tx(vec4f(dot(r[0], one), dot(r[1], one), dot(r[2], one), dot(r[3], one)), li);
  if (li < 64u) {
    var cols = 0.0;
    for (var k = 0u; k < 16u; k++) { cols += sb[k * 16u + li / 4u][li % 4u]; }
    sc_s[li] = rows - cols;
  }
  // dC = dG B + exp(cum_l) dY_l H_c; yoff_l = Σ_n C_l · (off part)
  put_m(dg, false);
  var yv = vec4f(0.0);
  for (var n0 = 0u; n0 < p.N; n0 += 64u) {
    if (n0 == 0u) {
      acc0 = ccc0;
      acc1 = ccc1;
      acc2 = ccc2;
      acc3 = ccc3;
    } else {
      product(BDY, true, 0u, 0u, BH, false, n0, p.P, li);
    }
    scale_rows(true);
    yv += dot_rows(BC, n0);
    product_m(BB, n0, true, li);
    for (var i = 0u; i < 4u; i++) {
      let o = out_row(i, seq_base(p.N), p.H * p.N, qc, n0, p.N);
      let v = acc_row(i);
      for (var j = 0u; j < o.y; j++) { dc_out[o.x + j] = v[j]; }
    }
  }
  let yoff = sum_over_tx(yv, li);
  if (li < 64u) { sc_s[li] += yoff; }
  // dB = dGᵀ C + exp(suf_s) X_s dS
  put_m(dg, true);
  for (var n0 = 0u; n0 < p.N; n0 += 64u) {
    if (n0 == 0u) { take_b(); } else { product(BX, true, 0u, 0u, BDS, false, n0, p.P, li); }
    scale_rows(false);
    product_m(BC, n0, false, li);
    for (var i = 0u; i < 4u; i++) {
      let o = out_row(i, seq_base(p.N), p.H * p.N, qc, n0, p.N);
      let v = acc_row(i);
      for (var j = 0u; j < o.y; j++) { db_out[o.x + j] = v[j]; }
    }
  }
  // dA_k = Σ_{l≥k} (rowR − colR + yoff)_l + Σ_{s<k} w_s + exp(T)⟨dS, H_c⟩
  let sbase = ((g_b * p.nc + g_c) * p.H + g_h) * p.P * p.N;
  var part = 0.0;
  for (var e = li; e < p.P * p.N; e += 256u) { part += dsb[sbase + e] * hin[sbase + e]; }
  let dT = exp(tot) * wg_sum(li, part);
  scan2(li);
  if (li < qc) {
    let head = select(0.0, sc_p[max(li, 1u) - 1u], li > 0u);
    da_out[(g_b * p.L + t0 + li) * p.H + g_h] = sc_s[li] + head + dT;
  }
}
