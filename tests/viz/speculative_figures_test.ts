import assert from "node:assert/strict";
import { expectedSpeedup, roundsFigure } from "../../lib/viz/speculative_figures.ts";

Deno.test("roundsFigure: every round's bar is K + 1 tokens: accepted, rejected, unchecked, the target's token", () => {
  const rounds = [
    { drafts: [5, 6, 7], accepted: 3, token: 8 },
    { drafts: [1, 2, 3], accepted: 1, token: 9 },
    { drafts: [4, 4, 4], accepted: 0, token: 2 },
  ];
  const fig = roundsFigure(rounds, 3, { label: (t) => `t${t}` });
  const ys = fig.data.map((d) => d.y as number[]);
  assert.deepEqual(ys, [[3, 1, 0], [0, 1, 1], [0, 1, 2], [1, 1, 1]]);
  for (let r = 0; r < 3; r++) assert.equal(ys.reduce((s, y) => s + y[r], 0), 4);
  assert.equal((fig.data[1].text as string[])[1], '"t2"');
  assert.equal((fig.data[3].text as string[])[0], 'bonus "t8"');
});

Deno.test("expectedSpeedup: Leviathan et al.'s formula at its limits", () => {
  // α = 0: one token per round that costs K draft steps plus one verification.
  assert.equal(expectedSpeedup(0, 3, 0.1), 1 / 1.3);
  // α = 1: K + 1 tokens per round.
  assert.equal(expectedSpeedup(1, 3, 0), 4);
  // α = 0.5, K = 1, free draft: (1 − 0.25) / 0.5 = 1.5.
  assert.ok(Math.abs(expectedSpeedup(0.5, 1, 0) - 1.5) < 1e-12);
});
