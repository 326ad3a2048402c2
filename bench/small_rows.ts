/**
 * Products x·Wᵀ with few rows (9 ≤ M ≤ 128), as decoding a batch of sequences at once makes them: the
 * time of `linear`'s choice for each M (tiled `matmul.wgsl:main` above MATVEC_MAX_ROWS rows) against the
 * team matrix-vector kernel run on blocks of MATVEC_MAX_ROWS rows, for the bundled teacher's shapes
 * (K = 256; N = 256, 688, 4096). Both are checked to agree. JSON on stdout.
 *
 *   deno run -A bench/small_rows.ts [--quick]
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { linear, matmulStrided, MATVEC_MAX_ROWS } from "../lib/tensor/matmul.ts";
import { readTensors, Tensor } from "../lib/tensor/tensor.ts";
import { Rng } from "../lib/random.ts";
import { timeSustained, TIMING_FLAGS, timingOptions } from "./timing.ts";

const flags = parseFlags("small_rows", Deno.args, { ...TIMING_FLAGS });
const ctx = await initGpu();
const o = timingOptions(flags);
const rng = new Rng(1);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.uniformRange(-1, 1));
const K = 256;
const rows: Record<string, unknown>[] = [];
for (const N of [256, 688, 4096]) {
  using w = Tensor.from(rand(N * K), [N, K]);
  const weight = { parts: [w], shape: [N, K] as [number, number] };
  for (const M of [8, 9, 12, 16, 24, 32, 48, 64, 96, 128]) {
    using x = Tensor.from(rand(M * K), [M, K]);
    const blocked = () => {
      const y = Tensor.empty([M, N]);
      for (let m0 = 0; m0 < M; m0 += MATVEC_MAX_ROWS) {
        matmulStrided({
          M: Math.min(MATVEC_MAX_ROWS, M - m0),
          N,
          K,
          a: { t: x, offset: m0 * K, rowStride: K, colStride: 1 },
          b: { t: w, rowStride: 1, colStride: K },
          c: { t: y, offset: m0 * N, rowStride: N, colStride: 1 },
        });
      }
      return y;
    };
    const y0 = linear(x, weight);
    const y1 = blocked();
    const [a, b] = (await readTensors([y0, y1])) as Float32Array[];
    y0.dispose();
    y1.dispose();
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
    const tl = await timeSustained(() => linear(x, weight).dispose(), o);
    const tb = await timeSustained(() => blocked().dispose(), o);
    const r = { M, N, K, linear_ms: tl.ms, blocked_matvec_ms: tb.ms, max_abs_diff: d };
    console.error(JSON.stringify(r));
    rows.push(r);
  }
}
console.log(JSON.stringify({ date: new Date().toISOString(), adapter: adapterName(ctx), rows }, null, 2));
