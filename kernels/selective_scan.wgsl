// selective_scan.wgsl — Mamba-1 selective scan, forward, as a chunked scan over time.
//
//   δ_t = softplus(δraw_t + δ_bias)          (softplus only with the flag; threshold 20)
//   x_t = exp(δ_t A) ⊙ x_{t−1} + δ_t B_t u_t  (per channel d and state n; x_{−1} = h0 or 0)
//   y_t = Σ_n x_t[n] C_t[n] + D u_t;  y_t ← y_t · silu(z_t)
//
// Ground truth: selective_scan_ref of state-spaces/mamba (method.md §2.1); CPU twin
// lib/ssm/selective_scan_ref.ts. The one-token step is selective_scan_step.wgsl.
// The three chunk passes: the forward for sizes the one-pass walk (selective_scan_walk.wgsl) does not
// take or for a given chunk length; chunk_state + chunk_carry also serve the backward. (A single pass
// with a workgroup-level scan over time, entry `scan`, lived at the end of this file until session 18:
// 0.55–0.68 ms against the walk's 0.25, docs/results.md §8, §8k.)
// Chunks of Q steps (p.q), c = 0 … NC−1. Three passes:
//   chunk_state  S_c = the chunk's end state from a zero start;  Σ_c = Σ_{t∈c} δ_t
//   chunk_carry  H_0 = h0;  H_{c+1} = exp(A Σ_c) ⊙ H_c + S_c   (H_c overwrites S_c; H_NC = last state)
//   chunk_out    recompute each chunk from H_c and emit y
// chunk_carry with p.reverse = 1 runs the same recurrence from the last chunk down (the backward's
// adjoint carry, selective_scan_bwd.wgsl): there h0 is dLast and `last` receives d h0.
//
// Bindings: u (1), δ (2): (B, D, L) as vec4; A (3): (D, N); bm (4), cm (5): (B, G, N, L); dskip (6): (D);
// z (7): (B, D, L) as vec4; dbias (8): (D); states (9): (B, NC, D, N); dsum (10): (B, NC, D);
// y (11): (B, D, L) as vec4; h0 (12), last (13): (B, D, N). Absent optional inputs are a dummy buffer and
// a cleared flag bit.
//
// Ownership: chunk_state / chunk_out: one workgroup of 128 per (block of CW channels, chunk, batch);
// invocation li owns channel d0 + li / SB and states 16s … 16s+15, s = li % SB (SB = ⌈N/16⌉ ∈ {1, 2,
// 4} state blocks per channel; states ≥ N are zero), in four vec4 registers. Time goes in sub-blocks
// of T = 8 steps: each invocation reads its channel's u, δ, z of the sub-block itself (two vec4 loads
// each when L and Q are multiples of 4), while B and C of the GPW groups the block spans are staged in
// workgroup memory as vec4 over n (8 elements per invocation, loaded before the previous sub-block is
// walked). The 8 steps are unrolled; with SB > 1 the partial outputs of a channel meet in workgroup
// memory. Workgroup memory stays small: on the H100 it bounds how many workgroups an SM holds.
// chunk_carry: one invocation per (b, d, n) walking the NC chunks.
// Straight-line code, no loop-indexed private arrays (they would live in local memory on GPUs).
// Numerics: f32; exp(δA) as exp2(δ · A log2 e), arguments ≤ 0 for A < 0.
// Workgroup memory: 2 × 256 vec4 + 128 × 9 f32 = 12.5 KiB.

struct Params {
  nb: u32, nd: u32, nl: u32, ns: u32,
  ng: u32, nc: u32, q: u32, cw: u32,
  gpw: u32, flags: u32, yrow: u32, reverse: u32,
  sb: u32,
}

const HAS_D = 1u;
const HAS_Z = 2u;
const HAS_BIAS = 4u;
const SOFTPLUS = 8u;
const HAS_H0 = 16u;
const VEC4 = 32u;  // L and Q multiples of 4: rows of u, δ, z, y are read and written as vec4
const LOG2E = 1.4426950408889634;

