// gated_norm.wgsl — the gated RMSNorm of Mamba-2 layers (norm_before_gate = False), forward and backward.
//
//   g = x · silu(z)
//   r = rsqrt(mean_{group} g² + ε)             per group of gs consecutive channels (ε inside the sqrt)
//   y = g · r · w
// Backward (entry `backward`), with du = dy · w:
//   dg = r · du − g · r³ · mean_{group}(du · g)
//   dx = dg · silu(z),   dz = dg · x · silu'(z),   silu'(z) = σ(z)(1 + z(1 − σ(z)))
//   dw_rows[row, d] = dy · g · r               (summed over rows by reduce.wgsl's sum_cols)
//
// Ground truth: rms_norm_ref of state-spaces/mamba mamba_ssm/ops/triton/layernorm_gated.py with
// norm_before_gate=False (method.md §2.2), transcribed in lib/ssm/gated_norm_ref.ts.
// Bindings (row-major, f32, R rows of D = G · gs channels): x (1, (R, D)), z (2, (R, D)), w (3, (D)),
//   y (4, (R, D)); backward: dy (5), dx (6), dz (7), dw_rows (8), all (R, D).
// Ownership: a unit is one (row, group); S lanes (a power of two ≤ 256, ≥ gs when gs < 256) own one unit
//   and stride its gs channels, so a workgroup of 256 owns 256 / S units (small groups do not leave
//   lanes idle). The group sums are segmented trees over the S lanes in workgroup memory (no subgroups).
// Numerics: f32; each lane accumulates its strided slice, then the tree; x and z are re-read (cached)
//   for the second sweep instead of being held in registers.

struct Params { units: u32, D: u32, gs: u32, S: u32, yrow: u32, eps: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dz: array<f32>;
@group(0) @binding(8) var<storage, read_write> dw_rows: array<f32>;

// Sum of `v` over the S lanes of the caller's segment (all of them get it). Uniform control flow only.
fn seg_sum(li: u32, v: f32) -> f32 {
  wg_red[li] = v;
  workgroupBarrier();
  for (var k = p.S / 2u; k > 0u; k >>= 1u) {
    if (li % p.S < k) { wg_red[li] += wg_red[li + k]; }
    workgroupBarrier();
  }
  let r = wg_red[li - li % p.S];
  workgroupBarrier();
  return r;
}

fn gate(e: u32) -> f32 {
  return x[e] * silu(z[e]);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let unit = (wg.y * p.yrow + wg.x) * (256u / p.S) + li / p.S;
  let lane = li % p.S;
  let live = unit < p.units;
  let base = unit * p.gs; // (row, group) units are contiguous runs of gs channels
  var ss = 0.0;
  if (live) {
    for (var j = lane; j < p.gs; j += p.S) {
      let g = gate(base + j);
      ss += g * g;
    }
  }
  let r = inverseSqrt(seg_sum(li, ss) / f32(p.gs) + p.eps);
  if (live) {
    for (var j = lane; j < p.gs; j += p.S) {
      let e = base + j;
      y[e] = gate(e) * r * w[e % p.D];
    }
  }
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let unit = (wg.y * p.yrow + wg.x) * (256u / p.S) + li / p.S;
  let lane = li % p.S;
  let live = unit < p.units;
  let base = unit * p.gs;
  var ss = 0.0;
  var sdg = 0.0;
  if (live) {
    for (var j = lane; j < p.gs; j += p.S) {
      let e = base + j;
      let g = gate(e);
      ss += g * g;
      sdg += dy[e] * w[e % p.D] * g;
    }
  }
  let r = inverseSqrt(seg_sum(li, ss) / f32(p.gs) + p.eps);
  let m = seg_sum(li, sdg) / f32(p.gs);
  if (live) {
    for (var j = lane; j < p.gs; j += p.S) {
      let e = base + j;
      let zz = z[e];
      let sz = sigmoid(zz);
      let g = x[e] * zz * sz;
      let dg = r * dy[e] * w[e % p.D] - g * r * r * r * m;
      dx[e] = dg * zz * sz;
      dz[e] = dg * x[e] * sz * (1.0 + zz * (1.0 - sz));
      dw_rows[e] = dy[e] * g * r;
    }
  }
}
