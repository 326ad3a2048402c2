// matmul.wgsl — batched, strided matrix product, tiled in workgroup memory.
//
//   C[b](m, n) = α · Σ_k A[b](m, k) · B[b](k, n)  (+ bias[n])  (+ C[b](m, n) when accumulating)
//
// Ground truth: torch.matmul / F.linear in float32 (lib/tensor/matmul_ref.ts is the plain-loop twin).
// Every operand is addressed by strides, so transposes, head-split layouts (B, L, H, P) and GQA cost
// nothing: the batch index b = b0 · nb1 + b1 is split in two, and operand X starts at
//   X_off + b0 · X_s0 + (b1 / X_div) · X_s1
// (X_div = H_q / H_kv lets query head h read key/value head ⌊h / group⌋).
//
// Bindings: A (read), B (read), C (read_write), bias (read; a dummy when flags & 1 == 0).
// Ownership: one workgroup owns a 64×64 tile of C for one batch entry (grid: N/64, M/64, batch);
// each of its 16×16 invocations owns a 4×4 block of that tile. K is walked in slices of 16 staged
// through workgroup memory (8 KiB, within the 32 KiB of the CPU adapter). Accumulation is f32.

struct Params {
  M: u32, N: u32, K: u32, nb1: u32,
  a_off: u32, a_s0: u32, a_s1: u32, a_div: u32, a_sm: u32, a_sk: u32,
  b_off: u32, b_s0: u32, b_s1: u32, b_div: u32, b_sk: u32, b_sn: u32,
  c_off: u32, c_s0: u32, c_s1: u32, c_sm: u32, c_sn: u32,
  alpha: f32, flags: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> As: array<f32, 1024>; // (BK, BM): k-major so a thread's 4 rows are adjacent
var<workgroup> Bs: array<f32, 1024>; // (BK, BN)

@compute @workgroup_size(16, 16)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let b0 = wg.z / p.nb1;
  let b1 = wg.z % p.nb1;
  let a_base = p.a_off + b0 * p.a_s0 + (b1 / p.a_div) * p.a_s1;
  let b_base = p.b_off + b0 * p.b_s0 + (b1 / p.b_div) * p.b_s1;
  let c_base = p.c_off + b0 * p.c_s0 + b1 * p.c_s1;
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;

  // Four rows of four columns, as vec4s: no dynamically indexed local arrays (slow on CPU adapters).
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    // Stage A(m0.., k0..) and B(k0.., n0..): 1024 values each, 4 per invocation; consecutive
    // invocations take consecutive k, which is the contiguous axis of row-major A and of Wᵀ.
    for (var i = 0u; i < 4u; i++) {
      let e = li + 256u * i;
      let r = e / BK;
      let kk = e % BK;
      let gk = k0 + kk;
      var va = 0.0;
      if (m0 + r < p.M && gk < p.K) { va = A[a_base + (m0 + r) * p.a_sm + gk * p.a_sk]; }
      As[kk * BM + r] = va;
      var vb = 0.0;
      if (n0 + r < p.N && gk < p.K) { vb = B[b_base + gk * p.b_sk + (n0 + r) * p.b_sn]; }
      Bs[kk * BN + r] = vb;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let a = vec4f(As[kk * BM + lid.y * 4u], As[kk * BM + lid.y * 4u + 1u],
                    As[kk * BM + lid.y * 4u + 2u], As[kk * BM + lid.y * 4u + 3u]);
      let b = vec4f(Bs[kk * BN + lid.x * 4u], Bs[kk * BN + lid.x * 4u + 1u],
                    Bs[kk * BN + lid.x * 4u + 2u], Bs[kk * BN + lid.x * 4u + 3u]);
      acc0 += a.x * b;
      acc1 += a.y * b;
      acc2 += a.z * b;
      acc3 += a.w * b;
    }
    workgroupBarrier();
  }

  let rows = array<vec4f, 4>(acc0, acc1, acc2, acc3);
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y * 4u + i;
    if (m >= p.M) { continue; }
    let r = rows[i];
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n >= p.N) { continue; }
      var v = p.alpha * r[j];
      if ((p.flags & 1u) != 0u) { v += bias[n]; }
      let idx = c_base + m * p.c_sm + n * p.c_sn;
      if ((p.flags & 2u) != 0u) { v += C[idx]; }
      C[idx] = v;
    }
  }
}

// matvec: the same product for few rows (decoding, M ≤ 8): one invocation owns one output C(m, n) and
// walks K directly, four accumulators deep; no tile is wasted on rows that do not exist.
@compute @workgroup_size(64)
fn matvec(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wg: vec3u) {
  let n = gid.x;
  let m = gid.y;
  if (n >= p.N || m >= p.M) { return; }
  let b0 = wg.z / p.nb1;
  let b1 = wg.z % p.nb1;
  let a_row = p.a_off + b0 * p.a_s0 + (b1 / p.a_div) * p.a_s1 + m * p.a_sm;
  let b_col = p.b_off + b0 * p.b_s0 + (b1 / p.b_div) * p.b_s1 + n * p.b_sn;
  var acc = vec4f(0.0);
  var k = 0u;
  for (; k + 4u <= p.K; k += 4u) {
    acc += vec4f(A[a_row + k * p.a_sk], A[a_row + (k + 1u) * p.a_sk], A[a_row + (k + 2u) * p.a_sk],
                 A[a_row + (k + 3u) * p.a_sk]) *
           vec4f(B[b_col + k * p.b_sk], B[b_col + (k + 1u) * p.b_sk], B[b_col + (k + 2u) * p.b_sk],
                 B[b_col + (k + 3u) * p.b_sk]);
  }
  var s = acc.x + acc.y + acc.z + acc.w;
  for (; k < p.K; k++) { s += A[a_row + k * p.a_sk] * B[b_col + k * p.b_sk]; }
  var v = p.alpha * s;
  if ((p.flags & 1u) != 0u) { v += bias[n]; }
  let idx = p.c_off + b0 * p.c_s0 + b1 * p.c_s1 + m * p.c_sm + n * p.c_sn;
  if ((p.flags & 2u) != 0u) { v += C[idx]; }
  C[idx] = v;
}

