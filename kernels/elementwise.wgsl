// elementwise.wgsl — element-wise binary ops on equally shaped tensors.
//
//   add:    c = a + b            (residual connections)
//   mul:    c = a · b
//   swiglu: c = silu(a) · b      (LlamaMLP: down(silu(gate(x)) · up(x)); a = gate, b = up)
//
// Ground truth: the torch expressions above in f32. One invocation owns one element.

struct Params { n: u32, row: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(256)
fn add(@builtin(global_invocation_id) g: vec3u) {
  let i = g.y * p.row + g.x;
  if (i < p.n) { c[i] = a[i] + b[i]; }
}

@compute @workgroup_size(256)
fn mul(@builtin(global_invocation_id) g: vec3u) {
  let i = g.y * p.row + g.x;
  if (i < p.n) { c[i] = a[i] * b[i]; }
}

@compute @workgroup_size(256)
fn swiglu(@builtin(global_invocation_id) g: vec3u) {
  let i = g.y * p.row + g.x;
  if (i < p.n) { c[i] = silu(a[i]) * b[i]; }
}
