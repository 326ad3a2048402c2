enable f16;

// matmul_f16.wgsl — batched, strided matrix product of f16-stored operands, accumulated in f32.
//
//   C[b](m, n) = α · Σ_k f32(A[b](m, k)) · f32(B[b](k, n))  (+ bias[n])  (+ C[b](m, n) when accumulating)
//
// A and B are f16 storage tensors (lib/tensor/tensor.ts, dtype "f16": IEEE halves, two per word); C and
// the bias are f32. Every half is widened to f32 exactly when it is loaded from global memory, so each
// product a·b of two halves is exact in f32 (11 + 11 significant bits < 24) and only the f32 sums round:
// the result is the f32 tiled product of the f16-rounded inputs. Ground truth: torch.matmul of fp16
// tensors with fp32 accumulation and fp32 output (lib/tensor/matmul_f16_ref.ts is the float64 twin).
// Halving the bytes of the operands halves global-memory traffic; the arithmetic is the f32 kernel's
// (WGSL has no tensor-core / mma instructions, so f16 inputs do not buy a faster FMA here).
//
// Parameters, strides, batch splitting and bias/accumulate flags are those of kernels/matmul.wgsl (the
// host builds them with the same `matmulParams`). Strides and offsets count elements (halves for A, B).
//
// Ownership, as main128db / main128v4 of matmul.wgsl: one workgroup owns a 128×128 tile of C for one
// batch entry (grid: N/128, M/128, batch); each of its 16×16 invocations owns an 8×8 block in 16 named
// vec4f accumulators (rows 4ty…4ty+3 and 64+4ty…, columns 4tx…4tx+3 and 64+4tx…). K is walked in slices
// of 8, staged in workgroup memory as f32 (k-major vec4 rows of 128, padded to 33 vec4; 2 operands ×
// 2 buffers = 16.5 KiB), double-buffered: slice k0+8 is fetched into registers while slice k0 is
// multiplied, one barrier per slice.
//   - main128: scalar f16 loads, any strides (four per operand per invocation, coalesced along the
//     operand's contiguous axis);
//   - main128v4: one vec4<f16> (8 bytes) per operand per invocation, for aligned operands (the host
//     checks: A K-contiguous, B K- or N-contiguous, offsets, row strides, K (and N) multiples of 4);
//   - main128u32: the same loads as two u32 words; main128k16 (at the end): K slices of 16, 16 bytes per
//     load, for operands aligned to 8 (the default for aligned operands).
// H200 (bench/results/2026-12-01-h200-matmul-f16.json), 4096³: main128k16 4.44 ms NN / 4.46 ms NT
// (31.0 / 30.8 TFLOP/s), main128v4 and main128u32 4.85 / 4.54 ms, the f32 main128v4 4.74 / 4.70 ms; at
// 2048³ 0.568 ms against 0.606 ms for f32. cuBLAS's fp16 product (tensor cores, fp32 accumulation) takes
// 0.22 ms at 4096³ (≈ 625 TFLOP/s): out of reach without matrix instructions.

