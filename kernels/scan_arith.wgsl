// scan_arith.wgsl — benchmark-only: the arithmetic of one walk of the selective-scan recurrence with no
// memory traffic (issue #3; bench/scan_arith.ts, docs/results.md §8f). Each invocation owns 16 states
// (four vec4) and walks p.x steps in sub-blocks of 8, as an invocation of the three-pass forward's chunk
// passes walks its chunk (Q = 128 steps at the research size); δ_t follows a cheap per-step update and
// δ_t u_t is formed from it, B and C come from registers, and the result leaves through one sink value
// per invocation, so that no step can be dropped.
//
// MODE (override) selects what each step costs:
//   MODE & 7     decay: 0 δA itself (no exponential), 1 exp2(δA) (the multi-function unit), 2 exp2 by a
//                polynomial on the FMA pipe (exp2p), 3 polynomial for the first two vec4, exp2 for the rest
//   MODE & 8     B and C read from workgroup memory each step, with a barrier per sub-block (the passes'
//                staging; entries written once from the invocation's registers)
//   MODE & 16    y formed: Σ_n C_t[n] x_t[n] per step (chunk_out; without it, chunk_state)
//   MODE & 32    δ through softplus and, with y, y through silu(z_t), z_t = δraw_t − ½ (the passes'
//                per-channel transcendentals)
// Bindings: p (0): (steps, 0 — an opaque zero, see exp2p —, 0, 0); sink (1): one float per invocation.

override MODE: u32 = 1u;

@group(0) @binding(0) var<uniform> p: vec4u;
@group(0) @binding(1) var<storage, read_write> sink: array<f32>;

var<workgroup> bs: array<vec4<f32>, 256>;
var<workgroup> cs: array<vec4<f32>, 256>;

// 2^x for −125 ≤ x ≤ 0 on the FMA pipe: x = n + f with n rounded to nearest by adding 1.5·2^23 (|f| ≤ ½),
// 2^f by its Taylor polynomial of degree 6 (truncation ≤ 1.3e-7 relative), n added to the exponent
// field. The rounded value's bits pass through an XOR with the opaque zero p.y: without it lavapipe
// folds (x + M) − M back to x (f = 0), with M a constant or not.
fn exp2p(x: vec4<f32>) -> vec4<f32> {
  let xc = max(x, vec4(-125.0));
  let tb = bitcast<vec4<u32>>(xc + 12582912.0) ^ vec4(p.y);
  let n = bitcast<vec4<i32>>(tb) - 0x4B400000;
  let f = xc - (bitcast<vec4<f32>>(tb) - 12582912.0);
  var q = f * 1.5403530e-4 + 1.3333558e-3;
  q = q * f + 9.6181291e-3;
  q = q * f + 5.5504109e-2;
  q = q * f + 2.4022651e-1;
  q = q * f + 6.9314718e-1;
  q = q * f + 1.0;
  return bitcast<vec4<f32>>(bitcast<vec4<i32>>(q) + (n << vec4(23u)));
}

// The decay of state vec4 k for step size dt and rates a (A log2 e).
fn decay(dt: f32, a: vec4<f32>, k: u32) -> vec4<f32> {
  let m = MODE & 7u;
  if (m == 0u) { return dt * a; }
  if (m == 1u || (m == 3u && k >= 2u)) { return exp2(dt * a); }
  return exp2p(dt * a);
}

@compute @workgroup_size(128)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_index) li: u32) {
  let g = gid.x;
  let s = f32(g & 1023u) * 1e-4;
  let a0 = -vec4(1.0, 2.0, 3.0, 4.0) - s;
  let a1 = a0 - 4.0;
  let a2 = a0 - 8.0;
  let a3 = a0 - 12.0;
  let b0 = vec4(0.1, 0.2, 0.3, 0.4) + s;
  let b1 = b0 + 0.5;
  let b2 = b0 - 0.5;
  let b3 = b0 * 0.5;
  var x0 = vec4(0.0);
  var x1 = vec4(0.0);
  var x2 = vec4(0.0);
  var x3 = vec4(0.0);
  var dt = 0.01 + s;
  var yacc = 0.0;
  let wgm = (MODE & 8u) != 0u;
  let withY = (MODE & 16u) != 0u;
  let trans = (MODE & 32u) != 0u;
  if (wgm) {
    let fl = f32(li);
    bs[li] = b0 + fl;
    bs[li + 128u] = b1 - fl;
    cs[li] = b2 * fl;
    cs[li + 128u] = b3 + fl;
  }
  for (var t0 = 0u; t0 < p.x; t0 += 8u) {
    if (wgm) { workgroupBarrier(); }
    for (var k = 0u; k < 8u; k++) {
      dt = dt * 0.999 + 0.00002;
      var dte = dt;
      if (trans) { dte = select(log(1.0 + exp(dt)), dt, dt > 20.0); }
      let du = dte * 0.5 + s;
      // B_t[n] in e, C_t[n] in c: registers, or entries j … j+3 of the stages (j = 4 · (step mod 32)).
      var e0 = b0;
      var e1 = b1;
      var e2 = b2;
      var e3 = b3;
      var c0 = b2;
      var c1 = b3;
      var c2 = b0;
      var c3 = b1;
      if (wgm) {
        let j = ((t0 + k) & 31u) * 4u;
        e0 = bs[j];
        e1 = bs[j + 1u];
        e2 = bs[j + 2u];
        e3 = bs[j + 3u];
        c0 = cs[j];
        c1 = cs[j + 1u];
        c2 = cs[j + 2u];
        c3 = cs[j + 3u];
      }
      x0 = decay(dte, a0, 0u) * x0 + du * e0;
      x1 = decay(dte, a1, 1u) * x1 + du * e1;
      x2 = decay(dte, a2, 2u) * x2 + du * e2;
      x3 = decay(dte, a3, 3u) * x3 + du * e3;
      if (withY) {
        let acc = x0 * c0 + x1 * c1 + x2 * c2 + x3 * c3;
        var yt = acc.x + acc.y + acc.z + acc.w;
        if (trans) {
          let zt = dt - 0.5;
          yt = yt * (zt / (1.0 + exp(-zt)));
        }
        yacc += yt;
      }
    }
  }
  let tot = x0 + x1 + x2 + x3;
  sink[g] = tot.x + tot.y + tot.z + tot.w + yacc;
}
