// embedding.wgsl — token embedding gather from one row block of the table.
//
//   out[t, :] = W[ids[t] − lo, :]   for lo ≤ ids[t] < hi   (other rows are left to the other blocks)
//
// Ground truth: nn.Embedding / `model.embed_tokens`. The table may be split into row blocks that each
// fit one storage binding; the wrapper dispatches once per block.
// Bindings: ids (read, i32, T), W (read, f32, (hi − lo, D)), out (read_write, f32, (T, D)).
// One invocation owns one output element (t, d); grid (ceil(D/256), T) with T split over y and z.
//
// Backward (entry `backward`): dW[ids[t] − lo, d] += dy[t, d], by compare-and-swap on the f32 bits
// (WGSL has no float atomics). The order of additions into a row used by several tokens varies from
// run to run, so dW is reproducible to f32 rounding, not bit for bit.

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

@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dW: array<atomic<u32>>;

// Bindings: ids (1), dy (4), dW (5, (hi − lo, D), zeroed by the wrapper).
@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) g: vec3u) {
  let t = g.z * p.zrow + g.y;
  let d = g.x;
  if (t >= p.T || d >= p.D) { return; }
  let id = u32(ids[t]);
  if (id < p.lo || id >= p.hi) { return; }
  let v = dy[t * p.D + d];
  let idx = (id - p.lo) * p.D + d;
  var old = atomicLoad(&dW[idx]);
  loop {
    let r = atomicCompareExchangeWeak(&dW[idx], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}
