/**
 * Decoding speed on the GPU (issue #7): tokens/s of a distilled 50% hybrid generating greedily alone
 * and with speculative decoding at K = 1..6, with two drafts: a Transformer (the teacher's first two
 * layers, early exit) and a pure-Mamba student distilled from the same teacher. Both students are
 * distilled in this run (end-to-end KD, `--tokens`), so nothing is carried to the GPU machine.
 * `bench/pytorch_generate.py` times transformers on the same weights in the same run.
 *
 *   deno run -A bench/speculative.ts OUT.json [--quick] [--tokens N] [--new N]
 *
 * (`--tokens 0` skips the distillation: the converted students as initialised, to check the harness.)
 *
 * Every speculative output is checked to equal the target's own greedy output token for token. The
 * rounds run GPU-resident (the default of `speculativeGenerate`); the original host loop (one readback
 * per round) is timed at K = 3 for comparison, and `bench/speculative_profile.ts` splits the time into
 * host recording and replayed GPU time per forward of each model.
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { generate } from "../lib/decode/generate.ts";
import { dispatchCount } from "../lib/gpu/commands.ts";
import { speculativeGenerate } from "../lib/decode/speculative.ts";
import { adapterName, initGpu } from "../lib/gpu/device.ts";
import { loadTokenizer } from "../lib/io/tokenizer.ts";
import { DEFAULT_MODEL_DIR } from "../lib/models/default_model.ts";
import { LlamaModel } from "../lib/models/llama.ts";
import { distilledStudent, earlyExit } from "./students.ts";
import { profileSteps, projectedSpeedup, type StepProfile } from "./speculative_profile.ts";
import { kernelBreakdownTiming } from "./timing.ts";
import { type DispatchCost, dispatchCosts } from "./dispatch_cost.ts";

const [outPath, ...rest] = Deno.args;
if (!outPath) throw new Error("usage: speculative.ts OUT.json [--quick] [--tokens N] [--new N]");
const f = parseFlags("speculative", rest, { tokens: "number", new: "number", quick: "boolean" });
// --quick (about a minute on the H200): 2^16 distillation tokens, perplexity on 64 validation windows,
// best of 2 instead of 3, each model alone once, the host loop with the early-exit draft only,
// profiles at K = 1, 3, 6.
const quick = f.quick === true;
const tokens = (f.tokens as number) ?? (quick ? 2 ** 16 : 2 ** 19);
const N = (f.new as number) ?? 256;
const reps = quick ? 2 : 3;
const ctx = await initGpu();
const tmp = await Deno.makeTempDir();
const t0 = performance.now();
const log = (l: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(1)} s] ${l}`);

const distilled = (name: string, attentionLayers: number[]) =>
  distilledStudent(`${tmp}/${name}`, attentionLayers, { tokens, evalWindows: quick ? 64 : undefined, log });
const hybridRun = await distilled("hybrid-50", [1, 3, 5]);
const mambaRun = await distilled("mamba-0", []);
await earlyExit(DEFAULT_MODEL_DIR, `${tmp}/early-2`, 2);

const tok = await loadTokenizer(DEFAULT_MODEL_DIR);
using teacher = await LlamaModel.load(DEFAULT_MODEL_DIR);
using target = await LlamaModel.load(hybridRun.dir);
using early = await LlamaModel.load(`${tmp}/early-2`);
using mamba = await LlamaModel.load(mambaRun.dir);
const prompt = "The jury said";
const greedy = { temperature: 0, maxTokens: N, stopAtEos: false };
// warm-up: pipelines and clocks
for (const m of [teacher, target, early, mamba]) await generate(m, tok, prompt, { ...greedy, maxTokens: 32 });
await speculativeGenerate(target, early, tok, prompt, { ...greedy, maxTokens: 32, lookahead: 3 });
await speculativeGenerate(target, mamba, tok, prompt, { ...greedy, maxTokens: 32, lookahead: 3 });

/** The fastest of `reps` runs, with the dispatches it recorded (replays included). */
const best = async <T extends { tokensPerSecond: number }>(
  fn: () => Promise<T>,
  reps = 3,
): Promise<T & { dispatches: number }> => {
  let top: (T & { dispatches: number }) | null = null;
  for (let i = 0; i < reps; i++) {
    const d0 = dispatchCount();
    const r = await fn();
    if (!top || r.tokensPerSecond > top.tokensPerSecond) top = { ...r, dispatches: dispatchCount() - d0 };
  }
  return top!;
};
const plain = await best(() => generate(target, tok, prompt, greedy));
const alone: Record<string, number> = {};
for (
  const [name, m] of [["teacher", teacher], ["hybrid", target], ["early-exit-2", early], [
    "mamba-0",
    mamba,
  ]] as const
) {
  alone[name] = (await best(() => generate(m, tok, prompt, greedy), quick ? 1 : 2)).tokensPerSecond;
}
log(`plain ${plain.tokensPerSecond.toFixed(1)} tok/s; alone ${JSON.stringify(alone)}`);
const rows: Record<string, unknown>[] = [];
const profiles: Record<string, StepProfile> = {};
let opCosts: DispatchCost[] = [];
/** Writes what is measured so far (a run cut short by a time limit keeps its rows). */
const save = () =>
  Deno.writeTextFile(
    outPath,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        adapter: adapterName(ctx),
        new_tokens: N,
        distill_tokens: tokens,
        students: { "hybrid-50": hybridRun.ppl, "mamba-0": mambaRun.ppl },
        tokens_per_s_alone: alone,
        ms_per_token_alone: Object.fromEntries(Object.entries(alone).map(([k, v]) => [k, 1000 / v])),
        target_plain_tokens_per_s: plain.tokensPerSecond,
        target_plain_dispatches_per_token: plain.dispatches / N,
        dispatch_costs: opCosts,
        step_profiles: profiles,
        speculative: rows,
      },
      null,
      2,
    ),
  );
