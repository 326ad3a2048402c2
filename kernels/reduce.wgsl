// reduce.wgsl — row sums.
//
//   out[offset + r] = Σ_j x[r, j]      (optionally accumulated: out[offset + r] += …)
//
//   sum_cols (one pass): part[c', c] = Σ_{r in block c'} x[r, c] over blocks of 64 rows; the wrapper
//   repeats it until one row is left (gradients of weights shared by all rows: norms, biases).
//
// Ground truth: torch.sum(x, dim=-1 / 0) in f32. sum_rows: one workgroup of 256 owns one row (tree
// reduction); sum_cols: one invocation owns one (block, column).

struct Params { R: u32, C: u32, offset: u32, accumulate: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn sum_rows(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.x;
  var s = 0.0;
  for (var j = li; j < p.C; j += 256u) { s += x[r * p.C + j]; }
  let total = wg_sum(li, s);
  if (li == 0u) {
    var v = total;
    if (p.accumulate != 0u) { v += out[p.offset + r]; }
    out[p.offset + r] = v;
  }
}

@compute @workgroup_size(256)
fn sum_cols(@builtin(global_invocation_id) g: vec3u) {
  let c = g.x;
  let blk = g.y;
  if (c >= p.C) { return; }
  let r0 = blk * 64u;
  let r1 = min(r0 + 64u, p.R);
  var s = 0.0;
  for (var r = r0; r < r1; r++) { s += x[r * p.C + c]; }
  out[blk * p.C + c] = s;
}