const WG = 128u;  // invocations per workgroup
const T = 8u;     // time steps per sub-block
const TP = 9u;    // padded row of `part`
// vec4 capacity of the B and C stages: GPW × T × 4·SB ≤ BC ≤ 256 (8 elements per invocation). The host
// passes the launch's own GPW × T × 4·SB (32 at N ≤ 16 with one group per block): chunk_out's occupancy on
// the H200 is bound by its workgroup memory (docs/results.md §8g).
override BC: u32 = 256u;
// Slots of that tile each invocation loads and stages: ⌈GPW × T × 16·SB / WG⌉ ≤ 8. chunk_state's host passes
// its own (1 at N ≤ 16 with one group per block): the slots past it then fold away at pipeline creation,
// with their loads and index arithmetic (binary 34 → 25 KB; chunk_state 0.132 → 0.124 ms on the H200,
// docs/results.md §8h). chunk_out keeps 8: there it cut registers 127 → 96 and made the pass slower.
override BCR: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> u: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> delta: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> A: array<f32>;
@group(0) @binding(4) var<storage, read> bm: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> cm: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> dskip: array<f32>;
@group(0) @binding(7) var<storage, read> z: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> dbias: array<f32>;
@group(0) @binding(9) var<storage, read_write> states: array<f32>;
@group(0) @binding(10) var<storage, read_write> dsum: array<f32>;
@group(0) @binding(11) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> h0: array<f32>;
@group(0) @binding(13) var<storage, read_write> last: array<f32>;

var<workgroup> bs: array<vec4<f32>, BC>;   // B_t[n … n+3], (group in block, t, n/4)
var<workgroup> cs: array<vec4<f32>, BC>;   // C_t
// chunk_out with SB > 1: partial outputs, (invocation, t). Sized by the override PART (the host passes 1 for
// N ≤ 16, where nothing reads it): workgroup memory a kernel declares is allocated whether it is used or not.
override PART: u32 = WG * TP;
var<workgroup> part: array<f32, PART>;

// The invocation's state block and its decay rates A log2 e (zero beyond N or when idle).
var<private> x0: vec4<f32>;
var<private> x1: vec4<f32>;
var<private> x2: vec4<f32>;
var<private> x3: vec4<f32>;
var<private> a0: vec4<f32>;
var<private> a1: vec4<f32>;
var<private> a2: vec4<f32>;
var<private> a3: vec4<f32>;

// One invocation's place: channel, state block, and the block's first channel and group.
struct Lane { li: u32, b: u32, d: u32, c: u32, s: u32, act: bool, gl: u32, d0: u32, g0: u32 }

fn lane(wg: vec3u, li: u32) -> Lane {
  let d0 = wg.x * p.cw;
  let c = li / p.sb;
  let d = d0 + c;
  let per_group = p.nd / p.ng;
  let g0 = d0 / per_group;
  let gl = min(d, p.nd - 1u) / per_group - g0;
  return Lane(li, wg.z, min(d, p.nd - 1u), c, li % p.sb, c < p.cw && d < p.nd, gl, d0, g0);
}

// Eight consecutive steps of one channel: vec4 loads when rows and sub-blocks are vec4-aligned
// (flag VEC4: L and Q multiples of 4), else element by element; steps ≥ len read as 0 (select, so that
// whatever lies past the row, NaN included, never enters the scan).
struct Row { a: vec4<f32>, b: vec4<f32> }

fn keep(v: vec4<f32>, len: u32, k0: u32) -> vec4<f32> {
  return select(vec4(0.0), v, vec4(k0, k0 + 1u, k0 + 2u, k0 + 3u) < vec4(len));
}

fn at_u(i: u32, k: u32, len: u32) -> f32 {
  if (k < len) { return u[(i + k) / 4u][(i + k) % 4u]; }
  return 0.0;
}
fn at_d(i: u32, k: u32, len: u32) -> f32 {
  if (k < len) { return delta[(i + k) / 4u][(i + k) % 4u]; }
  return 0.0;
}
fn at_z(i: u32, k: u32, len: u32) -> f32 {
  if (k < len) { return z[(i + k) / 4u][(i + k) % 4u]; }
  return 0.0;
}

