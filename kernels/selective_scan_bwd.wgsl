// selective_scan_bwd.wgsl — Mamba-1 selective scan, backward: a reverse-time adjoint scan in chunks.
//
// With a_t = exp(δ_t A), o_t = y_t + D u_t, out_t = o_t · silu(z_t) and dy the gradient of out:
//   ō_t = dy_t · silu(z_t)                                  (∂/∂y_t; ō_t = dy_t without z)
//   g_t[n] = ō_t C_t[n] + a_{t+1} g_{t+1}[n],  g_{L−1} = ō C + dLast    (adjoint of x_t)
//   dC_t[n] = Σ_{d∈group} ō_t x_t[n]          dB_t[n] = Σ_{d∈group} g_t[n] δ_t u_t
//   du_t = δ_t Σ_n g_t[n] B_t[n] + D ō_t      dz_t = dy_t o_t silu'(z_t)
//   dδ_t = Σ_n g_t[n] (A[n] a_t x_{t−1}[n] + B_t[n] u_t) · softplus'(δraw_t)
//   dA[n] = Σ_{b,t} g_t[n] δ_t a_t x_{t−1}[n];  dD = Σ_{b,t} ō_t u_t;  dδ_bias = Σ_{b,t} dδraw_t
// Ground truth: autograd of selective_scan_ref (state-spaces/mamba); the derivation is written out in
// lib/ssm/selective_scan_ref.ts (selectiveScanBackwardRef), checked there by finite differences.
//
// Passes (host: lib/ssm/selective_scan.ts): chunk_state + chunk_carry of selective_scan.wgsl give the
// state H_c entering each chunk (hin); then here
//   adjoint_local  per chunk from a zero adjoint at its end: G_c = a_s g_s (s = the chunk's first step)
//   chunk_carry (reverse) K_c = the adjoint entering chunk c from the future: K_{NC−1} = dLast,
//                  K_{c−1} = exp(A Σ_c) K_c + G_c; what is left after chunk 0 is d h0
//   grads          per chunk: states of its sub-blocks from hin (phase A), then sub-blocks last to first:
//                  recompute x_t, walk g_t down from K_c, reduce over n (du, dδ, dz) and over the block's
//                  channels (dB, dC partials); dA, dD, dδ_bias partials per (b, chunk)
//   sum_partials   (R, K, M) → (R, M): partials summed over K (dB/dC over channel blocks, dA/dD/dδ_bias
//                  over (b, chunk)).
//
// Bindings: u (1), δ (2): (B, D, L); A (3): (D, N); bm (4), cm (5): (B, G, N, L); dskip (6), dbias (8): (D);
// z (7), dout (9): (B, D, L); hin (10), carry (11): (B, NC, D, N); du (12), ddelta (13), dz (14): (B, D, L);
// bcpart (15): dB then dC partials, each (B, G, KB, N, L) with KB = channel blocks per group;
// red (16): dA partials (B, NC, D, N), then dD and dδ_bias partials (B, NC, D) each;
// sum_partials: part_in (17) (R, K, M) from offset in_off, sums (18) (R, M).
// Ownership: adjoint_local / grads: one workgroup of 64 per (channel block, chunk, batch); invocation
// li owns channel d0 + li / NP and state n = li % NP (NP = N rounded up to a power of two). Sub-blocks
// of TB = 8 steps are staged in workgroup memory; x_t, g_t and g_t(A a_t x_{t−1} + B_t u_t) of the
// sub-block are kept per invocation (WG × TB) for the two reductions; invocation li = (channel, t)
// reduces over n, invocations (n, t) reduce over the block's channels.
// Limits: N ≤ 64, DB ≤ 8, Q ≤ 32 (4 sub-block states).
// Workgroup memory is kept small (it bounds how many workgroups an SM holds on the H100).
// Speed (H100, B = 4, L = D = 2048, N = 16): 8.7 ms, about 20× the forward: this one-lane-per-state
// layout pays for its reductions in workgroup memory; the forward's one-invocation-per-channel layout
// (n-sums in registers) is the way to make it fast.
// Numerics: f32; a_t x_{t−1} is formed from the stored x_{t−1}, never as x_t − δBu (no cancellation).
// Workgroup memory: 3 × 8 × 9 + 2 × 64 × 9 + 3 × 64 × 9 + 4 × 64 f32 = 12.4 KiB.

