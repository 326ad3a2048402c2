// split_matvec.wgsl — up to three row blocks of matrix products in one dispatch, for one-token decoding
// (a step's time is its number of dispatches): the attention's q, k, v projections, or a Mamba-2
// in_proj's z, xBC and dt blocks written straight into their own tensors (no column slices after it).
//
//   y_j[m, n] = Σ_k x[m, k] · W_j[o_j + n, k]      j < 3, n < n_j, m < M
//
// Ground truth: matmul.wgsl `matvec` on each block (the same sums in the same order, four accumulators
// deep, so the values are bit-identical); the float64 twin is a plain product (tests). Shapes: x (M, K),
// W_j (rows, K) in the checkpoint's (out, in) layout (the same buffer may be bound for several j), y_j
// (M, n_j). One invocation owns one output: x over n_0 + n_1 + n_2 columns, y over M rows.

struct Params { M: u32, K: u32, n0: u32, n1: u32, n2: u32, o0: u32, o1: u32, o2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w0: array<f32>;
@group(0) @binding(3) var<storage, read> w1: array<f32>;
@group(0) @binding(4) var<storage, read> w2: array<f32>;
@group(0) @binding(5) var<storage, read_write> y0: array<f32>;
@group(0) @binding(6) var<storage, read_write> y1: array<f32>;
@group(0) @binding(7) var<storage, read_write> y2: array<f32>;

fn dot0(xr: u32, wr: u32) -> f32 {
  var acc = vec4f(0.0);
  var k = 0u;
  for (; k + 4u <= p.K; k += 4u) {
    acc += vec4f(x[xr + k], x[xr + k + 1u], x[xr + k + 2u], x[xr + k + 3u]) *
           vec4f(w0[wr + k], w0[wr + k + 1u], w0[wr + k + 2u], w0[wr + k + 3u]);
  }
  var s = acc.x + acc.y + acc.z + acc.w;
  for (; k < p.K; k++) { s += x[xr + k] * w0[wr + k]; }
  return s;
}

fn dot1(xr: u32, wr: u32) -> f32 {
  var acc = vec4f(0.0);
  var k = 0u;
  for (; k + 4u <= p.K; k += 4u) {
    acc += vec4f(x[xr + k], x[xr + k + 1u], x[xr + k + 2u], x[xr + k + 3u]) *
           vec4f(w1[wr + k], w1[wr + k + 1u], w1[wr + k + 2u], w1[wr + k + 3u]);
  }
  var s = acc.x + acc.y + acc.z + acc.w;
  for (; k < p.K; k++) { s += x[xr + k] * w1[wr + k]; }
  return s;
}

fn dot2(xr: u32, wr: u32) -> f32 {
  var acc = vec4f(0.0);
  var k = 0u;
  for (; k + 4u <= p.K; k += 4u) {
    acc += vec4f(x[xr + k], x[xr + k + 1u], x[xr + k + 2u], x[xr + k + 3u]) *
           vec4f(w2[wr + k], w2[wr + k + 1u], w2[wr + k + 2u], w2[wr + k + 3u]);
  }
  var s = acc.x + acc.y + acc.z + acc.w;
  for (; k < p.K; k++) { s += x[xr + k] * w2[wr + k]; }
  return s;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  let m = gid.y;
  if (m >= p.M) { return; }
  let xr = m * p.K;
  if (n < p.n0) {
    y0[m * p.n0 + n] = dot0(xr, (p.o0 + n) * p.K);
  } else if (n < p.n0 + p.n1) {
    let j = n - p.n0;
    y1[m * p.n1 + j] = dot1(xr, (p.o1 + j) * p.K);
  } else if (n < p.n0 + p.n1 + p.n2) {
    let j = n - p.n0 - p.n1;
    y2[m * p.n2 + j] = dot2(xr, (p.o2 + j) * p.K);
  }
}
