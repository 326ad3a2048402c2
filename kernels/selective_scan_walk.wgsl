// selective_scan_walk.wgsl — Mamba-1 selective scan forward in one pass, with no split of time:
//
//   δ_t = softplus(δraw_t + δ_bias)          (softplus only with the flag; threshold 20)
//   x_t = exp(δ_t A) ⊙ x_{t−1} + δ_t B_t u_t  (per channel d and state n; x_{−1} = h0 or 0)
//   y_t = Σ_n x_t[n] C_t[n] + D u_t;  y_t ← y_t · silu(z_t)
//
// Ground truth: selective_scan_ref of state-spaces/mamba (method.md §2.1); CPU twin
// lib/ssm/selective_scan_ref.ts; the three-pass forward is selective_scan.wgsl.
//
// Every invocation owns S states of one channel, n = j + s·NL (s < S, j < NL = N/S), and walks all L
// steps of them itself: the parallelism is over (batch, channel, state), B·D·N/S invocations, not over
// time. So each step is formed once, with no chunk states and no second walk. What the invocations of a
// channel must share is y_t = Σ_n C_t[n] x_t[n]: each writes its partial sum over its S states to
// workgroup memory, and the channel's sum is taken once per stage of T steps.
//
// A workgroup of 128 covers R = 128 / NL consecutive channels of one batch, all in one group of B/C (the
// host checks (D/G) % R = 0). Per stage of T steps, two phases split by barriers:
//   W  walk the stage from the staged δ, δu, B, C; the partial sums go to `ps`; the next stage's u, δ, z,
//      B, C loads are issued first, into registers;
//   R  each invocation sums the partials of its ≤ 2 (channel, step) elements, adds D u, applies the gate
//      and stores y; then it stages the next stage's δ (bias, softplus), δu, B and C from its registers.
// Staging and the sums share one mapping, element e = k·128 + li ↦ (channel e / T, step e % T), so
// consecutive invocations touch consecutive steps of a row (coalesced loads and stores of u, δ, z, y).
//
// Bindings: those of selective_scan.wgsl (the host binds the same list): u (1), δ (2): (B, D, L);
// A (3): (D, N); bm (4), cm (5): (B, G, N, L); dskip (6): (D); z (7): (B, D, L); dbias (8): (D);
// y (11): (B, D, L), declared as vec4 and written element by element; h0 (12), last (13): (B, D, N).
// 9 and 10 are not used.
// Numerics: f32; exp(δA) as exp2(δ · A log2 e); steps ≥ L are staged as δ = 0, which leaves x unchanged.
// On the H200 at B4 L2048 D2048 N16 (S = 2, T = 8): 0.25 ms against 0.34 ms for the three passes; the
// (channel, j, t) layout of `ps` with scalar reads took 0.33 ms, double-buffered stages with one barrier
// each 0.31–0.41 ms (docs/results.md §8k).

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
const LOG2E = 1.4426950408889634;
const WG = 128u;

// Every override before the workgroup arrays they size (naga 29 panics otherwise, docs/results.md §8i).
override S: u32 = 2u;    // states per invocation, with NL = N/S a multiple of 4 (the sums read vec4)
override T: u32 = 8u;    // steps per stage: 4, 8 or 16 (R·T ≤ 256 and N·T ≤ 256: ≤ 2 elements per invocation)
override NS: u32 = 16u;  // the state size N
override NL: u32 = NS / S;  // invocations per channel
override R: u32 = WG / NL;  // channels per workgroup
override TP: u32 = T + 4u;  // padded step row of the B/C stages (vec4 reads without bank conflicts)
// `ps` holds the partial sums as (channel, t, j): an element's NL partials are contiguous (NL/4 vec4
// reads per sum). With NL = 8 the two vec4 of a step are read in an order that alternates every 4 lanes,
// so that the reads of 8 lanes hit different banks; with NL = 16, JP pads a step's row for that. RS pads a
// channel's rows so that the walk's stores of one step (32/NL channels × NL lanes) hit different banks.
override JP: u32 = select(NL, NL + 4u, NL >= 16u);
override RS: u32 = T * JP + (NL + 32u - (T * JP) % 32u) % 32u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> delta: array<f32>;
@group(0) @binding(3) var<storage, read> A: array<f32>;
@group(0) @binding(4) var<storage, read> bm: array<f32>;
@group(0) @binding(5) var<storage, read> cm: array<f32>;
@group(0) @binding(6) var<storage, read> dskip: array<f32>;
@group(0) @binding(7) var<storage, read> z: array<f32>;
@group(0) @binding(8) var<storage, read> dbias: array<f32>;
@group(0) @binding(11) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> h0: array<f32>;
@group(0) @binding(13) var<storage, read_write> last: array<f32>;

