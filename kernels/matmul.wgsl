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
// walks K directly, four accumulators deep; no tile is wasted on rows that do not exist. Used when B's
// K axis is strided or an operand is not vec4-aligned (consecutive invocations then read consecutive n);
// matvec_team below otherwise.
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
  store1(m, n, p.c_off + b0 * p.c_s0 + b1 * p.c_s1, s);
}

// matvec_team: few rows (M ≤ 8) when both operands run along K contiguously and vec4-aligned (x·Wᵀ with
// W in the (out, in) layout of a checkpoint: the products of a decoding step and of a verification of
// K + 1 drafted tokens; the host checks the alignment, lib/tensor/matmul.ts teamLaunch). A team of T
// invocations (override T: 16 … 256, a power of two chosen from K alone) shares the outputs C(m, n) of
// one column n for the MR rows m0 … m0+MR−1 of its workgroup (override MR ≤ 8); a workgroup of 256 holds
// 256 / T teams for consecutive n (grid: ⌈M / MR⌉, ⌈N / (256 / T)⌉, batch).
//   - Lane j adds x[m, 4q … 4q+3] ⊙ w[4q … 4q+3] into the vec4 accumulator of row m for q = j, j + T,
//     j + 2T, … (_common.wgsl team_fma): each load of W is one vec4 of T consecutive ones (a coalesced
//     16·T-byte read per team) and serves all MR rows; four are in flight per lane (two from three rows
//     on, QUADS). The teams of a workgroup read the same x.
//   - Each lane's sum (acc.x + acc.y) + … goes to workgroup memory, and a tree over the team's lanes
//     (lane j += lane j + s for s = T/2, T/4, …, 1) adds them.
// The order of every sum depends on K alone, never on M or MR, and split_matvec.wgsl and decode_fused.wgsl
// (swiglu_matvec) use it too, so their values are bit-identical to this entry's (tests/tensor/
// decode_fused_test.ts). T grows with K so that short outputs still fill the GPU: Llama-3.2-1B's MLP
// down-projection (N = 2048, K = 8192) runs 2048 teams of 128 lanes, not 2048 teams of 16.
override T: u32 = 16u;
override MR: u32 = 1u;
// Four weight loads in flight per lane when a workgroup has at most two rows, two otherwise (the same
// sums): with more rows the x values of four hold too many registers (H200, Llama-3.2-1B shapes: one
// token 4% faster with four, seven rows 14% slower).
override QUADS: bool = MR <= 2u;
var<workgroup> team_sums: array<f32, 2048>;  // (row r < MR, invocation)
// W_F16: W is an f16 storage tensor (binding 5), read as four halves per load (8 bytes) and widened
// exactly to f32 (_common.wgsl half4): the sums are those of the f32 entry on W rounded to halves, bit for
// bit, from half the bytes. split_matvec.wgsl and decode_fused.wgsl have the same switch.
// Without it binding 5 is a dummy (the f32 W is binding 2).
override W_F16: bool = false;
@group(0) @binding(5) var<storage, read> B16: array<vec2<u32>>;

// vec4 q of row `row` (in vec4 units); zero past K.
fn team_x4(row: u32, q: u32, k4: u32) -> vec4f {
  if (q >= k4) { return vec4f(0.0); }
  return A4[row + q];
}

fn team_w4(row: u32, q: u32, k4: u32) -> vec4f {
  if (q >= k4) { return vec4f(0.0); }
  if (W_F16) { return half4(B16[row + q]); }
  return B4[row + q];
}

// A lane's vec4 q and q + T of a row of x (A) or W (B).
fn team_xp(row: u32, q: u32, k4: u32) -> Pair {
  return Pair(team_x4(row, q, k4), team_x4(row, q + T, k4));
}

fn team_wp(row: u32, q: u32, k4: u32) -> Pair {
  return Pair(team_w4(row, q, k4), team_w4(row, q + T, k4));
}

