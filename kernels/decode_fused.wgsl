// decode_fused.wgsl — small kernels fused for one-token decoding steps, where a step's time is the
// number of dispatches rather than arithmetic (speculative rounds replayed on the GPU, issue #7).
//
//   swiglu_matvec:  y[m, n] = silu(Σ_k x[m, k] · Wg[n, k]) · (Σ_k x[m, k] · Wu[n, k])
//                   (LlamaMLP's silu(gate(x)) · up(x): two products and the SwiGLU in one dispatch)
//
// Ground truth: matmul.wgsl `matvec` twice, then elementwise.wgsl `swiglu` (the same sums in the same
// order, four accumulators deep); the float64 twin is `swigluRef` of the two products (ops_ref.ts).
// Shapes: x (M, K), Wg and Wu (N, K) in the checkpoint's (out, in) layout, y (M, N). One invocation owns
// one output y(m, n); M is small (decoding: 1 to K + 1 rows).

struct Params { M: u32, N: u32, K: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wg: array<f32>;
@group(0) @binding(3) var<storage, read> wu: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn swiglu_matvec(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  let m = gid.y;
  if (n >= p.N || m >= p.M) { return; }
  let xr = m * p.K;
  let wr = n * p.K;
  var ag = vec4f(0.0);
  var au = vec4f(0.0);
  var k = 0u;
  for (; k + 4u <= p.K; k += 4u) {
    let xv = vec4f(x[xr + k], x[xr + k + 1u], x[xr + k + 2u], x[xr + k + 3u]);
    ag += xv * vec4f(wg[wr + k], wg[wr + k + 1u], wg[wr + k + 2u], wg[wr + k + 3u]);
    au += xv * vec4f(wu[wr + k], wu[wr + k + 1u], wu[wr + k + 2u], wu[wr + k + 3u]);
  }
  var g = ag.x + ag.y + ag.z + ag.w;
  var u = au.x + au.y + au.z + au.w;
  for (; k < p.K; k++) {
    g += x[xr + k] * wg[wr + k];
    u += x[xr + k] * wu[wr + k];
  }
  y[m * p.N + n] = silu(g) * u;
}