// main128: the same product for large M and N: a workgroup owns a 128×128 tile of C, each of its
// 16×16 invocations an 8×8 block held in 16 named vec4 accumulators (no dynamically indexed private
// arrays: those spill to local memory on the GPU). K is walked in slices of 8 through workgroup memory
// (8 KiB), staged with coalesced loads along whichever axis of the operand is contiguous (K for
// x·Wᵀ, M or N for transposed operands).
var<workgroup> As8: array<f32, 1024>; // (BK = 8, 128)
var<workgroup> Bs8: array<f32, 1024>;

fn stage128(li: u32, m0: u32, n0: u32, k0: u32, a_base: u32, b_base: u32) {
  for (var i = 0u; i < 4u; i++) {
    let e = li + 256u * i;
    var r = e / 8u;
    var kk = e % 8u;
    if (p.a_sm == 1u) { r = e % 128u; kk = e / 128u; }
    var v = 0.0;
    if (m0 + r < p.M && k0 + kk < p.K) { v = A[a_base + (m0 + r) * p.a_sm + (k0 + kk) * p.a_sk]; }
    As8[kk * 128u + r] = v;
    var c = e / 8u;
    var kb = e % 8u;
    if (p.b_sn == 1u) { c = e % 128u; kb = e / 128u; }
    var w = 0.0;
    if (n0 + c < p.N && k0 + kb < p.K) { w = B[b_base + (k0 + kb) * p.b_sk + (n0 + c) * p.b_sn]; }
    Bs8[kb * 128u + c] = w;
  }
}

fn store1(m: u32, n: u32, c_base: u32, x: f32) {
  if (m >= p.M || n >= p.N) { return; }
  var v = p.alpha * x;
  if ((p.flags & 1u) != 0u) { v += bias[n]; }
  let idx = c_base + m * p.c_sm + n * p.c_sn;
  if ((p.flags & 2u) != 0u) { v += C[idx]; }
  C[idx] = v;
}

fn store8(m: u32, n: u32, c_base: u32, lo: vec4f, hi: vec4f) {
  store1(m, n, c_base, lo.x);
  store1(m, n + 1u, c_base, lo.y);
  store1(m, n + 2u, c_base, lo.z);
  store1(m, n + 3u, c_base, lo.w);
  store1(m, n + 4u, c_base, hi.x);
  store1(m, n + 5u, c_base, hi.y);
  store1(m, n + 6u, c_base, hi.z);
  store1(m, n + 7u, c_base, hi.w);
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
  let ty8 = lid.y * 8u;
  let tx8 = lid.x * 8u;
  // c{i}l, c{i}h: row ty8 + i of the block, columns tx8 … +3 and tx8 + 4 … +7
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
  for (var k0 = 0u; k0 < p.K; k0 += 8u) {
    stage128(li, m0, n0, k0, a_base, b_base);
    workgroupBarrier();
    for (var kk = 0u; kk < 8u; kk++) {
      let bo = kk * 128u + tx8;
      let bl = vec4f(Bs8[bo], Bs8[bo + 1u], Bs8[bo + 2u], Bs8[bo + 3u]);
      let bh = vec4f(Bs8[bo + 4u], Bs8[bo + 5u], Bs8[bo + 6u], Bs8[bo + 7u]);
      let a0 = As8[kk * 128u + ty8 + 0u];
      let a1 = As8[kk * 128u + ty8 + 1u];
      let a2 = As8[kk * 128u + ty8 + 2u];
      let a3 = As8[kk * 128u + ty8 + 3u];
      let a4 = As8[kk * 128u + ty8 + 4u];
      let a5 = As8[kk * 128u + ty8 + 5u];
      let a6 = As8[kk * 128u + ty8 + 6u];
      let a7 = As8[kk * 128u + ty8 + 7u];
      c0l += a0 * bl;
      c0h += a0 * bh;
      c1l += a1 * bl;
      c1h += a1 * bh;
      c2l += a2 * bl;
      c2h += a2 * bh;
      c3l += a3 * bl;
      c3h += a3 * bh;
      c4l += a4 * bl;
      c4h += a4 * bh;
      c5l += a5 * bl;
      c5h += a5 * bh;
      c6l += a6 * bl;
      c6h += a6 * bh;
      c7l += a7 * bl;
      c7h += a7 * bh;
    }
    workgroupBarrier();
  }
  store8(m0 + ty8 + 0u, n0 + tx8, c_base, c0l, c0h);
  store8(m0 + ty8 + 1u, n0 + tx8, c_base, c1l, c1h);
  store8(m0 + ty8 + 2u, n0 + tx8, c_base, c2l, c2h);
  store8(m0 + ty8 + 3u, n0 + tx8, c_base, c3l, c3h);
  store8(m0 + ty8 + 4u, n0 + tx8, c_base, c4l, c4h);
  store8(m0 + ty8 + 5u, n0 + tx8, c_base, c5l, c5h);
  store8(m0 + ty8 + 6u, n0 + tx8, c_base, c6l, c6h);
  store8(m0 + ty8 + 7u, n0 + tx8, c_base, c7l, c7h);
}