struct Params {
  nb: u32, nd: u32, nl: u32, ns: u32,
  ng: u32, nc: u32, q: u32, np: u32,
  db: u32, flags: u32, yrow: u32, kb: u32,
  off_d: u32, off_bias: u32, off_c: u32, sr: u32,
  sk: u32, sm: u32, in_off: u32,
}

const HAS_D = 1u;
const HAS_Z = 2u;
const HAS_BIAS = 4u;
const SOFTPLUS = 8u;

const WG = 64u;
const TB = 8u;
const TBP = 9u;
const MAX_DB = 8u;
const MAX_NP = 64u;
const MAX_SUB = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> delta: array<f32>;
@group(0) @binding(3) var<storage, read> A: array<f32>;
@group(0) @binding(4) var<storage, read> bm: array<f32>;
@group(0) @binding(5) var<storage, read> cm: array<f32>;
@group(0) @binding(6) var<storage, read> dskip: array<f32>;
@group(0) @binding(7) var<storage, read> z: array<f32>;
@group(0) @binding(8) var<storage, read> dbias: array<f32>;
@group(0) @binding(9) var<storage, read> dout: array<f32>;
@group(0) @binding(10) var<storage, read> hin: array<f32>;
@group(0) @binding(11) var<storage, read_write> carry: array<f32>;
@group(0) @binding(12) var<storage, read_write> du: array<f32>;
@group(0) @binding(13) var<storage, read_write> ddelta: array<f32>;
@group(0) @binding(14) var<storage, read_write> dz: array<f32>;
@group(0) @binding(15) var<storage, read_write> bcpart: array<f32>;
@group(0) @binding(16) var<storage, read_write> red: array<f32>;
@group(0) @binding(17) var<storage, read> part_in: array<f32>;
@group(0) @binding(18) var<storage, read_write> sums: array<f32>;

// The stages are sized by the launch's DB and NP (overrides DBW ≤ MAX_DB, NPB ≤ MAX_NP; the host passes
// them): declared workgroup memory is allocated whether a launch uses it or not, and it bounds how many
// workgroups an SM holds.
override DBW: u32 = MAX_DB;
override NPB: u32 = MAX_NP;
var<workgroup> ds: array<f32, DBW * TBP>;   // δ_t, (DB, TB)
var<workgroup> us: array<f32, DBW * TBP>;   // u_t
var<workgroup> gy: array<f32, DBW * TBP>;   // ō_t
var<workgroup> bs: array<f32, NPB * TBP>;   // B_t[n], (NP, TB)
var<workgroup> cs: array<f32, NPB * TBP>;   // C_t[n]
var<workgroup> xw: array<f32, WG * TBP>;       // x_t[n], (WG, TB)
var<workgroup> gw: array<f32, WG * TBP>;       // g_t[n]
var<workgroup> ew: array<f32, WG * TBP>;       // g_t[n] (A a_t x_{t−1} + B_t u_t)
var<workgroup> xsub: array<f32, MAX_SUB * WG>; // state entering each sub-block, (sub-block, WG)

fn raw_step(i: u32, d: u32) -> f32 {
  var v = delta[i];
  if ((p.flags & HAS_BIAS) != 0u) { v += dbias[d]; }
  return v;
}

fn step_size(i: u32, d: u32) -> f32 {
  let v = raw_step(i, d);
  if ((p.flags & SOFTPLUS) != 0u) { return softplus(v); }
  return v;
}

