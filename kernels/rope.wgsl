// rope.wgsl — rotary position embedding, Hugging Face "rotate_half" convention.
//
//   for i < P/2, with c = cos[pos, i], s = sin[pos, i] and pos = pos0 + l:
//     y[i]       = x[i] · c − x[i + P/2] · s
//     y[i + P/2] = x[i + P/2] · c + x[i] · s
//
// Ground truth: transformers `apply_rotary_pos_emb` with `rotate_half` (cos/sin = cat(freqs, freqs)).
// The cos/sin table (maxPos, P/2) is computed on the host from f32 inverse frequencies (default or
// llama3 scaling), as transformers does, so no large-argument cos() runs on the GPU.
// Bindings: x (read, (B, L, H, P)), table (read, (maxPos, 2, P/2): cos row then sin row), y (read_write).
// One invocation owns one pair (b, l, h, i). sign = −1 rotates by −θ: the backward (Rᵀ = R(−θ)).

struct Params { n: u32, row: u32, L: u32, H: u32, P: u32, pos0: u32, sign: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let idx = g.y * p.row + g.x; // over (B, L, H, P/2)
  if (idx >= p.n) { return; }
  let half = p.P / 2u;
  let i = idx % half;
  let bl = idx / (half * p.H); // b · L + l
  let l = bl % p.L;
  let head = idx / half;       // (b, l, h) flattened
  let base = head * p.P;
  let pos = p.pos0 + l;
  let c = table[pos * p.P + i];
  let s = p.sign * table[pos * p.P + half + i];
  let x1 = x[base + i];
  let x2 = x[base + half + i];
  y[base + i] = x1 * c - x2 * s;
  y[base + half + i] = x2 * c + x1 * s;
}
