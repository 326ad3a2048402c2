// split_matvec.wgsl — up to three row blocks of matrix products in one dispatch, for one-token decoding
// (a step's time is its number of dispatches): the attention's q, k, v projections, or a Mamba-2
// in_proj's z, xBC and dt blocks written straight into their own tensors (no column slices after it).
//
//   y_j[m, n] = Σ_k x[m, k] · W_j[o_j + n, k]      j < 3, n < n_j, m < M
//
// Ground truth: matmul.wgsl `matvec_team` on each block (the same sums in the same order, so the values
// are bit-identical); the float64 twin is a plain product (tests). Shapes: x (M, K), W_j (rows, K) in the
// checkpoint's (out, in) layout (the same buffer may be bound for several j), y_j (M, n_j); K a multiple
// of 4 (x and the weights are read as vec4). A team of T invocations (override, from K alone) owns one
// output column for up to MR ≤ 8 rows (grid: x over ⌈M / MR⌉, y over (n_0 + n_1 + n_2) / (256 / T)
// workgroups).

struct Params { M: u32, K: u32, n0: u32, n1: u32, n2: u32, o0: u32, o1: u32, o2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> w0: array<vec4f>;
@group(0) @binding(3) var<storage, read> w1: array<vec4f>;
@group(0) @binding(4) var<storage, read> w2: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> y0: array<f32>;
@group(0) @binding(6) var<storage, read_write> y1: array<f32>;
@group(0) @binding(7) var<storage, read_write> y2: array<f32>;
// W_F16: the weights are f16 storage tensors at bindings 8–10 (bindings 2–4 then dummies), read four
// halves per load and widened exactly (matmul.wgsl W_F16): the f32 sums of the rounded weights.
override W_F16: bool = false;
@group(0) @binding(8) var<storage, read> w0h: array<vec2<u32>>;
@group(0) @binding(9) var<storage, read> w1h: array<vec2<u32>>;
@group(0) @binding(10) var<storage, read> w2h: array<vec2<u32>>;

// matvec_team's scheme: lane j adds x[m, 4q … 4q+3] ⊙ w[4q … 4q+3] for q = j, j + T, … into the vec4
// accumulator of row m (_common.wgsl team_fma; four weight loads in flight, two from three rows on,
// each serving all MR rows),
// then a tree over the team's lanes adds the lanes' sums (acc.x + acc.y) + ….
override T: u32 = 16u;
override MR: u32 = 1u;
// Four weight loads in flight per lane when a workgroup has at most two rows, two otherwise (the same
// sums): with more rows the x values of four hold too many registers (H200, Llama-3.2-1B shapes: one
// token 4% faster with four, seven rows 14% slower).
override QUADS: bool = MR <= 2u;
var<workgroup> team_sums: array<f32, 2048>;  // (row r < MR, invocation)

fn x_at(xr: u32, q: u32, k4: u32) -> vec4f {
  if (q >= k4) { return vec4f(0.0); }
  return x[xr + q];
}

fn w_at(j: u32, wr: u32, q: u32, k4: u32) -> vec4f {
  if (q >= k4) { return vec4f(0.0); }
  if (W_F16) {
    if (j == 0u) { return half4(w0h[wr + q]); }
    if (j == 1u) { return half4(w1h[wr + q]); }
    return half4(w2h[wr + q]);
  }
  if (j == 0u) { return w0[wr + q]; }
  if (j == 1u) { return w1[wr + q]; }
  return w2[wr + q];
}

// A lane's vec4 q and q + T of a row of x or of W_j.
fn x_pair(xr: u32, q: u32, k4: u32) -> Pair {
  return Pair(x_at(xr, q, k4), x_at(xr, q + T, k4));
}

fn w_pair(j: u32, wr: u32, q: u32, k4: u32) -> Pair {
  return Pair(w_at(j, wr, q, k4), w_at(j, wr, q + T, k4));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % T;
  let n = wg.y * (256u / T) + li / T;
  let m0 = wg.x * MR;
  let k4 = p.K / 4u;
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
  let wr = (o + r) * k4;
  // Rows past M read row M − 1 and store nothing.
  let x0 = min(m0 + 0u, p.M - 1u) * k4;
  let x1 = min(m0 + 1u, p.M - 1u) * k4;
  let x2 = min(m0 + 2u, p.M - 1u) * k4;
  let x3 = min(m0 + 3u, p.M - 1u) * k4;
  let x4 = min(m0 + 4u, p.M - 1u) * k4;
  let x5 = min(m0 + 5u, p.M - 1u) * k4;
  let x6 = min(m0 + 6u, p.M - 1u) * k4;
  let x7 = min(m0 + 7u, p.M - 1u) * k4;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  var acc4 = vec4f(0.0);
  var acc5 = vec4f(0.0);
  var acc6 = vec4f(0.0);
  var acc7 = vec4f(0.0);
  if (j < 3u) {
    if (QUADS) {
      for (var q = lane; q < k4; q += 4u * T) {
        let wa = w_pair(j, wr, q, k4);
        let wb = w_pair(j, wr, q + 2u * T, k4);
        acc0 = team_fma(team_fma(acc0, x_pair(x0, q, k4), wa), x_pair(x0, q + 2u * T, k4), wb);
        if (MR > 1u) {
          acc1 = team_fma(team_fma(acc1, x_pair(x1, q, k4), wa), x_pair(x1, q + 2u * T, k4), wb);
        }
      }
    } else {
      for (var q = lane; q < k4; q += 2u * T) {
        let wa = w_pair(j, wr, q, k4);
        acc0 = team_fma(acc0, x_pair(x0, q, k4), wa);
        if (MR > 1u) { acc1 = team_fma(acc1, x_pair(x1, q, k4), wa); }
        if (MR > 2u) { acc2 = team_fma(acc2, x_pair(x2, q, k4), wa); }
        if (MR > 3u) { acc3 = team_fma(acc3, x_pair(x3, q, k4), wa); }
        if (MR > 4u) { acc4 = team_fma(acc4, x_pair(x4, q, k4), wa); }
        if (MR > 5u) { acc5 = team_fma(acc5, x_pair(x5, q, k4), wa); }
        if (MR > 6u) { acc6 = team_fma(acc6, x_pair(x6, q, k4), wa); }
        if (MR > 7u) { acc7 = team_fma(acc7, x_pair(x7, q, k4), wa); }
      }
    }
  }
  team_sums[li] = lane_sum(acc0);
  if (MR > 1u) { team_sums[1u * 256u + li] = lane_sum(acc1); }
  if (MR > 2u) { team_sums[2u * 256u + li] = lane_sum(acc2); }
  if (MR > 3u) { team_sums[3u * 256u + li] = lane_sum(acc3); }
  if (MR > 4u) { team_sums[4u * 256u + li] = lane_sum(acc4); }
  if (MR > 5u) { team_sums[5u * 256u + li] = lane_sum(acc5); }
  if (MR > 6u) { team_sums[6u * 256u + li] = lane_sum(acc6); }
  if (MR > 7u) { team_sums[7u * 256u + li] = lane_sum(acc7); }
  // The tree over the team's lanes (matmul.wgsl team_reduce).
  workgroupBarrier();
  for (var s = T / 2u; s > 0u; s = s / 2u) {
    if (lane < s) {
      for (var q = 0u; q < MR; q++) { team_sums[q * 256u + li] += team_sums[q * 256u + li + s]; }
    }
    workgroupBarrier();
  }
  // Lane q of the team stores row m0 + q.
  let m = m0 + lane;
  if (lane < MR && m < p.M && j < 3u) {
    let v = team_sums[lane * 256u + li - lane];
    if (j == 0u) {
      y0[m * p.n0 + r] = v;
    } else if (j == 1u) {
      y1[m * p.n1 + r] = v;
    } else {
      y2[m * p.n2 + r] = v;
    }
  }
}