fn row_u(i: u32, len: u32) -> Row {
  if ((p.flags & VEC4) != 0u) { return Row(keep(u[i / 4u], len, 0u), keep(u[i / 4u + 1u], len, 4u)); }
  return Row(vec4(at_u(i, 0u, len), at_u(i, 1u, len), at_u(i, 2u, len), at_u(i, 3u, len)),
             vec4(at_u(i, 4u, len), at_u(i, 5u, len), at_u(i, 6u, len), at_u(i, 7u, len)));
}

fn row_delta(i: u32, len: u32) -> Row {
  if ((p.flags & VEC4) != 0u) { return Row(keep(delta[i / 4u], len, 0u), keep(delta[i / 4u + 1u], len, 4u)); }
  return Row(vec4(at_d(i, 0u, len), at_d(i, 1u, len), at_d(i, 2u, len), at_d(i, 3u, len)),
             vec4(at_d(i, 4u, len), at_d(i, 5u, len), at_d(i, 6u, len), at_d(i, 7u, len)));
}

fn row_z(i: u32, len: u32) -> Row {
  if ((p.flags & HAS_Z) == 0u) { return Row(vec4(0.0), vec4(0.0)); }
  if ((p.flags & VEC4) != 0u) { return Row(keep(z[i / 4u], len, 0u), keep(z[i / 4u + 1u], len, 4u)); }
  return Row(vec4(at_z(i, 0u, len), at_z(i, 1u, len), at_z(i, 2u, len), at_z(i, 3u, len)),
             vec4(at_z(i, 4u, len), at_z(i, 5u, len), at_z(i, 6u, len), at_z(i, 7u, len)));
}

fn put_y(i: u32, k: u32, len: u32, v: f32) { if (k < len) { y[(i + k) / 4u][(i + k) % 4u] = v; } }

fn put_row(i: u32, len: u32, r: Row) {
  if ((p.flags & VEC4) != 0u && len == T) {
    y[i / 4u] = r.a;
    y[i / 4u + 1u] = r.b;
    return;
  }
  put_y(i, 0u, len, r.a.x);
  put_y(i, 1u, len, r.a.y);
  put_y(i, 2u, len, r.a.z);
  put_y(i, 3u, len, r.a.w);
  put_y(i, 4u, len, r.b.x);
  put_y(i, 5u, len, r.b.y);
  put_y(i, 6u, len, r.b.z);
  put_y(i, 7u, len, r.b.w);
}

// δ after bias and the optional softplus, zero for steps ≥ len (they then leave the state unchanged).
fn step_sizes(raw: Row, d: u32, len: u32) -> Row {
  var a = raw.a;
  var b = raw.b;
  if ((p.flags & HAS_BIAS) != 0u) {
    a += dbias[d];
    b += dbias[d];
  }
  if ((p.flags & SOFTPLUS) != 0u) {
    a = select(log(1.0 + exp(a)), a, a > vec4(20.0));
    b = select(log(1.0 + exp(b)), b, b > vec4(20.0));
  }
  return Row(keep(a, len, 0u), keep(b, len, 4u));
}

// Element r of the invocation's share of the (group, n, t) tile of B and C: its index, or NONE.
const NONE = 0xffffffffu;

fn bc_at(l: Lane, r: u32, t0: u32, len: u32) -> u32 {
  // The tile holds GPW × T × 16·SB elements, 16·SB a power of two (nsh = its log2): with shifts and an
  // early, uniform exit past the tile (with SB = GPW = 1 only r = 0 holds anything) the index costs a
  // few integer operations instead of runtime divisions.
  if (r >= BCR) { return NONE; }
  let nsh = 4u + countTrailingZeros(p.sb);
  if (r * WG >= (p.gpw * T) << nsh) { return NONE; }
  let e = r * WG + l.li;
  let n = (e >> 3u) & ((1u << nsh) - 1u);
  let gl = e >> (3u + nsh);
  if (n < p.ns && (e & 7u) < len && l.g0 + gl < p.ng) {
    return ((l.b * p.ng + l.g0 + gl) * p.ns + n) * p.nl + t0 + (e & 7u);
  }
  return NONE;
}

