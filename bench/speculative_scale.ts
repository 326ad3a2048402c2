/**
 * `deno run -A bench/speculative_scale.ts [--json FILE] [--small] [--team-rows 2,3] [--lane-values 16,64]
 * [--rounds-per-read 8,32] [--half-draft-head] [--half-draft-weights]`:
 * speculative decoding's cost model at Llama-3.2-1B's shapes (issue #7), where a decoding step moves
 * gigabytes of weights instead of being a chain of tiny dispatches. The target is the 50% hybrid of a
 * random-weight 1B-shaped Llama (attention at the odd layers, Mamba-2 at the even ones, bench/steps.ts
 * `writeRandomHybridPair`); the draft has the shapes of its two-layer early exit. Random weights accept
 * nothing, so no speedup is measured here:
 *   - the one-token and (K + 1)-token forwards of both are timed replayed (bench/speculative_profile.ts,
 *     kernel by kernel for the target's step), and the speedup is projected for acceptance rates α
 *     (`projectedSpeedup`; bench/speculative.ts checks the same projection against measured rows at the
 *     bundled model's size);
 *   - whole rounds of the GPU-resident loop and plain greedy decoding are timed (`measured_rounds`): a
 *     round's work does not depend on what is accepted, so only the acceptance is modelled there.
 * `--small`: the same at the bundled teacher's shapes (checks the harness). `--team-rows 2,3`: the
 * forwards again with up to that many rows per workgroup of the decoding products (lib/tensor/matmul.ts
 * `useTeamRows`), in the same process; `--lane-values 16,64`: again with teams sized for that many
 * values of K per lane (`setTeamLaneValues`); `--rounds-per-read 8,32`: whole rounds again with the
 * records read back every R rounds instead of 16; `--half-draft-head`: then the draft's LM head in f16
 * (`LlamaModel.useHalfLmHead`), its forwards and whole rounds again; `--half-draft-weights`: then all of
 * the draft's linear weights in f16 (`useHalfWeights`), again.
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { trimPool } from "../lib/gpu/buffers.ts";
import { generate } from "../lib/decode/generate.ts";
import { speculativeGenerate } from "../lib/decode/speculative.ts";
import type { TextTokenizer } from "../lib/io/tokenizer.ts";
import { LlamaModel } from "../lib/models/llama.ts";
import {
  setTeamLaneValues,
  teamLaneValuesSetting,
  teamRowsSetting,
  useTeamRows,
} from "../lib/tensor/matmul.ts";
import { profileSteps, projectedSpeedup } from "./speculative_profile.ts";
import { kernelBreakdownTiming, programBreakdown } from "./timing.ts";
import { LLAMA_3_2_1B_CONFIG, writeRandomHybridPair } from "./steps.ts";

const flags = parseFlags("speculative_scale", Deno.args, {
  json: "string",
  small: "boolean",
  "team-rows": "string",
  "lane-values": "string",
  "rounds-per-read": "string",
  "half-draft-head": "boolean",
  "half-draft-weights": "boolean",
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
// Whole rounds, measured: plain greedy decoding and the GPU-resident speculative loop (lib/decode/
// speculative.ts) on these random models. A round does the same work whatever the target accepts (the
// Mamba layers replay their K + 1 steps with masking, the caches truncate in place), so its time, with
// the sampling, the rule and the commits the projection above leaves out, is measured even though random
// weights accept almost nothing; only the acceptance is modelled: (1 + accepted(α)) tokens a round
// against one a plain step.
const stub: TextTokenizer = {
  encode: () => [1, 2, 3, 4],
  decode: (ids) => Array.from(ids).join(" "),
  bosTokenId: null,
  eosTokenId: null,
  vocabSize: config.vocab_size,
  applyChatTemplate: () => {
    throw new Error("no chat template");
  },
};
const greedy = { temperature: 0, maxTokens: flags.small ? 16 : 128, stopAtEos: false };
await generate(target, stub, "", { ...greedy, maxTokens: 16 });
await speculativeGenerate(target, draft, stub, "", { ...greedy, maxTokens: 16, lookahead: 2 });
const fastest = async <T extends { tokensPerSecond: number }>(fn: () => Promise<T>): Promise<T> => {
  let top: T | null = null;
  for (let i = 0; i < (flags.small ? 1 : 3); i++) {
    const r = await fn();
    if (!top || r.tokensPerSecond > top.tokensPerSecond) top = r;
  }
  return top!;
};
const plainMs = 1000 / (await fastest(() => generate(target, stub, "", greedy))).tokensPerSecond;
const roundMs: Record<number, number> = {};
const roundAccepted: Record<number, number> = {};
for (const K of Ks) {
  const r = await fastest(() => speculativeGenerate(target, draft, stub, "", { ...greedy, lookahead: K }));
  roundMs[K] = r.msPerRound;
  roundAccepted[K] = r.meanAccepted;
}
log(`measured: plain ${plainMs.toFixed(3)} ms a token; rounds ${JSON.stringify(roundMs)} ms`);
const list = (flag: string) => (flags[flag] as string | undefined)?.split(",").map(Number) ?? [];
// --rounds-per-read 8,32: whole rounds again with the records read back every R rounds (default 16).
const byRoundsPerRead: Record<number, Record<number, number>> = {};
for (const R of list("rounds-per-read")) {
  byRoundsPerRead[R] = {};
  for (const K of Ks) {
    const r = await fastest(() =>
      speculativeGenerate(target, draft, stub, "", { ...greedy, lookahead: K, roundsPerRead: R })
    );
    byRoundsPerRead[R][K] = r.msPerRound;
  }
  log(`measured, reading every ${R} rounds: ${JSON.stringify(byRoundsPerRead[R])} ms a round`);
}
// Where a round's time goes (K = 3): its captured commands timed one by one.
let roundKernels: Awaited<ReturnType<typeof programBreakdown>> | null = null;
await speculativeGenerate(target, draft, stub, "", {
  ...greedy,
  maxTokens: 16,
  lookahead: 3,
  profileRound: async (round) => {
    roundKernels = await programBreakdown(round, kernelBreakdownTiming);
  },
});
if (roundKernels) {
  const rk = roundKernels as Awaited<ReturnType<typeof programBreakdown>>;
  log(
    `round K=3, kernel by kernel: ${rk.total_us.toFixed(0)} µs: ` +
      rk.kernels.map((k) => `${k.kernel}×${k.count} ${k.us.toFixed(0)}`).join(", "),
  );
}
// (1 + α + … + α^K) tokens a round at acceptance α, against one a plain step.
const speedupsFromRounds = (ms: Record<number, number>, label: string) =>
  alphas.map((alpha) => {
    const speedup_by_K = Object.fromEntries(
      Ks.map((K) => [K, (1 + alpha * (1 - alpha ** K) / (1 - alpha)) * plainMs / ms[K]]),
    );
    log(`α ${alpha}, ${label}: ${Ks.map((K) => `K=${K} ×${speedup_by_K[K].toFixed(2)}`).join(", ")}`);
    return { alpha, speedup_by_K };
  });
const fromRounds = speedupsFromRounds(roundMs, "measured rounds");
// --team-rows 2,3 / --lane-values 16,64: the one-token and verification forwards again with at most
// that many rows per workgroup of the team products, or with teams sized for that many values of K per
// lane (lib/tensor/matmul.ts useTeamRows, setTeamLaneValues; the profile above: the settings in force,
// `team_rows` and `team_lane_values` in the JSON).
const teamRows = teamRowsSetting();
const laneValues = teamLaneValuesSetting();
type Forwards = { target: Record<string, unknown>; draft: Record<string, unknown> };
async function forwardsWith(label: string, apply: () => () => void): Promise<Forwards> {
  const restore = apply();
  try {
    const t = await profileSteps(target, Ks, 50);
    const d = await profileSteps(draft, Ks, 100);
    log(
      `${label}: target one token ${t.replay_ms_1.toFixed(3)} ms, verify ${
        JSON.stringify(t.replay_ms_verify)
      }`,
    );
    return {
      target: { replay_ms_1: t.replay_ms_1, replay_ms_verify: t.replay_ms_verify },
      draft: { replay_ms_1: d.replay_ms_1, replay_ms_verify: d.replay_ms_verify },
    };
  } finally {
    restore();
  }
}
const byTeamRows: Record<string, Forwards> = {};
for (const most of list("team-rows")) {
  byTeamRows[most] = await forwardsWith(`team rows ≤ ${most}`, () => {
    const prev = useTeamRows(most);
    return () => useTeamRows(prev);
  });
}
const byLaneValues: Record<string, Forwards> = {};
for (const values of list("lane-values")) {
  byLaneValues[values] = await forwardsWith(`≥ ${values} values per lane`, () => {
    const prev = setTeamLaneValues(values);
    return () => setTeamLaneValues(prev);
  });
}
trimPool();
// --half-draft-head: the draft's LM head stored in f16 (LlamaModel.useHalfLmHead; a 128K-vocabulary head
// is most of a two-layer draft's bytes), then its forwards and whole rounds again; --half-draft-weights:
// then every linear weight of the draft in f16 too (useHalfWeights). The target and plain decoding are
// unchanged.
async function halfDraft(label: string, apply: () => void): Promise<Record<string, unknown>> {
  apply();
  const d = await profileSteps(draft, Ks, 100);
  log(
    `${label} draft: one token ${d.replay_ms_1.toFixed(3)} ms, verify ${JSON.stringify(d.replay_ms_verify)}`,
  );
  const ms: Record<number, number> = {};
  for (const K of Ks) {
    ms[K] = (await fastest(() => speculativeGenerate(target, draft, stub, "", { ...greedy, lookahead: K })))
      .msPerRound;
  }
  log(`${label} draft, measured rounds: ${JSON.stringify(ms)} ms`);
  return {
    draft: { replay_ms_1: d.replay_ms_1, replay_ms_verify: d.replay_ms_verify },
    ms_per_round: ms,
    projected_from_rounds: speedupsFromRounds(ms, `${label} draft, measured rounds`),
  };
}
const halfDraftHead = flags["half-draft-head"]
  ? await halfDraft("half-head", () => draft.useHalfLmHead())
  : null;
const halfDraftWeights = flags["half-draft-weights"]
  ? await halfDraft("half-weights", () => draft.useHalfWeights())
  : null;
const out = {
  date: new Date().toISOString(),
  adapter: adapterName(ctx),
  target: (flags.small ? "brown-llama-6m-shape" : "llama-3.2-1b-shape") +
    " 50% hybrid (attention at odd layers), random weights",
  draft: (flags.small ? "brown-llama-6m-shape" : "llama-3.2-1b-shape") +
    ", 2 layers (early-exit shape), random weights",
  target_tokens_per_s_replayed: 1000 / pt.replay_ms_1,
  team_rows: teamRows,
  team_lane_values: laneValues,
  profiles: { target: pt, draft: pd },
  projected,
  measured_rounds: {
    plain_ms_per_token: plainMs,
    ms_per_round: roundMs,
    mean_accepted_random_weights: roundAccepted,
    projected_from_rounds: fromRounds,
    round_kernels_K3: roundKernels,
    ms_per_round_by_rounds_per_read: byRoundsPerRead,
  },
  by_team_rows: byTeamRows,
  by_lane_values: byLaneValues,
  half_draft_head: halfDraftHead,
  half_draft_weights: halfDraftWeights,
};
const json = JSON.stringify(out, null, 2) + "\n";
if (typeof flags.json === "string") await Deno.writeTextFile(flags.json, json);
else console.log(json);
