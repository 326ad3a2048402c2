// split_matvec.wgsl — up to three row blocks of matrix products in one dispatch, for one-token decoding
// (a step's time is its number of dispatches): the attention's q, k, v projections, or a Mamba-2
// in_proj's z, xBC and dt blocks written straight into their own tensors (no column slices after it).
//
//   y_j[m, n] = Σ_k x[m, k] · W_j[o_j + n, k]      j < 3, n < n_j, m < M
//
// Ground truth: matmul.wgsl `matvec_team` on each block (the same sums in the same order, so the values
// are bit-identical); the float64 twin is a plain product (tests). Shapes: x (M, K), W_j (rows, K) in the
// checkpoint's (out, in) layout (the same buffer may be bound for several j), y_j (M, n_j). A team of 16
// invocations owns one output column for all M ≤ 8 rows (grid: (n_0 + n_1 + n_2) / 16 workgroups).

struct Params { M: u32, K: u32, n0: u32, n1: u32, n2: u32, o0: u32, o1: u32, o2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w0: array<f32>;
@group(0) @binding(3) var<storage, read> w1: array<f32>;
@group(0) @binding(4) var<storage, read> w2: array<f32>;
@group(0) @binding(5) var<storage, read_write> y0: array<f32>;
@group(0) @binding(6) var<storage, read_write> y1: array<f32>;
@group(0) @binding(7) var<storage, read_write> y2: array<f32>;

// One team of 16 invocations per output column for all M ≤ 8 rows (each weight element read once), 16
// columns per workgroup of 256; lane j adds x[m, k]·w[k] for k = 64i + 16c + j into accumulator c of row
// m, and lane m sums row m's lanes in lane order (matvec_team's order).
const TEAM: u32 = 16u;
var<workgroup> team_sums: array<f32, 2048>; // (row m < 8, invocation)

fn hsum(v: vec4f) -> f32 { return v.x + v.y + v.z + v.w; }

fn w_at(j: u32, k: u32) -> f32 {
  if (k >= p.K) { return 0.0; }
  if (j == 0u) { return w0[w_row + k]; }
  if (j == 1u) { return w1[w_row + k]; }
  return w2[w_row + k];
}

var<private> w_row: u32;
fn team_w(j: u32, k0: u32) -> vec4f {
  return vec4f(w_at(j, k0), w_at(j, k0 + TEAM), w_at(j, k0 + 2u * TEAM), w_at(j, k0 + 3u * TEAM));
}

fn x_at(m: u32, k: u32) -> f32 {
  if (k >= p.K) { return 0.0; }
  return x[m * p.K + k];
}

fn team_x(m: u32, k0: u32) -> vec4f {
  return vec4f(x_at(m, k0), x_at(m, k0 + TEAM), x_at(m, k0 + 2u * TEAM), x_at(m, k0 + 3u * TEAM));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % TEAM;
  let n = wg.x * (256u / TEAM) + li / TEAM;
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
  w_row = (o + r) * p.K;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  var acc4 = vec4f(0.0);
  var acc5 = vec4f(0.0);
  var acc6 = vec4f(0.0);
  var acc7 = vec4f(0.0);
  if (j < 3u) {
    for (var k0 = lane; k0 < p.K; k0 += 4u * TEAM) {
      let w = team_w(j, k0);
      acc0 += team_x(0u, k0) * w;
      if (p.M > 1u) { acc1 += team_x(1u, k0) * w; }
      if (p.M > 2u) { acc2 += team_x(2u, k0) * w; }
      if (p.M > 3u) { acc3 += team_x(3u, k0) * w; }
      if (p.M > 4u) { acc4 += team_x(4u, k0) * w; }
      if (p.M > 5u) { acc5 += team_x(5u, k0) * w; }
      if (p.M > 6u) { acc6 += team_x(6u, k0) * w; }
      if (p.M > 7u) { acc7 += team_x(7u, k0) * w; }
    }
  }
  team_sums[li] = hsum(acc0);
  if (p.M > 1u) { team_sums[256u + li] = hsum(acc1); }
  if (p.M > 2u) { team_sums[512u + li] = hsum(acc2); }
  if (p.M > 3u) { team_sums[768u + li] = hsum(acc3); }
  if (p.M > 4u) { team_sums[1024u + li] = hsum(acc4); }
  if (p.M > 5u) { team_sums[1280u + li] = hsum(acc5); }
  if (p.M > 6u) { team_sums[1536u + li] = hsum(acc6); }
  if (p.M > 7u) { team_sums[1792u + li] = hsum(acc7); }
  workgroupBarrier();
  if (lane < p.M && j < 3u) {
    let base = lane * 256u + li - lane;
    var s = team_sums[base];
    for (var t = 1u; t < TEAM; t++) { s += team_sums[base + t]; }
    if (j == 0u) {
      y0[lane * p.n0 + r] = s;
    } else if (j == 1u) {
      y1[lane * p.n1 + r] = s;
    } else {
      y2[lane * p.n2 + r] = s;
    }
  }
}