fn ld_b(i: u32) -> f32 { if (i == NONE) { return 0.0; } return bm[i >> 2u][i & 3u]; }
fn ld_c(i: u32) -> f32 { if (i == NONE) { return 0.0; } return cm[i >> 2u][i & 3u]; }

// The invocation's 8 elements of a sub-block's B and C tile, held in registers until stored.
struct BcTile { ba: vec4<f32>, bb: vec4<f32>, ca: vec4<f32>, cb: vec4<f32> }

fn load_bc(l: Lane, t0: u32, len: u32, with_c: bool) -> BcTile {
  let j0 = bc_at(l, 0u, t0, len);
  let j1 = bc_at(l, 1u, t0, len);
  let j2 = bc_at(l, 2u, t0, len);
  let j3 = bc_at(l, 3u, t0, len);
  let j4 = bc_at(l, 4u, t0, len);
  let j5 = bc_at(l, 5u, t0, len);
  let j6 = bc_at(l, 6u, t0, len);
  let j7 = bc_at(l, 7u, t0, len);
  var st: BcTile;
  st.ba = vec4(ld_b(j0), ld_b(j1), ld_b(j2), ld_b(j3));
  st.bb = vec4(ld_b(j4), ld_b(j5), ld_b(j6), ld_b(j7));
  if (with_c) {
    st.ca = vec4(ld_c(j0), ld_c(j1), ld_c(j2), ld_c(j3));
    st.cb = vec4(ld_c(j4), ld_c(j5), ld_c(j6), ld_c(j7));
  }
  return st;
}

fn put_bc(l: Lane, r: u32, bv: f32, cv: f32) {
  if (r >= BCR) { return; }
  let nsh = 4u + countTrailingZeros(p.sb);
  if (r * WG >= (p.gpw * T) << nsh) { return; }
  let e = r * WG + l.li;
  let n = (e >> 3u) & ((1u << nsh) - 1u);
  let gl = e >> (3u + nsh);
  let j = ((gl * T + (e & 7u)) << (nsh - 2u)) + (n >> 2u);
  bs[j][n & 3u] = bv;
  cs[j][n & 3u] = cv;
}

fn store_bc(l: Lane, st: BcTile) {
  put_bc(l, 0u, st.ba.x, st.ca.x);
  put_bc(l, 1u, st.ba.y, st.ca.y);
  put_bc(l, 2u, st.ba.z, st.ca.z);
  put_bc(l, 3u, st.ba.w, st.ca.w);
  put_bc(l, 4u, st.bb.x, st.cb.x);
  put_bc(l, 5u, st.bb.y, st.cb.y);
  put_bc(l, 6u, st.bb.z, st.cb.z);
  put_bc(l, 7u, st.bb.w, st.cb.w);
}

// A[d, n … n+3] log2 e (zero beyond N or when idle), and the matching states.
fn rates(d: u32, act: bool, n: u32) -> vec4<f32> {
  var a = vec4(0.0);
  let o = d * p.ns + n;
  if (act && n < p.ns) { a.x = A[o]; }
  if (act && n + 1u < p.ns) { a.y = A[o + 1u]; }
  if (act && n + 2u < p.ns) { a.z = A[o + 2u]; }
  if (act && n + 3u < p.ns) { a.w = A[o + 3u]; }
  return a * LOG2E;
}

fn get_states(l: Lane, o: u32, n: u32) -> vec4<f32> {
  var x = vec4(0.0);
  if (l.act && n < p.ns) { x.x = states[o + n]; }
  if (l.act && n + 1u < p.ns) { x.y = states[o + n + 1u]; }
  if (l.act && n + 2u < p.ns) { x.z = states[o + n + 2u]; }
  if (l.act && n + 3u < p.ns) { x.w = states[o + n + 3u]; }
  return x;
}