// Stages steps t0 … t0+len−1: δ always; u and B unless mode = 1; ō and C unless mode = 0.
fn stage(li: u32, b: u32, d0: u32, g: u32, t0: u32, len: u32, mode: u32) {
  for (var k = li; k < p.db * TB; k += WG) {
    let dl = k / TB;
    let t = k % TB;
    if (d0 + dl < p.nd && t < len) {
      let i = (b * p.nd + d0 + dl) * p.nl + t0 + t;
      ds[dl * TBP + t] = step_size(i, d0 + dl);
      if (mode != 1u) { us[dl * TBP + t] = u[i]; }
      if (mode != 0u) {
        var o = dout[i];
        if ((p.flags & HAS_Z) != 0u) { o *= silu(z[i]); }
        gy[dl * TBP + t] = o;
      }
    }
  }
  for (var k = li; k < p.np * TB; k += WG) {
    let n = k / TB;
    let t = k % TB;
    if (n < p.ns && t < len) {
      let i = ((b * p.ng + g) * p.ns + n) * p.nl + t0 + t;
      if (mode != 1u) { bs[n * TBP + t] = bm[i]; }
      if (mode != 0u) { cs[n * TBP + t] = cm[i]; }
    }
  }
}

// The adjoint carried out of each chunk from a zero adjoint at its end: G_c = a_s g_s.
@compute @workgroup_size(WG)
fn adjoint_local(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.z;
  let c = wg.y;
  let d0 = wg.x * p.db;
  let dl = li / p.np;
  let n = li % p.np;
  let d = d0 + dl;
  let act = dl < p.db && d < p.nd && n < p.ns;
  let g = d0 / (p.nd / p.ng);
  let cs0 = c * p.q;
  let cend = min(cs0 + p.q, p.nl);
  let nsub = (cend - cs0 + TB - 1u) / TB;
  var a = 0.0;
  if (act) { a = A[d * p.ns + n]; }
  var h = 0.0;
  for (var k = 0u; k < nsub; k++) {
    let t0 = cs0 + (nsub - 1u - k) * TB;
    let len = min(TB, cend - t0);
    stage(li, b, d0, g, t0, len, 1u);
    workgroupBarrier();
    if (act) {
      for (var j = 0u; j < len; j++) {
        let t = len - 1u - j;
        h = exp(ds[dl * TBP + t] * a) * (h + gy[dl * TBP + t] * cs[n * TBP + t]);
      }
    }
    workgroupBarrier();
  }
  if (act) { carry[((b * p.nc + c) * p.nd + d) * p.ns + n] = h; }
}

