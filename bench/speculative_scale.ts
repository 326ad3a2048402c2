/**
 * `deno run -A bench/speculative_scale.ts [--json FILE] [--small] [--team-rows 2,3]`: speculative
 * decoding's cost model at Llama-3.2-1B's shapes (issue #7), where a decoding step moves gigabytes of
 * weights instead of being a chain of tiny dispatches. The target is the 50% hybrid of a random-weight
 * 1B-shaped Llama (attention at the odd layers, Mamba-2 at the even ones, bench/steps.ts
 * `writeRandomHybridPair`); the draft has the shapes of its two-layer early exit. Random weights accept
 * nothing, so no speedup is measured here: the one-token and (K + 1)-token forwards of both are timed
 * replayed (bench/speculative_profile.ts, kernel by kernel for the target's step), and the speedup is
 * projected for acceptance rates α (`projectedSpeedup`; bench/speculative.ts checks the same projection
 * against measured rows at the bundled model's size). `--small`: the same at the bundled teacher's
 * shapes (checks the harness). `--team-rows 2,3`: the forwards again with up to that many rows per
 * workgroup of the decoding products (lib/tensor/matmul.ts `useTeamRows`), in the same process.
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { trimPool } from "../lib/gpu/buffers.ts";
import { LlamaModel } from "../lib/models/llama.ts";
import { teamRowsSetting, useTeamRows } from "../lib/tensor/matmul.ts";
import { profileSteps, projectedSpeedup } from "./speculative_profile.ts";
import { kernelBreakdownTiming } from "./timing.ts";
import { LLAMA_3_2_1B_CONFIG, writeRandomHybridPair } from "./steps.ts";

const flags = parseFlags("speculative_scale", Deno.args, {
  json: "string",
  small: "boolean",
  "team-rows": "string",
});
// --small: the bundled teacher's shapes instead (a check of the harness on the software adapter).
const config = flags.small
  ? {
    ...LLAMA_3_2_1B_CONFIG,
    hidden_size: 256,
    intermediate_size: 688,
    num_hidden_layers: 6,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    head_dim: 32,
    vocab_size: 4096,
  }
  : LLAMA_3_2_1B_CONFIG;
const ctx = await initGpu();
const shm = await Deno.stat("/dev/shm").then((s) => s.isDirectory, () => false);
const root = await Deno.makeTempDir({ prefix: "spec-1b-", dir: shm ? "/dev/shm" : undefined });
const t0 = performance.now();
const log = (l: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(1)} s] ${l}`);
const odd = Array.from({ length: config.num_hidden_layers / 2 }, (_, i) => 2 * i + 1);
const { studentDir } = await writeRandomHybridPair(`${root}/target`, config, odd);
const { teacherDir: draftDir } = await writeRandomHybridPair(
  `${root}/draft`,
  { ...config, num_hidden_layers: 2 },
  [0, 1],
);
using target = await LlamaModel.load(studentDir);
using draft = await LlamaModel.load(draftDir);
await Deno.remove(root, { recursive: true });
log("models loaded");
const Ks = [1, 2, 3, 4, 5, 6];
const pt = await profileSteps(target, Ks, 50, kernelBreakdownTiming);
log(`target: one token ${pt.replay_ms_1.toFixed(3)} ms, verify ${JSON.stringify(pt.replay_ms_verify)}`);
const pd = await profileSteps(draft, Ks, 100);
log(`draft: one token ${pd.replay_ms_1.toFixed(3)} ms, verify ${JSON.stringify(pd.replay_ms_verify)}`);
const alphas = [0.5, 0.6, 0.7, 0.8, 0.9];
const projected = alphas.map((alpha) => ({
  alpha,
  speedup_by_K: Object.fromEntries(Ks.map((K) => [K, projectedSpeedup(pt, pd, K, { alpha })])),
}));
for (const p of projected) {
  log(`α ${p.alpha}: ${Ks.map((K) => `K=${K} ×${p.speedup_by_K[K].toFixed(2)}`).join(", ")}`);
}
// --team-rows 2,3: the one-token and verification forwards again with at most that many rows per
// workgroup of the team products (lib/tensor/matmul.ts useTeamRows; the profile above: the setting in
// force, `team_rows` in the JSON).
const teamRows = teamRowsSetting();
const byTeamRows: Record<string, { target: Record<string, unknown>; draft: Record<string, unknown> }> = {};
for (const most of (flags["team-rows"] as string | undefined)?.split(",").map(Number) ?? []) {
  const prev = useTeamRows(most);
  const t = await profileSteps(target, Ks, 50);
  const d = await profileSteps(draft, Ks, 100);
  useTeamRows(prev);
  byTeamRows[most] = {
    target: { replay_ms_1: t.replay_ms_1, replay_ms_verify: t.replay_ms_verify },
    draft: { replay_ms_1: d.replay_ms_1, replay_ms_verify: d.replay_ms_verify },
  };
  log(
    `team rows ≤ ${most}: target one token ${t.replay_ms_1.toFixed(3)} ms, verify ${
      JSON.stringify(t.replay_ms_verify)
    }`,
  );
}
trimPool();
const out = {
  date: new Date().toISOString(),
  adapter: adapterName(ctx),
  target: (flags.small ? "brown-llama-6m-shape" : "llama-3.2-1b-shape") +
    " 50% hybrid (attention at odd layers), random weights",
  draft: (flags.small ? "brown-llama-6m-shape" : "llama-3.2-1b-shape") +
    ", 2 layers (early-exit shape), random weights",
  target_tokens_per_s_replayed: 1000 / pt.replay_ms_1,
  team_rows: teamRows,
  profiles: { target: pt, draft: pd },
  projected,
  by_team_rows: byTeamRows,
};
const json = JSON.stringify(out, null, 2) + "\n";
if (typeof flags.json === "string") await Deno.writeTextFile(flags.json, json);
else console.log(json);