var<workgroup> sd: array<vec4<f32>, R * T / 4u>;    // δ_t, (channel, t)
var<workgroup> sdu: array<vec4<f32>, R * T / 4u>;   // δ_t u_t
var<workgroup> bs: array<vec4<f32>, NS * TP / 4u>;  // B_t[n], (n, t)
var<workgroup> cs: array<vec4<f32>, NS * TP / 4u>;  // C_t[n]
var<workgroup> ps: array<vec4<f32>, R * RS / 4u>;   // partial y, (channel, t, j)

// Four steps of one state: x ← 2^(δ a) x + δu b, and its share c x of each of the four y.
fn walk4(x: ptr<private, f32>, a: f32, dv: vec4<f32>, duv: vec4<f32>, bv: vec4<f32>, cv: vec4<f32>) -> vec4<f32> {
  var v = *x;
  var o: vec4<f32>;
  v = exp2(dv.x * a) * v + duv.x * bv.x;
  o.x = cv.x * v;
  v = exp2(dv.y * a) * v + duv.y * bv.y;
  o.y = cv.y * v;
  v = exp2(dv.z * a) * v + duv.z * bv.z;
  o.z = cv.z * v;
  v = exp2(dv.w * a) * v + duv.w * bv.w;
  o.w = cv.w * v;
  *x = v;
  return o;
}

// One (channel, step) element of a stage: whether it lies inside L, its channel within the block, its step.
struct Elem { ok: bool, c: u32, t: u32 }

fn elem(e: u32, k: u32) -> Elem {
  let c = e / T;
  let t = k * T + e % T;
  return Elem(e < R * T && t < p.nl, c, t);
}

// The stage loads one invocation issues: u, δ of its two elements, B, C of its two (n, t) slots.
struct Loads { u0: f32, u1: f32, d0: f32, d1: f32, b0: f32, b1: f32, c0: f32, c1: f32, z0: f32, z1: f32 }

