// split_matvec.wgsl — up to three row blocks of matrix products in one dispatch, for one-token decoding
// (a step's time is its number of dispatches): the attention's q, k, v projections, or a Mamba-2
// in_proj's z, xBC and dt blocks written straight into their own tensors (no column slices after it).
//
//   y_j[m, n] = Σ_k x[m, k] · W_j[o_j + n, k]      j < 3, n < n_j, m < M
//
// Ground truth: matmul.wgsl `matvec_team` on each block (the same sums in the same order, so the values
// are bit-identical); the float64 twin is a plain product (tests). Shapes: x (M, K), W_j (rows, K) in the
// checkpoint's (out, in) layout (the same buffer may be bound for several j), y_j (M, n_j). A team of 16
// invocations owns one output column for up to 3 rows (grid: x over ⌈M / MR⌉, y over (n_0 + n_1 + n_2)
// / 16 workgroups).

struct Params { M: u32, K: u32, n0: u32, n1: u32, n2: u32, o0: u32, o1: u32, o2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w0: array<f32>;
@group(0) @binding(3) var<storage, read> w1: array<f32>;
@group(0) @binding(4) var<storage, read> w2: array<f32>;
@group(0) @binding(5) var<storage, read_write> y0: array<f32>;
@group(0) @binding(6) var<storage, read_write> y1: array<f32>;
@group(0) @binding(7) var<storage, read_write> y2: array<f32>;

// One team of 16 invocations per output column, 16 columns per workgroup of 256, for the MR rows
// m0 … m0+MR−1 of the workgroup (override MR ≤ 3; grid x over ⌈M / MR⌉): each weight load serves all
// MR rows. Lane j adds x[m, k]·w[k] for k = 64i + 16c + j into accumulator c of row m, and lane r sums
// row r over the lanes in lane order (matvec_team's order, for any MR).
const TEAM: u32 = 16u;
override MR: u32 = 1u;
var<workgroup> team_sums: array<f32, 768>;  // (row r < MR, invocation)

fn x_at(xr: u32, k: u32) -> f32 {
  if (k >= p.K) { return 0.0; }
  return x[xr + k];
}

fn w_at(j: u32, wr: u32, k: u32) -> f32 {
  if (k >= p.K) { return 0.0; }
  if (j == 0u) { return w0[wr + k]; }
  if (j == 1u) { return w1[wr + k]; }
  return w2[wr + k];
}

// The lane's terms of row xr for k0, k0 + 16, k0 + 32, k0 + 48.
fn x_quad(xr: u32, k0: u32) -> vec4f {
  return vec4f(x_at(xr, k0), x_at(xr, k0 + TEAM), x_at(xr, k0 + 2u * TEAM), x_at(xr, k0 + 3u * TEAM));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % TEAM;
  let n = wg.y * (256u / TEAM) + li / TEAM;
  let m0 = wg.x * MR;
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
  let wr = (o + r) * p.K;
  // Rows past M read row M − 1 and store nothing.
  let x0 = min(m0 + 0u, p.M - 1u) * p.K;
  let x1 = min(m0 + 1u, p.M - 1u) * p.K;
  let x2 = min(m0 + 2u, p.M - 1u) * p.K;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  if (j < 3u) {
    for (var k0 = lane; k0 < p.K; k0 += 4u * TEAM) {
      let w = vec4f(w_at(j, wr, k0), w_at(j, wr, k0 + TEAM), w_at(j, wr, k0 + 2u * TEAM),
                    w_at(j, wr, k0 + 3u * TEAM));
      acc0 += x_quad(x0, k0) * w;
      if (MR > 1u) { acc1 += x_quad(x1, k0) * w; }
      if (MR > 2u) { acc2 += x_quad(x2, k0) * w; }
    }
  }
  team_sums[li] = acc0.x + acc0.y + acc0.z + acc0.w;
  if (MR > 1u) { team_sums[1u * 256u + li] = acc1.x + acc1.y + acc1.z + acc1.w; }
  if (MR > 2u) { team_sums[2u * 256u + li] = acc2.x + acc2.y + acc2.z + acc2.w; }
  workgroupBarrier();
  // Lane q of the team sums row m0 + q over the team's lanes, in lane order.
  let m = m0 + lane;
  if (lane < MR && m < p.M && j < 3u) {
    let t0 = lane * 256u + li - lane;
    var s = team_sums[t0];
    for (var t = 1u; t < TEAM; t++) { s += team_sums[t0 + t]; }
    if (j == 0u) {
      y0[m * p.n0 + r] = s;
    } else if (j == 1u) {
      y1[m * p.n1 + r] = s;
    } else {
      y2[m * p.n2 + r] = s;
    }
  }
}
