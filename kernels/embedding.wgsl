// embedding.wgsl — token embedding gather from one row block of the table.
//
//   out[t, :] = W[ids[t] − lo, :]   for lo ≤ ids[t] < hi   (other rows are left to the other blocks)
//
// Ground truth: nn.Embedding / `model.embed_tokens`. The table may be split into row blocks that each
// fit one storage binding; the wrapper dispatches once per block.
// Bindings: ids (read, i32, T), W (read, f32, (hi − lo, D)), out (read_write, f32, (T, D)).
// One invocation owns one output element (t, d); grid (ceil(D/256), T) with T split over y and z.

struct Params { T: u32, D: u32, lo: u32, hi: u32, zrow: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let t = g.z * p.zrow + g.y;
  let d = g.x;
  if (t >= p.T || d >= p.D) { return; }
  let id = u32(ids[t]);
  if (id < p.lo || id >= p.hi) { return; }
  out[t * p.D + d] = W[(id - p.lo) * p.D + d];
}