fn load_stage(li: u32, k: u32, row0: u32, brow: u32, d0: u32) -> Loads {
  var l = Loads(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
  let hz = (p.flags & HAS_Z) != 0u;
  let e0 = elem(li, k);
  if (e0.ok && d0 + e0.c < p.nd) {
    l.u0 = u[row0 + e0.c * p.nl + e0.t];
    l.d0 = delta[row0 + e0.c * p.nl + e0.t];
    if (hz) { l.z0 = z[row0 + e0.c * p.nl + e0.t]; }
  }
  let e1 = elem(li + WG, k);
  if (e1.ok && d0 + e1.c < p.nd) {
    l.u1 = u[row0 + e1.c * p.nl + e1.t];
    l.d1 = delta[row0 + e1.c * p.nl + e1.t];
    if (hz) { l.z1 = z[row0 + e1.c * p.nl + e1.t]; }
  }
  // B and C: slot e ↦ (n = e / T, t = e % T).
  let t0 = k * T + li % T;
  if (li < NS * T && t0 < p.nl) {
    l.b0 = bm[brow + (li / T) * p.nl + t0];
    l.c0 = cm[brow + (li / T) * p.nl + t0];
  }
  let t1 = k * T + (li + WG) % T;
  if (li + WG < NS * T && t1 < p.nl) {
    l.b1 = bm[brow + ((li + WG) / T) * p.nl + t1];
    l.c1 = cm[brow + ((li + WG) / T) * p.nl + t1];
  }
  return l;
}

// δ after the bias and the optional softplus; 0 for elements past L or past D.
fn step_size(raw: f32, d: u32) -> f32 {
  var v = raw;
  if ((p.flags & HAS_BIAS) != 0u) { v += dbias[d]; }
  if ((p.flags & SOFTPLUS) != 0u) { v = softplus(v); }
  return v;
}

// Writes a stage from its loads; returns the u and z of its two elements (for the sums).
fn put_stage(li: u32, k: u32, l: Loads, d0: u32) -> vec4<f32> {
  let e0 = elem(li, k);
  if (li < R * T) {
    var dt = 0.0;
    if (e0.ok && d0 + e0.c < p.nd) { dt = step_size(l.d0, d0 + e0.c); }
    sd[li / 4u][li % 4u] = dt;
    sdu[li / 4u][li % 4u] = dt * l.u0;
  }
  let e1 = elem(li + WG, k);
  if (li + WG < R * T) {
    var dt = 0.0;
    if (e1.ok && d0 + e1.c < p.nd) { dt = step_size(l.d1, d0 + e1.c); }
    sd[(li + WG) / 4u][(li + WG) % 4u] = dt;
    sdu[(li + WG) / 4u][(li + WG) % 4u] = dt * l.u1;
  }
  if (li < NS * T) {
    let i = (li / T) * TP + li % T;
    bs[i / 4u][i % 4u] = l.b0;
    cs[i / 4u][i % 4u] = l.c0;
  }
  if (li + WG < NS * T) {
    let i = ((li + WG) / T) * TP + (li + WG) % T;
    bs[i / 4u][i % 4u] = l.b1;
    cs[i / 4u][i % 4u] = l.c1;
  }
  return vec4(l.u0, l.u1, l.z0, l.z1);
}

// y of one element: the channel's partials summed, D u added, the gate applied, stored.
fn emit(e: u32, k: u32, uv: f32, zv: f32, row0: u32, d0: u32) {
  let el = elem(e, k);
  if (!el.ok || d0 + el.c >= p.nd) { return; }
  let base = (el.c * RS + (e % T) * JP) / 4u;
  var v: vec4<f32>;
  if (NL == 8u) {
    let m0 = (e >> 2u) & 1u;  // the two vec4 in an order that alternates every 4 lanes
    v = ps[base + m0] + ps[base + 1u - m0];
  } else {
    v = ps[base];
    for (var m = 1u; m < NL / 4u; m++) { v += ps[base + m]; }
  }
  var acc = (v.x + v.y) + (v.z + v.w);
  if ((p.flags & HAS_D) != 0u) { acc += dskip[d0 + el.c] * uv; }
  if ((p.flags & HAS_Z) != 0u) { acc *= silu(zv); }
  let i = row0 + el.c * p.nl + el.t;
  y[i / 4u][i % 4u] = acc;
}

// The invocation's states (private: walk_stage updates them).
var<private> x0: f32;
var<private> x1: f32;
var<private> x2: f32;
var<private> x3: f32;

// W: the T steps of the staged stage for the invocation's S states (rates a); the partial sums go to `ps`.
fn walk_stage(c: u32, j: u32, a: vec4<f32>) {
  let sv = (c * T) / 4u;
  for (var q = 0u; q < T / 4u; q++) {
    let dv = sd[sv + q];
    let duv = sdu[sv + q];
    var o = walk4(&x0, a.x, dv, duv, bs[(j * TP) / 4u + q], cs[(j * TP) / 4u + q]);
    if (S > 1u) {
      let n = j + NL;
      o += walk4(&x1, a.y, dv, duv, bs[(n * TP) / 4u + q], cs[(n * TP) / 4u + q]);
    }
    if (S > 2u) {
      let n2 = j + 2u * NL;
      let n3 = j + 3u * NL;
      o += walk4(&x2, a.z, dv, duv, bs[(n2 * TP) / 4u + q], cs[(n2 * TP) / 4u + q]);
      o += walk4(&x3, a.w, dv, duv, bs[(n3 * TP) / 4u + q], cs[(n3 * TP) / 4u + q]);
    }
    let pi = c * RS + 4u * q * JP + j;
    ps[pi / 4u][pi % 4u] = o.x;
    ps[(pi + JP) / 4u][(pi + JP) % 4u] = o.y;
    ps[(pi + 2u * JP) / 4u][(pi + 2u * JP) % 4u] = o.z;
    ps[(pi + 3u * JP) / 4u][(pi + 3u * JP) % 4u] = o.w;
  }
}

@compute @workgroup_size(WG)
fn walk(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.y;
  let d0 = wg.x * R;  // the block's first channel
  let row0 = (b * p.nd + d0) * p.nl;
  let brow = (b * p.ng + d0 / (p.nd / p.ng)) * NS * p.nl;
  // Walk role: channel d0 + c, states j + s·NL.
  let c = li / NL;
  let j = li % NL;
  let act = d0 + c < p.nd;
  let d = min(d0 + c, p.nd - 1u);
  let hrow = (b * p.nd + d) * NS;
  var a = vec4(0.0);
  let h0on = (p.flags & HAS_H0) != 0u;
  a.x = A[d * NS + j] * LOG2E;
  if (h0on) { x0 = h0[hrow + j]; }
  if (S > 1u) {
    a.y = A[d * NS + j + NL] * LOG2E;
    if (h0on) { x1 = h0[hrow + j + NL]; }
  }
  if (S > 2u) {
    a.z = A[d * NS + j + 2u * NL] * LOG2E;
    a.w = A[d * NS + j + 3u * NL] * LOG2E;
    if (h0on) {
      x2 = h0[hrow + j + 2u * NL];
      x3 = h0[hrow + j + 3u * NL];
    }
  }
  let nk = (p.nl + T - 1u) / T;
  var cur = put_stage(li, 0u, load_stage(li, 0u, row0, brow, d0), d0);  // u, u, z, z of this stage
  for (var k = 0u; k < nk; k++) {
    workgroupBarrier();
    // The next stage's loads, issued before the walk (their latency hides behind it).
    let next = load_stage(li, k + 1u, row0, brow, d0);
    walk_stage(c, j, a);
    workgroupBarrier();
    // R: the sums of this stage, then the next stage staged.
    emit(li, k, cur.x, cur.z, row0, d0);
    if (li + WG < R * T) { emit(li + WG, k, cur.y, cur.w, row0, d0); }
    cur = put_stage(li, k + 1u, next, d0);
  }
  if (act) {
    last[hrow + j] = x0;
    if (S > 1u) { last[hrow + j + NL] = x1; }
    if (S > 2u) {
      last[hrow + j + 2u * NL] = x2;
      last[hrow + j + 3u * NL] = x3;
    }
  }
}
