// elementwise.wgsl — element-wise binary ops on equally shaped tensors.
//
//   add:    c = a + b            (residual connections)
//   mul:    c = a · b
//   scale:  c = α · a
//   swiglu: c = silu(a) · b      (LlamaMLP: down(silu(gate(x)) · up(x)); a = gate, b = up)
//
//   swiglu_backward: da = dc · b · σ(a)(1 + a(1 − σ(a))),  db = dc · silu(a)   (c = silu(a)·b)
//
// Ground truth: the torch expressions above in f32 (and their autograd). One invocation owns one element.

struct Params { n: u32, row: u32, alpha: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> da: array<f32>;
@group(0) @binding(5) var<storage, read_write> db: array<f32>;

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

@compute @workgroup_size(256)
fn swiglu_backward(@builtin(global_invocation_id) g: vec3u) {
  let i = g.y * p.row + g.x;
  if (i >= p.n) { return; }
  let x = a[i];
  let s = sigmoid(x);
  da[i] = c[i] * b[i] * s * (1.0 + x * (1.0 - s));
  db[i] = c[i] * x * s;
}

@compute @workgroup_size(256)
fn scale(@builtin(global_invocation_id) g: vec3u) {
  let i = g.y * p.row + g.x;
  if (i < p.n) { c[i] = p.alpha * a[i]; }
}
