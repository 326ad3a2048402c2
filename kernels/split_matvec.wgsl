// split_matvec.wgsl — up to three row blocks of matrix products in one dispatch, for one-token decoding
// (a step's time is its number of dispatches): the attention's q, k, v projections, or a Mamba-2
// in_proj's z, xBC and dt blocks written straight into their own tensors (no column slices after it).
//
//   y_j[m, n] = Σ_k x[m, k] · W_j[o_j + n, k]      j < 3, n < n_j, m < M
//
// Ground truth: matmul.wgsl `matvec_team` on each block (the same sums in the same order, so the values
// are bit-identical); the float64 twin is a plain product (tests). Shapes: x (M, K), W_j (rows, K) in the
// checkpoint's (out, in) layout (the same buffer may be bound for several j), y_j (M, n_j). A team of 16
// invocations owns one output (grid: x over (n_0 + n_1 + n_2) / 16 workgroups, y over M rows).

struct Params { M: u32, K: u32, n0: u32, n1: u32, n2: u32, o0: u32, o1: u32, o2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w0: array<f32>;
@group(0) @binding(3) var<storage, read> w1: array<f32>;
@group(0) @binding(4) var<storage, read> w2: array<f32>;
@group(0) @binding(5) var<storage, read_write> y0: array<f32>;
@group(0) @binding(6) var<storage, read_write> y1: array<f32>;
@group(0) @binding(7) var<storage, read_write> y2: array<f32>;

// One team of 16 invocations per output, 16 outputs per workgroup of 256; lane j adds x[k]·w[k] for
// k = 64i + 16c + j into accumulator c, and lane 0 sums the lanes in lane order (matvec_team's order).
const TEAM: u32 = 16u;
var<workgroup> team_sums: array<f32, 256>;

fn term0(xr: u32, wr: u32, k: u32) -> f32 {
  if (k >= p.K) { return 0.0; }
  return x[xr + k] * w0[wr + k];
}

fn term1(xr: u32, wr: u32, k: u32) -> f32 {
  if (k >= p.K) { return 0.0; }
  return x[xr + k] * w1[wr + k];
}

fn term2(xr: u32, wr: u32, k: u32) -> f32 {
  if (k >= p.K) { return 0.0; }
  return x[xr + k] * w2[wr + k];
}

// The lane's share of output row wr of block j (W_j's rows start at wr), over k = lane, lane + 16, ….
fn lane_dot(j: u32, xr: u32, wr: u32, lane: u32) -> f32 {
  var acc = vec4f(0.0);
  for (var k0 = lane; k0 < p.K; k0 += 4u * TEAM) {
    if (j == 0u) {
      acc += vec4f(term0(xr, wr, k0), term0(xr, wr, k0 + TEAM), term0(xr, wr, k0 + 2u * TEAM),
                   term0(xr, wr, k0 + 3u * TEAM));
    } else if (j == 1u) {
      acc += vec4f(term1(xr, wr, k0), term1(xr, wr, k0 + TEAM), term1(xr, wr, k0 + 2u * TEAM),
                   term1(xr, wr, k0 + 3u * TEAM));
    } else {
      acc += vec4f(term2(xr, wr, k0), term2(xr, wr, k0 + TEAM), term2(xr, wr, k0 + 2u * TEAM),
                   term2(xr, wr, k0 + 3u * TEAM));
    }
  }
  return acc.x + acc.y + acc.z + acc.w;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % TEAM;
  let n = wg.x * (256u / TEAM) + li / TEAM;
  let m = wg.y;
  let xr = m * p.K;
  // The block and row within it of output column n (past the last column: no block, nothing stored).
  var j = 3u;
  var r = 0u;
  if (n < p.n0) {
    j = 0u;
    r = n;
  } else if (n < p.n0 + p.n1) {
    j = 1u;
    r = n - p.n0;
  } else if (n < p.n0 + p.n1 + p.n2) {
    j = 2u;
    r = n - p.n0 - p.n1;
  }
  let o = select(select(p.o2, p.o1, j == 1u), p.o0, j == 0u);
  var part = 0.0;
  if (j < 3u) { part = lane_dot(j, xr, (o + r) * p.K, lane); }
  team_sums[li] = part;
  workgroupBarrier();
  if (lane == 0u && j < 3u) {
    var s = team_sums[li];
    for (var t = 1u; t < TEAM; t++) { s += team_sums[li + t]; }
    if (j == 0u) {
      y0[m * p.n0 + r] = s;
    } else if (j == 1u) {
      y1[m * p.n1 + r] = s;
    } else {
      y2[m * p.n2 + r] = s;
    }
  }
}
