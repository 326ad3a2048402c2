// mamba1_glue.wgsl — the layout steps of a MambaInLlama Mamba-1 layer around its conv and selective
// scan (`mamba/hybrid_mamba_layer.py` forward, method.md §3.3).
//
//   gather:           dst(b, t, d) = src(b, t, m(d)),         m(d) = ⌊d / (w·r)⌋·w + d mod w
//   gather_backward:  dsrc(b, t, c) = Σ_{i<r} ddst(b, t, (⌊c / w⌋·r + i)·w + c mod w)
//   neg_exp:          A = −exp(A_log)                              (A_log (D, N), S4D-real)
//
// m repeats blocks of w channels r times each (repeat_kv on blocks of d_state: block b of x or B feeds
// blocks b·r … b·r + r − 1); r = 1 is a plain copy. Both sides are addressed by strides, so the same
// entry turns channels-last (B, L, C) projections into the scan's channels-first (B, D, L) and back:
//   src(b, t, c) at b·sb + t·st + c·sc,   dst(b, t, d) at b·db + t·dt + d·dc.
// gather_backward writes dsrc (B, L, ncols) channels-last, each element once (no atomics).
// One invocation owns one destination element.

struct Params {
  n: u32, row: u32,
  L: u32, D: u32, w: u32, r: u32,
  sb: u32, st: u32, sc: u32,
  db: u32, dt: u32, dc: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn idx(g: vec3u) -> u32 { return g.y * p.row + g.x; }

// n = B·L·D; element i = ((b·L) + t)·D + d.
@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  if (i >= p.n) { return; }
  let d = i % p.D;
  let t = (i / p.D) % p.L;
  let b = i / (p.D * p.L);
  let c = (d / (p.w * p.r)) * p.w + d % p.w;
  dst[b * p.db + t * p.dt + d * p.dc] = src[b * p.sb + t * p.st + c * p.sc];
}

// n = B·L·C with C = D / r source channels; src is ddst (strides db, dt, dc), dst is dsrc (B, L, C).
@compute @workgroup_size(256)
fn gather_backward(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  if (i >= p.n) { return; }
  let C = p.D / p.r;
  let c = i % C;
  let t = (i / C) % p.L;
  let b = i / (C * p.L);
  var s = 0.0;
  for (var k = 0u; k < p.r; k++) {
    let d = ((c / p.w) * p.r + k) * p.w + c % p.w;
    s += src[b * p.db + t * p.dt + d * p.dc];
  }
  dst[i] = s;
}

// n = D·N.
@compute @workgroup_size(256)
fn neg_exp(@builtin(global_invocation_id) g: vec3u) {
  let i = idx(g);
  if (i >= p.n) { return; }
  dst[i] = -exp(src[i]);
}