fn put_states(o: u32, n: u32, x: vec4<f32>) {
  if (n < p.ns) { states[o + n] = x.x; }
  if (n + 1u < p.ns) { states[o + n + 1u] = x.y; }
  if (n + 2u < p.ns) { states[o + n + 2u] = x.z; }
  if (n + 3u < p.ns) { states[o + n + 3u] = x.w; }
}

fn init_lane(l: Lane) {
  let n0 = 16u * l.s;
  a0 = rates(l.d, l.act, n0);
  a1 = rates(l.d, l.act, n0 + 4u);
  a2 = rates(l.d, l.act, n0 + 8u);
  a3 = rates(l.d, l.act, n0 + 12u);
}

// One step of the recurrence for the invocation's 16 states, B and C at vec4 index j of the stage.
fn advance(dt: f32, du: f32, j: u32) {
  x0 = exp2(dt * a0) * x0 + du * bs[j];
  x1 = exp2(dt * a1) * x1 + du * bs[j + 1u];
  x2 = exp2(dt * a2) * x2 + du * bs[j + 2u];
  x3 = exp2(dt * a3) * x3 + du * bs[j + 3u];
}

fn advance_out(dt: f32, du: f32, j: u32) -> f32 {
  advance(dt, du, j);
  let acc = x0 * cs[j] + x1 * cs[j + 1u] + x2 * cs[j + 2u] + x3 * cs[j + 3u];
  return acc.x + acc.y + acc.z + acc.w;
}

// Pass 1: the chunk's end state from a zero start, and Σδ over the chunk.
@compute @workgroup_size(WG)
fn chunk_state(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let l = lane(wg, li);
  let ch = wg.y;
  init_lane(l);
  let nq = 4u * p.sb;
  var sum = 0.0;
  let cend = min(ch * p.q + p.q, p.nl);
  var bc = load_bc(l, ch * p.q, min(T, cend - ch * p.q), false);
  for (var t0 = ch * p.q; t0 < cend; t0 += T) {
    let len = min(T, cend - t0);
    let i = (l.b * p.nd + l.d) * p.nl + t0;
    let dt = step_sizes(row_delta(i, len), l.d, len);
    let uv = row_u(i, len);
    store_bc(l, bc);
    workgroupBarrier();
    if (t0 + T < cend) { bc = load_bc(l, t0 + T, min(T, cend - t0 - T), false); }
    let du = Row(dt.a * uv.a, dt.b * uv.b);
    let j = l.gl * T * nq + 4u * l.s;
    advance(dt.a.x, du.a.x, j);
    advance(dt.a.y, du.a.y, j + nq);
    advance(dt.a.z, du.a.z, j + 2u * nq);
    advance(dt.a.w, du.a.w, j + 3u * nq);
    advance(dt.b.x, du.b.x, j + 4u * nq);
    advance(dt.b.y, du.b.y, j + 5u * nq);
    advance(dt.b.z, du.b.z, j + 6u * nq);
    advance(dt.b.w, du.b.w, j + 7u * nq);
    sum += dot(dt.a, vec4(1.0)) + dot(dt.b, vec4(1.0));
    workgroupBarrier();
  }
  if (l.act) {
    let o = ((l.b * p.nc + ch) * p.nd + l.d) * p.ns;
    let n0 = 16u * l.s;
    put_states(o, n0, x0);
    put_states(o, n0 + 4u, x1);
    put_states(o, n0 + 8u, x2);
    put_states(o, n0 + 12u, x3);
    if (l.s == 0u) { dsum[(l.b * p.nc + ch) * p.nd + l.d] = sum; }
  }
}

// Pass 2: the sequential recurrence across chunks per (b, d, n); S_c is replaced by the state entering c.
@compute @workgroup_size(256)
fn chunk_carry(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * p.yrow + wg.x) * 256u + li;
  let per = p.nd * p.ns;
  if (i >= p.nb * per) { return; }
  let b = i / per;
  let r = i % per;
  let d = r / p.ns;
  let a = A[r];
  var h = 0.0;
  if ((p.flags & HAS_H0) != 0u) { h = h0[i]; }
  for (var k = 0u; k < p.nc; k++) {
    var c = k;
    if (p.reverse != 0u) { c = p.nc - 1u - k; }
    let j = (b * p.nc + c) * per + r;
    let s = states[j];
    states[j] = h;
    h = exp(a * dsum[(b * p.nc + c) * p.nd + d]) * h + s;
  }
  last[i] = h;
}