// Gradients of one chunk from its entering state (hin) and the adjoint entering from the future (carry).
@compute @workgroup_size(WG)
fn grads(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.z;
  let c = wg.y;
  let d0 = wg.x * p.db;
  let dl = li / p.np;
  let n = li % p.np;
  let d = d0 + dl;
  let act = dl < p.db && d < p.nd && n < p.ns;
  let per_group = p.nd / p.ng;
  let g = d0 / per_group;
  let kblk = (d0 % per_group) / p.db;
  let cs0 = c * p.q;
  let cend = min(cs0 + p.q, p.nl);
  let nsub = (cend - cs0 + TB - 1u) / TB;
  let sidx = ((b * p.nc + c) * p.nd + d) * p.ns + n;
  var a = 0.0;
  var x = 0.0;
  var h = 0.0;
  if (act) {
    a = A[d * p.ns + n];
    x = hin[sidx];
    h = carry[sidx];
  }
  // Phase A: the state entering each sub-block.
  for (var k = 0u; k < nsub; k++) {
    xsub[k * WG + li] = x;
    if (k + 1u < nsub) {
      let t0 = cs0 + k * TB;
      stage(li, b, d0, g, t0, TB, 0u);
      workgroupBarrier();
      if (act) {
        for (var t = 0u; t < TB; t++) {
          let dt = ds[dl * TBP + t];
          x = exp(dt * a) * x + dt * us[dl * TBP + t] * bs[n * TBP + t];
        }
      }
      workgroupBarrier();
    }
  }
  // Phase B: sub-blocks from last to first.
  let rd = li / TB;  // reduction over n: invocation (channel rd, step rt)
  let rt = li % TB;
  var acc_d = 0.0;
  var acc_bias = 0.0;
  var acc_a = 0.0;
  for (var k = 0u; k < nsub; k++) {
    let sb = nsub - 1u - k;
    let t0 = cs0 + sb * TB;
    let len = min(TB, cend - t0);
    stage(li, b, d0, g, t0, len, 2u);
    workgroupBarrier();
    if (act) {
      let x0 = xsub[sb * WG + li];
      var xt = x0;
      for (var t = 0u; t < len; t++) {
        let dt = ds[dl * TBP + t];
        xt = exp(dt * a) * xt + dt * us[dl * TBP + t] * bs[n * TBP + t];
        xw[li * TBP + t] = xt;
      }
      for (var j = 0u; j < len; j++) {
        let t = len - 1u - j;
        let dt = ds[dl * TBP + t];
        let gt = h + gy[dl * TBP + t] * cs[n * TBP + t];
        var xprev = x0;
        if (t > 0u) { xprev = xw[li * TBP + t - 1u]; }
        let at = exp(dt * a);
        let ax = at * xprev;
        gw[li * TBP + t] = gt;
        ew[li * TBP + t] = gt * (a * ax + bs[n * TBP + t] * us[dl * TBP + t]);
        acc_a += gt * dt * ax;
        h = at * gt;
      }
    }
    workgroupBarrier();
    if (rd < p.db && d0 + rd < p.nd && rt < len) {
      var ysum = 0.0;
      var gb = 0.0;
      var es = 0.0;
      for (var m = 0u; m < p.ns; m++) {
        let j = (rd * p.np + m) * TBP + rt;
        ysum += xw[j] * cs[m * TBP + rt];
        gb += gw[j] * bs[m * TBP + rt];
        es += ew[j];
      }
      let dd = d0 + rd;
      let i = (b * p.nd + dd) * p.nl + t0 + rt;
      let uv = us[rd * TBP + rt];
      let ob = gy[rd * TBP + rt];
      var dut = ds[rd * TBP + rt] * gb;
      var o = ysum;
      if ((p.flags & HAS_D) != 0u) {
        dut += dskip[dd] * ob;
        o += dskip[dd] * uv;
      }
      du[i] = dut;
      if ((p.flags & HAS_Z) != 0u) {
        let zv = z[i];
        let s = sigmoid(zv);
        dz[i] = dout[i] * o * s * (1.0 + zv * (1.0 - s));
      }
      var dr = es;
      let raw = raw_step(i, dd);
      if ((p.flags & SOFTPLUS) != 0u && raw <= 20.0) { dr *= sigmoid(raw); }
      ddelta[i] = dr;
      acc_d += ob * uv;
      acc_bias += dr;
    }
    for (var kk = li; kk < p.np * TB; kk += WG) {
      let m = kk / TB;
      let t = kk % TB;
      if (m < p.ns && t < len) {
        var sc = 0.0;
        var sbv = 0.0;
        for (var e = 0u; e < p.db; e++) {
          if (d0 + e < p.nd) {
            let j = (e * p.np + m) * TBP + t;
            sc += gy[e * TBP + t] * xw[j];
            sbv += gw[j] * ds[e * TBP + t] * us[e * TBP + t];
          }
        }
        let o = (((b * p.ng + g) * p.kb + kblk) * p.ns + m) * p.nl + t0 + t;
        bcpart[o] = sbv;
        bcpart[p.off_c + o] = sc;
      }
    }
    workgroupBarrier();
  }
  if (act) { red[sidx] = acc_a; }
  xw[li] = acc_d;
  ew[li] = acc_bias;
  workgroupBarrier();
  if (li < p.db && d0 + li < p.nd) {
    var sd = 0.0;
    var sbias = 0.0;
    for (var t = 0u; t < TB; t++) {
      sd += xw[li * TB + t];
      sbias += ew[li * TB + t];
    }
    let o = (b * p.nc + c) * p.nd + d0 + li;
    red[p.off_d + o] = sd;
    red[p.off_bias + o] = sbias;
  }
}

// sums[r, i] = Σ_k part_in[in_off + (r K + k) M + i], one invocation per output.
@compute @workgroup_size(256)
fn sum_partials(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let e = (wg.y * p.yrow + wg.x) * 256u + li;
  if (e >= p.sr * p.sm) { return; }
  let r = e / p.sm;
  let i = e % p.sm;
  var acc = 0.0;
  for (var k = 0u; k < p.sk; k++) { acc += part_in[p.in_off + (r * p.sk + k) * p.sm + i]; }
  sums[e] = acc;
}