struct Params {
  M: u32, N: u32, K: u32, nb1: u32,
  a_off: u32, a_s0: u32, a_s1: u32, a_div: u32, a_sm: u32, a_sk: u32,
  b_off: u32, b_s0: u32, b_s1: u32, b_div: u32, b_sk: u32, b_sn: u32,
  c_off: u32, c_s0: u32, c_s1: u32, c_sm: u32, c_sn: u32,
  alpha: f32, flags: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f16>;
@group(0) @binding(2) var<storage, read> B: array<f16>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

fn store1(m: u32, n: u32, c_base: u32, x: f32) {
  if (m >= p.M || n >= p.N) { return; }
  var v = p.alpha * x;
  if ((p.flags & 1u) != 0u) { v += bias[n]; }
  let idx = c_base + m * p.c_sm + n * p.c_sn;
  if ((p.flags & 2u) != 0u) { v += C[idx]; }
  C[idx] = v;
}

fn store4(m: u32, n: u32, c_base: u32, v: vec4f) {
  store1(m, n, c_base, v.x);
  store1(m, n + 1u, c_base, v.y);
  store1(m, n + 2u, c_base, v.z);
  store1(m, n + 3u, c_base, v.w);
}

const SROW: u32 = 33u; // vec4 per k-row of a stage (32 + 1 padding)
const SBUF: u32 = 264u; // vec4 per buffer (8 k-rows)
var<workgroup> Asd: array<vec4f, 528>;
var<workgroup> Bsd: array<vec4f, 528>;

// Element e (0 … 1023) of a K slice of A and of B: staging coordinates (row or column, k) chosen so
// that consecutive e run along the operand's contiguous axis (coalesced loads).
fn a_at(e: u32) -> vec2u {
  if (p.a_sm == 1u) { return vec2u(e % 128u, e / 128u); }
  return vec2u(e / 8u, e % 8u);
}
fn b_at(e: u32) -> vec2u {
  if (p.b_sn == 1u) { return vec2u(e % 128u, e / 128u); }
  return vec2u(e / 8u, e % 8u);
}
fn fetch_a(e: u32, m0: u32, k0: u32, a_base: u32) -> f32 {
  let rk = a_at(e);
  if (m0 + rk.x < p.M && k0 + rk.y < p.K) { return f32(A[a_base + (m0 + rk.x) * p.a_sm + (k0 + rk.y) * p.a_sk]); }
  return 0.0;
}
fn fetch_b(e: u32, n0: u32, k0: u32, b_base: u32) -> f32 {
  let ck = b_at(e);
  if (n0 + ck.x < p.N && k0 + ck.y < p.K) { return f32(B[b_base + (k0 + ck.y) * p.b_sk + (n0 + ck.x) * p.b_sn]); }
  return 0.0;
}

// One invocation's share of a K slice, widened to f32, held in registers between fetch and stash.
struct Slice { a: vec4f, b: vec4f }

fn fetch_db(li: u32, m0: u32, n0: u32, k0: u32, a_base: u32, b_base: u32) -> Slice {
  return Slice(
    vec4f(fetch_a(li, m0, k0, a_base), fetch_a(li + 256u, m0, k0, a_base), fetch_a(li + 512u, m0, k0, a_base),
          fetch_a(li + 768u, m0, k0, a_base)),
    vec4f(fetch_b(li, n0, k0, b_base), fetch_b(li + 256u, n0, k0, b_base), fetch_b(li + 512u, n0, k0, b_base),
          fetch_b(li + 768u, n0, k0, b_base)),
  );
}

fn put_a(e: u32, buf: u32, v: f32) {
  let rk = a_at(e);
  Asd[buf + rk.y * SROW + rk.x / 4u][rk.x % 4u] = v;
}
fn put_b(e: u32, buf: u32, v: f32) {
  let ck = b_at(e);
  Bsd[buf + ck.y * SROW + ck.x / 4u][ck.x % 4u] = v;
}

fn stash_db(li: u32, buf: u32, s: Slice) {
  put_a(li, buf, s.a.x);
  put_a(li + 256u, buf, s.a.y);
  put_a(li + 512u, buf, s.a.z);
  put_a(li + 768u, buf, s.a.w);
  put_b(li, buf, s.b.x);
  put_b(li + 256u, buf, s.b.y);
  put_b(li + 512u, buf, s.b.z);
  put_b(li + 768u, buf, s.b.w);
}

@compute @workgroup_size(16, 16)
fn main128(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let b0 = wg.z / p.nb1;
  let b1 = wg.z % p.nb1;
  let a_base = p.a_off + b0 * p.a_s0 + (b1 / p.a_div) * p.a_s1;
  let b_base = p.b_off + b0 * p.b_s0 + (b1 / p.b_div) * p.b_s1;
  let c_base = p.c_off + b0 * p.c_s0 + b1 * p.c_s1;
  let m0 = wg.y * 128u;
  let n0 = wg.x * 128u;
  let tx = lid.x;
  let ty = lid.y;
  // c{i}{l,h}: row i of the invocation's 8 (i < 4: 4ty + i; i ≥ 4: 64 + 4ty + i − 4), columns
  // 4tx … 4tx+3 (l) and 64+4tx … (h)
  var c0l = vec4f(0.0);
  var c0h = vec4f(0.0);
  var c1l = vec4f(0.0);
  var c1h = vec4f(0.0);
  var c2l = vec4f(0.0);
  var c2h = vec4f(0.0);
  var c3l = vec4f(0.0);
  var c3h = vec4f(0.0);
  var c4l = vec4f(0.0);
  var c4h = vec4f(0.0);
  var c5l = vec4f(0.0);
  var c5h = vec4f(0.0);
  var c6l = vec4f(0.0);
  var c6h = vec4f(0.0);
  var c7l = vec4f(0.0);
  var c7h = vec4f(0.0);
  stash_db(li, 0u, fetch_db(li, m0, n0, 0u, a_base, b_base));
  workgroupBarrier();
  var cur = 0u;
  for (var k0 = 0u; k0 < p.K; k0 += 8u) {
    let more = k0 + 8u < p.K;
    var next: Slice;
    if (more) { next = fetch_db(li, m0, n0, k0 + 8u, a_base, b_base); }
    for (var kk = 0u; kk < 8u; kk++) {
      let o = cur + kk * SROW;
      let al = Asd[o + ty];
      let ah = Asd[o + 16u + ty];
      let bl = Bsd[o + tx];
      let bh = Bsd[o + 16u + tx];
      c0l += al.x * bl;
      c0h += al.x * bh;
      c1l += al.y * bl;
      c1h += al.y * bh;
      c2l += al.z * bl;
      c2h += al.z * bh;
      c3l += al.w * bl;
      c3h += al.w * bh;
      c4l += ah.x * bl;
      c4h += ah.x * bh;
      c5l += ah.y * bl;
      c5h += ah.y * bh;
      c6l += ah.z * bl;
      c6h += ah.z * bh;
      c7l += ah.w * bl;
      c7h += ah.w * bh;
    }
    cur = SBUF - cur;
    if (more) { stash_db(li, cur, next); }
    workgroupBarrier();
  }
  let r0 = m0 + 4u * ty;
  let r1 = m0 + 64u + 4u * ty;
  let q0 = n0 + 4u * tx;
  let q1 = n0 + 64u + 4u * tx;
  store4(r0, q0, c_base, c0l);
  store4(r0, q1, c_base, c0h);
  store4(r0 + 1u, q0, c_base, c1l);
  store4(r0 + 1u, q1, c_base, c1h);
  store4(r0 + 2u, q0, c_base, c2l);
  store4(r0 + 2u, q1, c_base, c2h);
  store4(r0 + 3u, q0, c_base, c3l);
  store4(r0 + 3u, q1, c_base, c3h);
  store4(r1, q0, c_base, c4l);
  store4(r1, q1, c_base, c4h);
  store4(r1 + 1u, q0, c_base, c5l);
  store4(r1 + 1u, q1, c_base, c5h);
  store4(r1 + 2u, q0, c_base, c6l);
  store4(r1 + 2u, q1, c_base, c6h);
  store4(r1 + 3u, q0, c_base, c7l);
  store4(r1 + 3u, q1, c_base, c7h);
}

// The same buffers bound as vec4<f16> arrays for main128v4 (no entry point uses both views).
@group(0) @binding(1) var<storage, read> A4: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> B4: array<vec4<f16>>;

// A K-contiguous operand's vec4 for invocation li: row li / 2, k = k0 + 4 (li % 2) … +3; zero past the edge.
fn fetch_rows4(li: u32, rows: u32, r0: u32, k0: u32, base: u32, stride: u32, is_a: bool) -> vec4f {
  let r = li / 2u;
  let k = k0 + 4u * (li % 2u);
  if (r0 + r >= rows || k >= p.K) { return vec4f(0.0); }
  let i = (base + (r0 + r) * stride + k) / 4u;
  if (is_a) { return vec4f(A4[i]); }
  return vec4f(B4[i]);
}

fn put_rows4(li: u32, buf: u32, v: vec4f, is_a: bool) {
  let r = li / 2u;
  let o = buf + 4u * (li % 2u) * SROW + r / 4u;
  if (is_a) {
    Asd[o][r % 4u] = v.x;
    Asd[o + SROW][r % 4u] = v.y;
    Asd[o + 2u * SROW][r % 4u] = v.z;
    Asd[o + 3u * SROW][r % 4u] = v.w;
  } else {
    Bsd[o][r % 4u] = v.x;
    Bsd[o + SROW][r % 4u] = v.y;
    Bsd[o + 2u * SROW][r % 4u] = v.z;
    Bsd[o + 3u * SROW][r % 4u] = v.w;
  }
}

fn fetch_v4(li: u32, m0: u32, n0: u32, k0: u32, a_base: u32, b_base: u32) -> Slice {
  let a = fetch_rows4(li, p.M, m0, k0, a_base, p.a_sm, true);
  if (p.b_sn == 1u) {
    // B (K, N) row-major: row k0 + li / 32 of the slice, columns n0 + 4 (li % 32) … +3
    let k = k0 + li / 32u;
    let n = n0 + 4u * (li % 32u);
    var b = vec4f(0.0);
    if (k < p.K && n < p.N) { b = vec4f(B4[(b_base + k * p.b_sk + n) / 4u]); }
    return Slice(a, b);
  }
  return Slice(a, fetch_rows4(li, p.N, n0, k0, b_base, p.b_sn, false));
}

fn stash_v4(li: u32, buf: u32, s: Slice) {
  put_rows4(li, buf, s.a, true);
  if (p.b_sn == 1u) {
    Bsd[buf + (li / 32u) * SROW + li % 32u] = s.b;
  } else {
    put_rows4(li, buf, s.b, false);
  }
}

@compute @workgroup_size(16, 16)
fn main128v4(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let b0 = wg.z / p.nb1;
  let b1 = wg.z % p.nb1;
  let a_base = p.a_off + b0 * p.a_s0 + (b1 / p.a_div) * p.a_s1;
  let b_base = p.b_off + b0 * p.b_s0 + (b1 / p.b_div) * p.b_s1;
  let c_base = p.c_off + b0 * p.c_s0 + b1 * p.c_s1;
  let m0 = wg.y * 128u;
  let n0 = wg.x * 128u;
  let tx = lid.x;
  let ty = lid.y;
  var c0l = vec4f(0.0);
  var c0h = vec4f(0.0);
  var c1l = vec4f(0.0);
  var c1h = vec4f(0.0);
  var c2l = vec4f(0.0);
  var c2h = vec4f(0.0);
  var c3l = vec4f(0.0);
  var c3h = vec4f(0.0);
  var c4l = vec4f(0.0);
  var c4h = vec4f(0.0);
  var c5l = vec4f(0.0);
  var c5h = vec4f(0.0);
  var c6l = vec4f(0.0);
  var c6h = vec4f(0.0);
  var c7l = vec4f(0.0);
  var c7h = vec4f(0.0);
  stash_v4(li, 0u, fetch_v4(li, m0, n0, 0u, a_base, b_base));
  workgroupBarrier();
  var cur = 0u;
  for (var k0 = 0u; k0 < p.K; k0 += 8u) {
    let more = k0 + 8u < p.K;
    var next: Slice;
    if (more) { next = fetch_v4(li, m0, n0, k0 + 8u, a_base, b_base); }
    for (var kk = 0u; kk < 8u; kk++) {
      let o = cur + kk * SROW;
      let al = Asd[o + ty];
      let ah = Asd[o + 16u + ty];
      let bl = Bsd[o + tx];
      let bh = Bsd[o + 16u + tx];
      c0l += al.x * bl;
      c0h += al.x * bh;
      c1l += al.y * bl;
      c1h += al.y * bh;
      c2l += al.z * bl;
      c2h += al.z * bh;
      c3l += al.w * bl;
      c3h += al.w * bh;
      c4l += ah.x * bl;
      c4h += ah.x * bh;
      c5l += ah.y * bl;
      c5h += ah.y * bh;
      c6l += ah.z * bl;
      c6h += ah.z * bh;
      c7l += ah.w * bl;
      c7h += ah.w * bh;
    }
    cur = SBUF - cur;
    if (more) { stash_v4(li, cur, next); }
    workgroupBarrier();
  }
  let r0 = m0 + 4u * ty;
  let r1 = m0 + 64u + 4u * ty;
  let q0 = n0 + 4u * tx;
  let q1 = n0 + 64u + 4u * tx;
  store4(r0, q0, c_base, c0l);
  store4(r0, q1, c_base, c0h);
  store4(r0 + 1u, q0, c_base, c1l);
  store4(r0 + 1u, q1, c_base, c1h);
  store4(r0 + 2u, q0, c_base, c2l);
  store4(r0 + 2u, q1, c_base, c2h);
  store4(r0 + 3u, q0, c_base, c3l);
  store4(r0 + 3u, q1, c_base, c3h);
  store4(r1, q0, c_base, c4l);
  store4(r1, q1, c_base, c4h);
  store4(r1 + 1u, q0, c_base, c5l);
  store4(r1 + 1u, q1, c_base, c5h);
  store4(r1 + 2u, q0, c_base, c6l);
  store4(r1 + 2u, q1, c_base, c6h);
  store4(r1 + 3u, q0, c_base, c7l);
  store4(r1 + 3u, q1, c_base, c7h);
}

// main128u32: main128v4 with each group of four halves read as two u32 words (one 8-byte load)
// and widened by unpack2x16float (element 2w is the low half of word w), in case a driver splits a
// vec4<f16> storage load into 16-bit loads. The host picks the entry (bench/matmul_f16.ts times both).
@group(0) @binding(1) var<storage, read> A2: array<vec2u>;
@group(0) @binding(2) var<storage, read> B2: array<vec2u>;

fn widen4(w: vec2u) -> vec4f {
  return vec4f(unpack2x16float(w.x), unpack2x16float(w.y));
}

// A K-contiguous operand's vec4 for invocation li: row li / 2, k = k0 + 4 (li % 2) … +3; zero past the edge.
fn fetch_rows4u(li: u32, rows: u32, r0: u32, k0: u32, base: u32, stride: u32, is_a: bool) -> vec4f {
  let r = li / 2u;
  let k = k0 + 4u * (li % 2u);
  if (r0 + r >= rows || k >= p.K) { return vec4f(0.0); }
  let i = (base + (r0 + r) * stride + k) / 4u;
  if (is_a) { return widen4(A2[i]); }
  return widen4(B2[i]);
}

fn fetch_u32(li: u32, m0: u32, n0: u32, k0: u32, a_base: u32, b_base: u32) -> Slice {
  let a = fetch_rows4u(li, p.M, m0, k0, a_base, p.a_sm, true);
  if (p.b_sn == 1u) {
    // B (K, N) row-major: row k0 + li / 32 of the slice, columns n0 + 4 (li % 32) … +3
    let k = k0 + li / 32u;
    let n = n0 + 4u * (li % 32u);
    var b = vec4f(0.0);
    if (k < p.K && n < p.N) { b = widen4(B2[(b_base + k * p.b_sk + n) / 4u]); }
    return Slice(a, b);
  }
  return Slice(a, fetch_rows4u(li, p.N, n0, k0, b_base, p.b_sn, false));
}

@compute @workgroup_size(16, 16)
fn main128u32(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let b0 = wg.z / p.nb1;
  let b1 = wg.z % p.nb1;
  let a_base = p.a_off + b0 * p.a_s0 + (b1 / p.a_div) * p.a_s1;
  let b_base = p.b_off + b0 * p.b_s0 + (b1 / p.b_div) * p.b_s1;
  let c_base = p.c_off + b0 * p.c_s0 + b1 * p.c_s1;
  let m0 = wg.y * 128u;
  let n0 = wg.x * 128u;
  let tx = lid.x;
  let ty = lid.y;
  var c0l = vec4f(0.0);
  var c0h = vec4f(0.0);
  var c1l = vec4f(0.0);
  var c1h = vec4f(0.0);
  var c2l = vec4f(0.0);
  var c2h = vec4f(0.0);
  var c3l = vec4f(0.0);
  var c3h = vec4f(0.0);
  var c4l = vec4f(0.0);
  var c4h = vec4f(0.0);
  var c5l = vec4f(0.0);
  var c5h = vec4f(0.0);
  var c6l = vec4f(0.0);
  var c6h = vec4f(0.0);
  var c7l = vec4f(0.0);
  var c7h = vec4f(0.0);
  stash_v4(li, 0u, fetch_u32(li, m0, n0, 0u, a_base, b_base));
  workgroupBarrier();
  var cur = 0u;
  for (var k0 = 0u; k0 < p.K; k0 += 8u) {
    let more = k0 + 8u < p.K;
    var next: Slice;
    if (more) { next = fetch_u32(li, m0, n0, k0 + 8u, a_base, b_base); }
    for (var kk = 0u; kk < 8u; kk++) {
      let o = cur + kk * SROW;
      let al = Asd[o + ty];
      let ah = Asd[o + 16u + ty];
      let bl = Bsd[o + tx];
      let bh = Bsd[o + 16u + tx];
      c0l += al.x * bl;
      c0h += al.x * bh;
      c1l += al.y * bl;
      c1h += al.y * bh;
      c2l += al.z * bl;
      c2h += al.z * bh;
      c3l += al.w * bl;
      c3h += al.w * bh;
      c4l += ah.x * bl;
      c4h += ah.x * bh;
      c5l += ah.y * bl;
      c5h += ah.y * bh;
      c6l += ah.z * bl;
      c6h += ah.z * bh;
      c7l += ah.w * bl;
      c7h += ah.w * bh;
    }
    cur = SBUF - cur;
    if (more) { stash_v4(li, cur, next); }
    workgroupBarrier();
  }
  let r0 = m0 + 4u * ty;
  let r1 = m0 + 64u + 4u * ty;
  let q0 = n0 + 4u * tx;
  let q1 = n0 + 64u + 4u * tx;
  store4(r0, q0, c_base, c0l);
  store4(r0, q1, c_base, c0h);
  store4(r0 + 1u, q0, c_base, c1l);
  store4(r0 + 1u, q1, c_base, c1h);
  store4(r0 + 2u, q0, c_base, c2l);
  store4(r0 + 2u, q1, c_base, c2h);
  store4(r0 + 3u, q0, c_base, c3l);
  store4(r0 + 3u, q1, c_base, c3h);
  store4(r1, q0, c_base, c4l);
  store4(r1, q1, c_base, c4h);
  store4(r1 + 1u, q0, c_base, c5l);
  store4(r1 + 1u, q1, c_base, c5h);
  store4(r1 + 2u, q0, c_base, c6l);
  store4(r1 + 2u, q1, c_base, c6h);
  store4(r1 + 3u, q0, c_base, c7l);
  store4(r1 + 3u, q1, c_base, c7h);
}

// main128k16: K slices of 16 and 16-byte global loads (eight halves as a vec4u, widened with
// unpack2x16float), for operands aligned to 8 halves (the host checks: offsets, row strides, K and, for
// an N-contiguous B, N multiples of 8). With slices of 8 a K-contiguous row contributes only 16 bytes
// per slice in f16 (half a 32-byte memory sector); with 16 it contributes a whole sector, as in f32.
// One stage of 16 k-rows per operand, f32 (the same 2 × 8.25 KiB arrays as the double buffers above);
// the next slice's loads are issued before the current slice is multiplied (registers), and two
// barriers guard the stage.
@group(0) @binding(1) var<storage, read> A8: array<vec4u>;
@group(0) @binding(2) var<storage, read> B8: array<vec4u>;

struct Slice16 { a: vec4u, b: vec4u }

// A K-contiguous operand's eight halves for invocation li: row li / 2, k = k0 + 8 (li % 2) … +7.
fn fetch_rows8(li: u32, rows: u32, r0: u32, k0: u32, base: u32, stride: u32, is_a: bool) -> vec4u {
  let r = li / 2u;
  let k = k0 + 8u * (li % 2u);
  if (r0 + r >= rows || k >= p.K) { return vec4u(0u); } // the bits of +0.0
  let i = (base + (r0 + r) * stride + k) / 8u;
  if (is_a) { return A8[i]; }
  return B8[i];
}

fn fetch_k16(li: u32, m0: u32, n0: u32, k0: u32, a_base: u32, b_base: u32) -> Slice16 {
  let a = fetch_rows8(li, p.M, m0, k0, a_base, p.a_sm, true);
  if (p.b_sn == 1u) {
    // B (K, N) row-major: row k0 + li / 16 of the slice, columns n0 + 8 (li % 16) … +7
    let k = k0 + li / 16u;
    let n = n0 + 8u * (li % 16u);
    var b = vec4u(0u);
    if (k < p.K && n < p.N) { b = B8[(b_base + k * p.b_sk + n) / 8u]; }
    return Slice16(a, b);
  }
  return Slice16(a, fetch_rows8(li, p.N, n0, k0, b_base, p.b_sn, false));
}

// Row li / 2's eight values, k-rows 8 (li % 2) … +7 of the stage, column r of its k-major rows.
fn put_rows8(li: u32, w: vec4u, is_a: bool) {
  let r = li / 2u;
  let o = 8u * (li % 2u) * SROW + r / 4u;
  let c = r % 4u;
  let v0 = unpack2x16float(w.x);
  let v1 = unpack2x16float(w.y);
  let v2 = unpack2x16float(w.z);
  let v3 = unpack2x16float(w.w);
  if (is_a) {
    Asd[o][c] = v0.x;
    Asd[o + SROW][c] = v0.y;
    Asd[o + 2u * SROW][c] = v1.x;
    Asd[o + 3u * SROW][c] = v1.y;
    Asd[o + 4u * SROW][c] = v2.x;
    Asd[o + 5u * SROW][c] = v2.y;
    Asd[o + 6u * SROW][c] = v3.x;
    Asd[o + 7u * SROW][c] = v3.y;
  } else {
    Bsd[o][c] = v0.x;
    Bsd[o + SROW][c] = v0.y;
    Bsd[o + 2u * SROW][c] = v1.x;
    Bsd[o + 3u * SROW][c] = v1.y;
    Bsd[o + 4u * SROW][c] = v2.x;
    Bsd[o + 5u * SROW][c] = v2.y;
    Bsd[o + 6u * SROW][c] = v3.x;
    Bsd[o + 7u * SROW][c] = v3.y;
  }
}

fn stash_k16(li: u32, s: Slice16) {
  put_rows8(li, s.a, true);
  if (p.b_sn == 1u) {
    let o = (li / 16u) * SROW + 2u * (li % 16u);
    Bsd[o] = vec4f(unpack2x16float(s.b.x), unpack2x16float(s.b.y));
    Bsd[o + 1u] = vec4f(unpack2x16float(s.b.z), unpack2x16float(s.b.w));
  } else {
    put_rows8(li, s.b, false);
  }
}

@compute @workgroup_size(16, 16)
fn main128k16(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let b0 = wg.z / p.nb1;
  let b1 = wg.z % p.nb1;
  let a_base = p.a_off + b0 * p.a_s0 + (b1 / p.a_div) * p.a_s1;
  let b_base = p.b_off + b0 * p.b_s0 + (b1 / p.b_div) * p.b_s1;
  let c_base = p.c_off + b0 * p.c_s0 + b1 * p.c_s1;
  let m0 = wg.y * 128u;
  let n0 = wg.x * 128u;
  let tx = lid.x;
  let ty = lid.y;
  var c0l = vec4f(0.0);
  var c0h = vec4f(0.0);
  var c1l = vec4f(0.0);
  var c1h = vec4f(0.0);
  var c2l = vec4f(0.0);
  var c2h = vec4f(0.0);
  var c3l = vec4f(0.0);
  var c3h = vec4f(0.0);
  var c4l = vec4f(0.0);
  var c4h = vec4f(0.0);
  var c5l = vec4f(0.0);
  var c5h = vec4f(0.0);
  var c6l = vec4f(0.0);
  var c6h = vec4f(0.0);
  var c7l = vec4f(0.0);
  var c7h = vec4f(0.0);
  var s = fetch_k16(li, m0, n0, 0u, a_base, b_base);
  for (var k0 = 0u; k0 < p.K; k0 += 16u) {
    stash_k16(li, s);
    workgroupBarrier();
    if (k0 + 16u < p.K) { s = fetch_k16(li, m0, n0, k0 + 16u, a_base, b_base); }
    for (var kk = 0u; kk < 16u; kk++) {
      let o = kk * SROW;
      let al = Asd[o + ty];
      let ah = Asd[o + 16u + ty];
      let bl = Bsd[o + tx];
      let bh = Bsd[o + 16u + tx];
      c0l += al.x * bl;
      c0h += al.x * bh;
      c1l += al.y * bl;
      c1h += al.y * bh;
      c2l += al.z * bl;
      c2h += al.z * bh;
      c3l += al.w * bl;
      c3h += al.w * bh;
      c4l += ah.x * bl;
      c4h += ah.x * bh;
      c5l += ah.y * bl;
      c5h += ah.y * bh;
      c6l += ah.z * bl;
      c6h += ah.z * bh;
      c7l += ah.w * bl;
      c7h += ah.w * bh;
    }
    workgroupBarrier();
  }
  let r0 = m0 + 4u * ty;
  let r1 = m0 + 64u + 4u * ty;
  let q0 = n0 + 4u * tx;
  let q1 = n0 + 64u + 4u * tx;
  store4(r0, q0, c_base, c0l);
  store4(r0, q1, c_base, c0h);
  store4(r0 + 1u, q0, c_base, c1l);
  store4(r0 + 1u, q1, c_base, c1h);
  store4(r0 + 2u, q0, c_base, c2l);
  store4(r0 + 2u, q1, c_base, c2h);
  store4(r0 + 3u, q0, c_base, c3l);
  store4(r0 + 3u, q1, c_base, c3h);
  store4(r1, q0, c_base, c4l);
  store4(r1, q1, c_base, c4h);
  store4(r1 + 1u, q0, c_base, c5l);
  store4(r1 + 1u, q1, c_base, c5h);
  store4(r1 + 2u, q0, c_base, c6l);
  store4(r1 + 2u, q1, c_base, c6h);
  store4(r1 + 3u, q0, c_base, c7l);
  store4(r1 + 3u, q1, c_base, c7h);
}
