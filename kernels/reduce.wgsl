// reduce.wgsl — row sums.
//
//   out[offset + r] = Σ_j x[r, j]      (optionally accumulated: out[offset + r] += …)
//
// Ground truth: torch.sum(x, dim=-1) in f32. One workgroup of 256 owns one row (tree reduction).

struct Params { R: u32, C: u32, offset: u32, accumulate: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn sum_rows(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.x;
  var s = 0.0;
  for (var j = li; j < p.C; j += 256u) { s += x[r * p.C + j]; }
  red[li] = s;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (li < k) { red[li] += red[li + k]; }
    workgroupBarrier();
  }
  if (li == 0u) {
    var v = red[0];
    if (p.accumulate != 0u) { v += out[p.offset + r]; }
    out[p.offset + r] = v;
  }
}