await save();
for (const [draftName, draft] of [["early-exit-2", early], ["mamba-0", mamba]] as const) {
  for (let K = 1; K <= 6; K++) {
    const r = await best(
      () => speculativeGenerate(target, draft, tok, prompt, { ...greedy, lookahead: K }),
      reps,
    );
    const same = r.text === plain.text;
    if (!same) log(`ERROR ${draftName} K=${K}: speculative output differs from greedy`);
    rows.push({
      draft: draftName,
      loop: "gpu-resident",
      equals_greedy: same,
      K,
      tokens_per_s: r.tokensPerSecond,
      speedup: r.tokensPerSecond / plain.tokensPerSecond,
      acceptance_rate: r.acceptanceRate,
      mean_accepted: r.meanAccepted,
      rounds: r.rounds.length,
      ms_per_round: r.msPerRound,
      dispatches_per_round: r.dispatches / r.rounds.length,
    });
    log(
      `${draftName} K=${K}: ${r.tokensPerSecond.toFixed(1)} tok/s (×${
        (r.tokensPerSecond / plain.tokensPerSecond).toFixed(2)
      }), acceptance ${r.acceptanceRate.toFixed(2)}`,
    );
    await save();
  }
}
// The original loop (one readback per round), at K = 3.
const hostDrafts = quick
  ? [["early-exit-2", early]] as const
  : [["early-exit-2", early], ["mamba-0", mamba]] as const;
for (const [draftName, draft] of hostDrafts) {
  const K = 3;
  const r = await best(
    () => speculativeGenerate(target, draft, tok, prompt, { ...greedy, lookahead: K, hostRounds: true }),
    1,
  );
  const same = r.text === plain.text;
  if (!same) log(`ERROR ${draftName} host loop K=${K}: output differs from greedy`);
  rows.push({
    draft: draftName,
    loop: "host",
    equals_greedy: same,
    K,
    tokens_per_s: r.tokensPerSecond,
    speedup: r.tokensPerSecond / plain.tokensPerSecond,
    acceptance_rate: r.acceptanceRate,
    mean_accepted: r.meanAccepted,
    rounds: r.rounds.length,
    ms_per_round: r.msPerRound,
  });
  log(`${draftName} host loop K=${K}: ${r.tokensPerSecond.toFixed(1)} tok/s`);
  await save();
}
opCosts = await dispatchCosts();
log(`dispatch costs (µs each, bench/dispatch_cost.ts): ${JSON.stringify(opCosts)}`);
for (const [name, m] of [["hybrid", target], ["early-exit-2", early], ["mamba-0", mamba]] as const) {
  const Ks = quick ? [1, 3, 6] : [1, 2, 3, 4, 5, 6];
  profiles[name] = await profileSteps(m, Ks, quick ? 100 : 200, kernelBreakdownTiming);
  const { kernels_1, kernels_verify, ...times } = profiles[name];
  log(`profile ${name}: ${JSON.stringify(times)}`);
  const top = (k?: { total_us: number; kernels: { kernel: string; count: number; us: number }[] }) =>
    k
      ? `${k.total_us.toFixed(0)} µs: ` +
        k.kernels.slice(0, 8).map((x) => `${x.kernel}×${x.count} ${x.us.toFixed(0)}`).join(", ")
      : "";
  log(`  one token, kernel by kernel: ${top(kernels_1)}`);
  log(`  verify K=${kernels_verify?.K}, kernel by kernel: ${top(kernels_verify)}`);
  await save();
}
// The cost model checked against the measured rows: the speedup the profiles predict at each row's
// measured acceptance (bench/speculative_profile.ts projectedSpeedup).
for (const row of rows) {
  if (row.loop !== "gpu-resident" || profiles.hybrid.replay_ms_verify[row.K as number] === undefined) {
    continue;
  }
  const d = profiles[row.draft as string];
  row.projected_speedup = projectedSpeedup(profiles.hybrid, d, row.K as number, {
    meanAccepted: row.mean_accepted as number,
  });
}
log(
  `projected vs measured speedup: ${
    rows.filter((r) => r.projected_speedup !== undefined).map((r) =>
      `${r.draft} K=${r.K} ${(r.projected_speedup as number).toFixed(2)}/${(r.speedup as number).toFixed(2)}`
    ).join(", ")
  }`,
);
await save();
await Deno.remove(tmp, { recursive: true });
console.error(`wrote ${outPath}`);
