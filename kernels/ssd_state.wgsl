// ssd_state.wgsl — Mamba-2 SSD: the inter-chunk state recurrence (forward and reverse) and the
// one-token step.
//
//   state_pass:      H_0 = initial state (or 0);  H_{c+1} = exp(T_c) H_c + S_c;  final = H_{nc}
//                    (S_c, from kernels/ssd.wgsl chunk_state, is overwritten by H_c: the state entering c)
//   state_pass_bwd:  𝒢_{nc} = dFinalState (or 0);  𝒢_c = dH_c^off + exp(T_c) 𝒢_{c+1};  d init = 𝒢_0
//                    (dH_c^off is overwritten by dS_c = 𝒢_{c+1})
//   step:            state ← exp(a) state + x Bᵀ;  y = state C        (one token, state in place)
// Ground truth: step 3 of ssd_minimal_discrete (the chunk decay matrix exp(segsum(pad(T))) applied as the
// recurrence it encodes) and its adjoint; the step is the recurrence H_t = exp(A_t) H_{t−1} + X_t B_tᵀ.
// lib/ssm/ssd_ref.ts holds the references.
//
// Bindings of state_pass / state_pass_bwd: 1 T (B, H, nc) chunk totals of a; 2 S (B, nc, H, P·N)
//   read_write; 3 init / dFinal (B, H, P·N) (a dummy unless flags & 1); 4 final / d init (B, H, P·N).
// Bindings of step: 5 state (B, H, P, N) read_write; 6 x (B, H, P); 7 a (B, H); 8 B, 9 C (B, H, N);
//   10 y (B, H, P).
// Ownership: state passes: one invocation owns one element e of the P·N state of one (b, h) and walks
// the nc chunks (grid ⌈P·N/256⌉ × H × B; consecutive invocations, consecutive e). step: one invocation
// owns one row (b, h, p) of the state and walks its N entries.
// Numerics: f32; exp(T_c) ≤ 1 for a ≤ 0.

struct Params { H: u32, PN: u32, nc: u32, flags: u32, P: u32, N: u32, rows: u32, yrow: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tot: array<f32>;
@group(0) @binding(2) var<storage, read_write> st: array<f32>;
@group(0) @binding(3) var<storage, read> s_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> s_fin: array<f32>;

@compute @workgroup_size(256)
fn state_pass(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.x;
  if (e >= p.PN) { return; }
  let bh = gid.z * p.H + gid.y;
  var run = 0.0;
  if ((p.flags & 1u) != 0u) { run = s_in[bh * p.PN + e]; }
  for (var c = 0u; c < p.nc; c++) {
    let i = ((gid.z * p.nc + c) * p.H + gid.y) * p.PN + e;
    let s = st[i];
    st[i] = run;
    run = exp(tot[bh * p.nc + c]) * run + s;
  }
  s_fin[bh * p.PN + e] = run;
}

@compute @workgroup_size(256)
fn state_pass_bwd(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.x;
  if (e >= p.PN) { return; }
  let bh = gid.z * p.H + gid.y;
  var g = 0.0;
  if ((p.flags & 1u) != 0u) { g = s_in[bh * p.PN + e]; }
  for (var c = p.nc; c > 0u; c--) {
    let i = ((gid.z * p.nc + c - 1u) * p.H + gid.y) * p.PN + e;
    let d = st[i];
    st[i] = g;
    g = d + exp(tot[bh * p.nc + c - 1u]) * g;
  }
  s_fin[bh * p.PN + e] = g;
}

@group(0) @binding(5) var<storage, read_write> state: array<f32>;
@group(0) @binding(6) var<storage, read> x1: array<f32>;
@group(0) @binding(7) var<storage, read> a1: array<f32>;
@group(0) @binding(8) var<storage, read> b1: array<f32>;
@group(0) @binding(9) var<storage, read> c1: array<f32>;
@group(0) @binding(10) var<storage, read_write> y1: array<f32>;

@compute @workgroup_size(256)
fn step(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.y * p.yrow + gid.x; // (b, h, p)
  if (row >= p.rows) { return; }
  let bh = row / p.P;
  let decay = exp(a1[bh]);
  let xv = x1[row];
  var y = 0.0;
  for (var n = 0u; n < p.N; n++) {
    let s = decay * state[row * p.N + n] + xv * b1[bh * p.N + n];
    state[row * p.N + n] = s;
    y += s * c1[bh * p.N + n];
  }
  y1[row] = y;
}