// Adds the team's lanes of each row r < MR in place (tree order); lane 0's entry then holds the sum.
fn team_reduce(lane: u32, li: u32) {
  workgroupBarrier();
  for (var s = T / 2u; s > 0u; s = s / 2u) {
    if (lane < s) {
      for (var r = 0u; r < MR; r++) { team_sums[r * 256u + li] += team_sums[r * 256u + li + s]; }
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(256)
fn matvec_team(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % T;
  let n = wg.y * (256u / T) + li / T;
  let m0 = wg.x * MR;
  let b0 = wg.z / p.nb1;
  let b1 = wg.z % p.nb1;
  let k4 = p.K / 4u;
  // Rows past M read row M − 1 and store nothing; past the last column the team reads column N − 1
  // and stores nothing (no early return: barriers).
  let a_base = p.a_off + b0 * p.a_s0 + (b1 / p.a_div) * p.a_s1;
  let w = (p.b_off + b0 * p.b_s0 + (b1 / p.b_div) * p.b_s1 + min(n, p.N - 1u) * p.b_sn) / 4u;
  let x0 = (a_base + min(m0 + 0u, p.M - 1u) * p.a_sm) / 4u;
  let x1 = (a_base + min(m0 + 1u, p.M - 1u) * p.a_sm) / 4u;
  let x2 = (a_base + min(m0 + 2u, p.M - 1u) * p.a_sm) / 4u;
  let x3 = (a_base + min(m0 + 3u, p.M - 1u) * p.a_sm) / 4u;
  let x4 = (a_base + min(m0 + 4u, p.M - 1u) * p.a_sm) / 4u;
  let x5 = (a_base + min(m0 + 5u, p.M - 1u) * p.a_sm) / 4u;
  let x6 = (a_base + min(m0 + 6u, p.M - 1u) * p.a_sm) / 4u;
  let x7 = (a_base + min(m0 + 7u, p.M - 1u) * p.a_sm) / 4u;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  var acc4 = vec4f(0.0);
  var acc5 = vec4f(0.0);
  var acc6 = vec4f(0.0);
  var acc7 = vec4f(0.0);
  if (QUADS) {
    for (var q = lane; q < k4; q += 4u * T) {
      let wa = team_wp(w, q, k4);
      let wb = team_wp(w, q + 2u * T, k4);
      acc0 = team_fma(team_fma(acc0, team_xp(x0, q, k4), wa), team_xp(x0, q + 2u * T, k4), wb);
      if (MR > 1u) {
        acc1 = team_fma(team_fma(acc1, team_xp(x1, q, k4), wa), team_xp(x1, q + 2u * T, k4), wb);
      }
    }
  } else {
    for (var q = lane; q < k4; q += 2u * T) {
      let wa = team_wp(w, q, k4);
      acc0 = team_fma(acc0, team_xp(x0, q, k4), wa);
      if (MR > 1u) { acc1 = team_fma(acc1, team_xp(x1, q, k4), wa); }
      if (MR > 2u) { acc2 = team_fma(acc2, team_xp(x2, q, k4), wa); }
      if (MR > 3u) { acc3 = team_fma(acc3, team_xp(x3, q, k4), wa); }
      if (MR > 4u) { acc4 = team_fma(acc4, team_xp(x4, q, k4), wa); }
      if (MR > 5u) { acc5 = team_fma(acc5, team_xp(x5, q, k4), wa); }
      if (MR > 6u) { acc6 = team_fma(acc6, team_xp(x6, q, k4), wa); }
      if (MR > 7u) { acc7 = team_fma(acc7, team_xp(x7, q, k4), wa); }
    }
  }
  team_sums[li] = lane_sum(acc0);
  if (MR > 1u) { team_sums[1u * 256u + li] = lane_sum(acc1); }
  if (MR > 2u) { team_sums[2u * 256u + li] = lane_sum(acc2); }
  if (MR > 3u) { team_sums[3u * 256u + li] = lane_sum(acc3); }
  if (MR > 4u) { team_sums[4u * 256u + li] = lane_sum(acc4); }
  if (MR > 5u) { team_sums[5u * 256u + li] = lane_sum(acc5); }
  if (MR > 6u) { team_sums[6u * 256u + li] = lane_sum(acc6); }
  if (MR > 7u) { team_sums[7u * 256u + li] = lane_sum(acc7); }
  team_reduce(lane, li);
  // Lane r of the team stores row m0 + r.
  if (lane < MR && n < p.N) {
    store1(m0 + lane, n, p.c_off + b0 * p.c_s0 + b1 * p.c_s1, team_sums[lane * 256u + li - lane]);
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

// main128db / main128v4: the same product for large M and N (siboehm's SGEMM ladder, in WGSL).
// A workgroup owns a 128×128 tile of C; each of its 16×16 invocations an 8×8 block held in 16 named
// vec4 accumulators (no dynamically indexed private arrays: those spill to local memory on the GPU).
// Invocation (tx, ty) owns rows 4ty … 4ty+3 and 64+4ty … 64+4ty+3, columns 4tx … 4tx+3 and 64+4tx …,
// so that consecutive invocations read consecutive vec4 of the stages (no bank conflicts).
//   - K is walked in slices of 8 staged in workgroup memory as vec4 rows of 128 (k-major), padded to
//     33 vec4 so that the scattered stores of a K-contiguous operand hit distinct banks; per k each
//     invocation reads two vec4 of A and two of B for 64 FMAs;
//   - double buffering: slice k0+8 is fetched into registers while slice k0 is multiplied, then stored
//     into the other buffer, one barrier per slice;
//   - global loads are coalesced along whichever axis of an operand is contiguous (K for x·Wᵀ, M or N
//     for transposed operands): four scalars per operand per invocation (main128db), or one vec4
//     (main128v4, for aligned operands).
// H200: 4096³ f32 in 4.7 ms (29 TFLOP/s) for main128v4, 4.9 ms for main128db; the earlier kernel with
// scalar stages and two barriers per slice took 8.9 ms (15.5 TFLOP/s).
// Workgroup memory: 2 operands × 2 buffers × 8 × 33 vec4 = 16.5 KiB.
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
  if (m0 + rk.x < p.M && k0 + rk.y < p.K) { return A[a_base + (m0 + rk.x) * p.a_sm + (k0 + rk.y) * p.a_sk]; }
  return 0.0;
}
fn fetch_b(e: u32, n0: u32, k0: u32, b_base: u32) -> f32 {
  let ck = b_at(e);
  if (n0 + ck.x < p.N && k0 + ck.y < p.K) { return B[b_base + (k0 + ck.y) * p.b_sk + (n0 + ck.x) * p.b_sn]; }
  return 0.0;
}

// One invocation's share of a K slice, held in registers between fetch and stash: elements li + 256 i.
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

fn store4(m: u32, n: u32, c_base: u32, v: vec4f) {
  store1(m, n, c_base, v.x);
  store1(m, n + 1u, c_base, v.y);
  store1(m, n + 2u, c_base, v.z);
  store1(m, n + 3u, c_base, v.w);
}

@compute @workgroup_size(16, 16)
fn main128db(
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

// main128v4: main128db with vector loads from global memory, for aligned operands (the host checks):
// A with K contiguous (a_sk = 1), B with K contiguous (x·Wᵀ) or N contiguous, every base offset and
// row stride a multiple of 4, and K (and N when B is N-contiguous) a multiple of 4. A K slice of each
// operand is then 256 vec4: one per invocation. The same buffers bound as vec4 arrays (WGSL allows two
// variables on one binding when no entry point uses both).
@group(0) @binding(1) var<storage, read> A4: array<vec4f>;
@group(0) @binding(2) var<storage, read> B4: array<vec4f>;

// A K-contiguous operand's vec4 for invocation li: row li / 2, k = k0 + 4 (li % 2) … +3; zero past the edge.
fn fetch_rows4(li: u32, rows: u32, r0: u32, k0: u32, base: u32, stride: u32, is_a: bool) -> vec4f {
  let r = li / 2u;
  let k = k0 + 4u * (li % 2u);
  if (r0 + r >= rows || k >= p.K) { return vec4f(0.0); }
  let i = (base + (r0 + r) * stride + k) / 4u;
  if (is_a) { return A4[i]; }
  return B4[i];
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
    if (k < p.K && n < p.N) { b = B4[(b_base + k * p.b_sk + n) / 4u]; }
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
