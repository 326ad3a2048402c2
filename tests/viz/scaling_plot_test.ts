import assert from "node:assert/strict";
import { scalingSvg } from "../../bench/scaling_plot.ts";
import type { ScalingResult } from "../../bench/scaling.ts";

const timing = (ms: number) => ({
  ms,
  ms_min: ms * 0.9,
  ms_max: ms * 1.5,
  ms_single: ms,
  calls_per_sample: 1,
  samples: 3,
  dispatches_per_call: 1,
  warm_gpu_ms: 100,
  warm_calls: 1,
});

Deno.test("scaling_plot: one line per layer kind and phase, whiskers, and the points that did not run listed", () => {
  const results: ScalingResult[] = [];
  for (const L of [256, 1024]) {
    for (const kind of ["attention", "mamba2", "mamba1"] as const) {
      for (const phase of ["prefill_fwd", "prefill_fwdbwd", "decode"] as const) {
        const name = `${kind}_${phase}_${L}`;
        if (kind === "attention" && phase === "prefill_fwdbwd" && L === 1024) {
          results.push({ name, kind, phase, L, error: "out of memory <test>" });
          continue;
        }
        const ms = phase === "decode" ? 0.5 : L / 1000;
        results.push({
          name,
          kind,
          phase,
          L,
          ...timing(ms),
          us_per_token: ms * 1e3 / (phase === "decode" ? 1 : L),
        });
      }
    }
  }
  const svg = scalingSvg({
    adapter: "test adapter",
    date: "2026-12-01T00:00:00Z",
    results,
    source: { note: "a note" },
  });
  // 3 kinds × (2 prefill phases + decode) lines, the attention fwd+bwd line with one point still drawn
  assert.equal(svg.match(/<polyline/g)?.length, 9);
  assert.equal(svg.match(/stroke-dasharray="6,4"/g)?.length, 3, "forward + backward lines are dashed");
  assert.equal(svg.match(/<circle/g)?.length, 17, "one marker per measured point");
  const whiskers = svg.match(/<line [^>]*stroke="#(c44e52|4c72b0|55a868)"\/>/g) ?? [];
  assert.equal(whiskers.length, 17, "a fastest-to-slowest bar per measured point");
  assert.match(svg, /not measured: attention prefill_fwdbwd L=1024: out of memory &#60;test&#62;/);
  assert.match(svg, /a note/);
  assert.match(svg, /test adapter, 2026-12-01/);
  for (const L of ["256", "1024"]) assert.match(svg, new RegExp(`>${L}</text>`));
});
