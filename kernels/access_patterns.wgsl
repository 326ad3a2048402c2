// access_patterns.wgsl — benchmark-only kernels: the memory floor of the selective scan's access
// patterns on rows of (B·D, L) tensors (bench/scan_patterns.ts; results in docs/results.md §8c).
//
// Every invocation owns Q = 128 steps (32 vec4) of one row, as an invocation of the three-pass scan's
// chunk_state / chunk_out owns one chunk of one channel, and does no more arithmetic than it needs to
// keep every load: acc ← acc + u·δ per vec4 of steps; the `_out` kernels also read z and write
// y = acc · z, the traffic of chunk_out (u, δ, z in, y out). Which invocation owns which (row, chunk):
//   rows_*    lanes over consecutive rows, the chunk from workgroup_id.y (as the shipped scan): one
//             warp-wide load touches 32 rows, L · 4 bytes apart;
//   chunks_*  lanes over the 16 chunks of 8 consecutive rows: loads 512 bytes apart;
//   flat_*    the same bytes read and written as consecutive vec4 across invocations (coalesced),
//             the reference floor;
//   rows_*_pf the rows_* order with the next 8 steps' loads issued before the current ones are used
//             (register prefetch).
// Bindings: u (1), δ (2), z (3): (rows, L) as vec4; y (4): (rows, L) as vec4; sink (5): one float per
// invocation (Σ of its acc), so that no load can be dropped. Params: rows, L / 4, groups along x.

struct P { rows: u32, nl4: u32, gx: u32, pad: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> u: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dl: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> z: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> sink: array<f32>;

const WG = 128u;
const QV = 32u;  // vec4 per invocation (Q = 128 steps)

fn chunks() -> u32 { return p.nl4 / QV; }

fn invocation(wg: vec3u, li: u32) -> u32 { return (wg.y * p.gx + wg.x) * WG + li; }

// (row, chunk) of an invocation. mode 0: lanes over consecutive rows, chunk = workgroup_id.y;
// mode 1: lanes over the chunks of consecutive rows (16 chunks × 8 rows per workgroup at L = 2048).
fn place(wg: vec3u, li: u32, mode: u32) -> vec2u {
  if (mode == 0u) { return vec2u(wg.x * WG + li, wg.y); }
  let g = invocation(wg, li);
  return vec2u(g / chunks(), g % chunks());
}

fn walk(wg: vec3u, li: u32, mode: u32, out: bool) {
  let rc = place(wg, li, mode);
  if (rc.x >= p.rows) { return; }
  let base = rc.x * p.nl4 + rc.y * QV;
  var acc = vec4(0.0);
  for (var k = 0u; k < QV; k += 2u) {
    let a0 = u[base + k];
    let a1 = u[base + k + 1u];
    let b0 = dl[base + k];
    let b1 = dl[base + k + 1u];
    acc += a0 * b0 + a1 * b1;
    if (out) {
      let c0 = z[base + k];
      let c1 = z[base + k + 1u];
      y[base + k] = acc * c0;
      y[base + k + 1u] = acc * c1;
    }
  }
  sink[invocation(wg, li)] = dot(acc, vec4(1.0));
}

fn walk_prefetched(wg: vec3u, li: u32, out: bool) {
  let rc = place(wg, li, 0u);
  if (rc.x >= p.rows) { return; }
  let base = rc.x * p.nl4 + rc.y * QV;
  var acc = vec4(0.0);
  var a0 = u[base];
  var a1 = u[base + 1u];
  var b0 = dl[base];
  var b1 = dl[base + 1u];
  var c0 = vec4(0.0);
  var c1 = vec4(0.0);
  if (out) {
    c0 = z[base];
    c1 = z[base + 1u];
  }
  for (var k = 0u; k < QV; k += 2u) {
    let kn = min(k + 2u, QV - 2u);
    let na0 = u[base + kn];
    let na1 = u[base + kn + 1u];
    let nb0 = dl[base + kn];
    let nb1 = dl[base + kn + 1u];
    var nc0 = vec4(0.0);
    var nc1 = vec4(0.0);
    if (out) {
      nc0 = z[base + kn];
      nc1 = z[base + kn + 1u];
    }
    acc += a0 * b0 + a1 * b1;
    if (out) {
      y[base + k] = acc * c0;
      y[base + k + 1u] = acc * c1;
    }
    a0 = na0;
    a1 = na1;
    b0 = nb0;
    b1 = nb1;
    c0 = nc0;
    c1 = nc1;
  }
  sink[invocation(wg, li)] = dot(acc, vec4(1.0));
}

// Coalesced: invocation g of n reads vec4 k·n + g for k < 32; a running acc, as the walks.
fn flat(wg: vec3u, li: u32, out: bool) {
  let g = invocation(wg, li);
  let n = p.rows * chunks();
  if (g >= n) { return; }
  var acc = vec4(0.0);
  for (var k = 0u; k < QV; k++) {
    let e = k * n + g;
    acc += u[e] * dl[e];
    if (out) { y[e] = acc * z[e]; }
  }
  sink[g] = dot(acc, vec4(1.0));
}

@compute @workgroup_size(WG)
fn rows_state(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) { walk(wg, li, 0u, false); }
@compute @workgroup_size(WG)
fn rows_out(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) { walk(wg, li, 0u, true); }
@compute @workgroup_size(WG)
fn rows_state_pf(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  walk_prefetched(wg, li, false);
}
@compute @workgroup_size(WG)
fn rows_out_pf(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  walk_prefetched(wg, li, true);
}
@compute @workgroup_size(WG)
fn chunks_state(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) { walk(wg, li, 1u, false); }
@compute @workgroup_size(WG)
fn chunks_out(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) { walk(wg, li, 1u, true); }
@compute @workgroup_size(WG)
fn flat_state(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) { flat(wg, li, false); }
@compute @workgroup_size(WG)
fn flat_out(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) { flat(wg, li, true); }
