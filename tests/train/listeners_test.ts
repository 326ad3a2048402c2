import assert from "node:assert/strict";
import { jsonlLogger, notebookChart } from "../../lib/train/listeners.ts";
import type { TrainEvent } from "../../lib/train/loop.ts";

const event = (step: number): TrainEvent => ({
  step,
  loss: 5 - step / 10,
  parts: { kl: 0.5 },
  lr: 1e-3,
  gradNorm: 0.7,
  tokens: step * 64,
  tokensPerSecond: 1000,
  gpuMemoryBytes: 1 << 20,
  skipped: false,
});

Deno.test("listeners: the JSONL log has one object per step with step, loss, tokens and loss parts", async () => {
  const dir = await Deno.makeTempDir();
  const log = jsonlLogger(`${dir}/metrics.jsonl`, { stage: "kd" });
  await log.log!([event(1), event(2)], 10);
  await log.log!([event(3)], 10);
  const lines = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.equal(lines.length, 3);
  assert.deepEqual(lines.map((l) => l.step), [1, 2, 3]);
  assert.equal(lines[2].loss, 4.7);
  assert.equal(lines[2].tokens, 192);
  assert.equal(lines[0].loss_kl, 0.5);
  assert.equal(lines[0].stage, "kd");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("listeners: the notebook chart updates one display in place with a Plotly bundle", async () => {
  const calls: { bundle: Record<string, unknown>; opts: { display_id?: string; update?: boolean } }[] = [];
  const chart = notebookChart("loss", (bundle, opts) => {
    calls.push({ bundle: bundle as Record<string, unknown>, opts });
    return Promise.resolve();
  });
  await chart.log!([event(1), event(2)], 10);
  await chart.log!([event(3)], 10);
  assert.equal(calls.length, 2);
  assert.equal(calls[0].opts.display_id, calls[1].opts.display_id);
  assert.equal(calls[0].opts.update, false);
  assert.equal(calls[1].opts.update, true);
  const fig = calls[1].bundle["application/vnd.plotly.v1+json"] as { data: { name: string; y: number[] }[] };
  assert.deepEqual(fig.data.map((t) => t.name), ["loss", "kl"]);
  assert.deepEqual(fig.data[0].y, [4.9, 4.8, 4.7]);
  assert.match(String(calls[1].bundle["text/html"]), /Plotly\.react/);
  assert.match(String(calls[1].bundle["text/plain"]), /loss 4\.7000/);
});