fn silu4(v: vec4<f32>) -> vec4<f32> {
  return v / (1.0 + exp(-v));
}

// Pass 3: each chunk recomputed from its entering state H_c; out_t = (Σ_n x_t[n] C_t[n] + D u_t) silu(z_t).
@compute @workgroup_size(WG)
fn chunk_out(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let l = lane(wg, li);
  let ch = wg.y;
  init_lane(l);
  let nq = 4u * p.sb;
  let n0 = 16u * l.s;
  let so = ((l.b * p.nc + ch) * p.nd + l.d) * p.ns;
  x0 = get_states(l, so, n0);
  x1 = get_states(l, so, n0 + 4u);
  x2 = get_states(l, so, n0 + 8u);
  x3 = get_states(l, so, n0 + 12u);
  var skip = 0.0;
  if ((p.flags & HAS_D) != 0u) { skip = dskip[l.d]; }
  let cend = min(ch * p.q + p.q, p.nl);
  var bc = load_bc(l, ch * p.q, min(T, cend - ch * p.q), true);
  for (var t0 = ch * p.q; t0 < cend; t0 += T) {
    let len = min(T, cend - t0);
    let i = (l.b * p.nd + l.d) * p.nl + t0;
    let dt = step_sizes(row_delta(i, len), l.d, len);
    let uv = row_u(i, len);
    store_bc(l, bc);
    workgroupBarrier();
    if (t0 + T < cend) { bc = load_bc(l, t0 + T, min(T, cend - t0 - T), true); }
    let du = Row(dt.a * uv.a, dt.b * uv.b);
    let j = l.gl * T * nq + 4u * l.s;
    var o: Row;
    o.a.x = advance_out(dt.a.x, du.a.x, j);
    o.a.y = advance_out(dt.a.y, du.a.y, j + nq);
    o.a.z = advance_out(dt.a.z, du.a.z, j + 2u * nq);
    o.a.w = advance_out(dt.a.w, du.a.w, j + 3u * nq);
    o.b.x = advance_out(dt.b.x, du.b.x, j + 4u * nq);
    o.b.y = advance_out(dt.b.y, du.b.y, j + 5u * nq);
    o.b.z = advance_out(dt.b.z, du.b.z, j + 6u * nq);
    o.b.w = advance_out(dt.b.w, du.b.w, j + 7u * nq);
    if (p.sb > 1u) {
      // The SB partial outputs of each channel meet in workgroup memory; state block 0 adds them.
      let w = li * TP;
      part[w] = o.a.x;
      part[w + 1u] = o.a.y;
      part[w + 2u] = o.a.z;
      part[w + 3u] = o.a.w;
      part[w + 4u] = o.b.x;
      part[w + 5u] = o.b.y;
      part[w + 6u] = o.b.z;
      part[w + 7u] = o.b.w;
      workgroupBarrier();
      for (var s = 1u; s < p.sb; s++) {
        let r = min(li + s, WG - 1u) * TP;
        o.a += vec4(part[r], part[r + 1u], part[r + 2u], part[r + 3u]);
        o.b += vec4(part[r + 4u], part[r + 5u], part[r + 6u], part[r + 7u]);
      }
    }
    if (l.act && l.s == 0u) {
      o.a += skip * uv.a;
      o.b += skip * uv.b;
      // z is read only now, after the walk: loaded with u and δ, it stayed live through the walk, and
      // chunk_out was 5% slower (docs/results.md §8h).
      let zv = row_z(i, len);
      if ((p.flags & HAS_Z) != 0u) {
        o.a *= silu4(zv.a);
        o.b *= silu4(zv.b);
      }
      put_row(i, len, o);
    }
    workgroupBarrier();
  }
}
