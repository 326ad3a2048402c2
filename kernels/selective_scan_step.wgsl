// selective_scan_step.wgsl — one token of the Mamba-1 recurrence (decoding), state updated in place.
//
//   dt = softplus(dt + dt_bias)               (softplus only with the flag; threshold 20)
//   state ← state · exp(dt A) + dt B x        (per channel d and state n)
//   y = Σ_n state[n] C[n] + D x;  y ← y · silu(z)
//
// Ground truth: selective_state_update_ref of state-spaces/mamba (mamba_ssm/ops/triton/
// selective_state_update.py, method.md §2.1); CPU twin selectiveStateUpdateRef in
// lib/ssm/selective_scan_ref.ts.
// Bindings: x (1), dt (2): (B, D); A (3): (D, N); bm (4), cm (5): (B, G, N) (channel d uses group
// ⌊d/(D/G)⌋); dskip (6): (D); z (7): (B, D); dbias (8): (D); state (9): (B, D, N), read and written;
// y (10): (B, D). Absent optional inputs are a dummy buffer and a cleared flag bit.
// Ownership: workgroups of 128 over (channel block, batch); invocation li owns channel
// d0 + li / NP and state n = li % NP (NP = N rounded up to a power of two, lanes n ≥ N idle); the sum
// over n goes through workgroup memory, read by the invocation with n = 0.
// Numerics: f32.

struct Params { nb: u32, nd: u32, ns: u32, ng: u32, np: u32, db: u32, flags: u32 }

const HAS_D = 1u;
const HAS_Z = 2u;
const HAS_BIAS = 4u;
const SOFTPLUS = 8u;
const WG = 128u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dt: array<f32>;
@group(0) @binding(3) var<storage, read> A: array<f32>;
@group(0) @binding(4) var<storage, read> bm: array<f32>;
@group(0) @binding(5) var<storage, read> cm: array<f32>;
@group(0) @binding(6) var<storage, read> dskip: array<f32>;
@group(0) @binding(7) var<storage, read> z: array<f32>;
@group(0) @binding(8) var<storage, read> dbias: array<f32>;
@group(0) @binding(9) var<storage, read_write> state: array<f32>;
@group(0) @binding(10) var<storage, read_write> y: array<f32>;

var<workgroup> part: array<f32, WG>;  // state · C per (channel, n)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.y;
  let dl = li / p.np;
  let n = li % p.np;
  let d = wg.x * p.db + dl;
  let act = dl < p.db && d < p.nd && n < p.ns;
  if (act) {
    let bd = b * p.nd + d;
    var step = dt[bd];
    if ((p.flags & HAS_BIAS) != 0u) { step += dbias[d]; }
    if ((p.flags & SOFTPLUS) != 0u) { step = softplus(step); }
    let bc = (b * p.ng + d / (p.nd / p.ng)) * p.ns + n;
    let j = bd * p.ns + n;
    let s = state[j] * exp(step * A[d * p.ns + n]) + step * bm[bc] * x[bd];
    state[j] = s;
    part[li] = s * cm[bc];
  }
  workgroupBarrier();
  if (act && n == 0u) {
    let bd = b * p.nd + d;
    var acc = 0.0;
    for (var m = 0u; m < p.ns; m++) { acc += part[dl * p.np + m]; }
    if ((p.flags & HAS_D) != 0u) { acc += dskip[d] * x[bd]; }
    if ((p.flags & HAS_Z) != 0u) { acc *= silu(z[bd]); }
    y[bd] = acc;
  }
}
