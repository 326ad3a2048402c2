/**
 * `lab generate`: streams a continuation of a prompt from a teacher, a hybrid or a pure-Mamba student,
 * optionally with speculative decoding (`--draft DIR --lookahead K`).
 *
 * Output: the prompt, then the continuation as it is decoded, on stdout (the text reads as one
 * completion; `--json` also gives the continuation alone as `text`); a summary line on stderr. With
 * `--json`, a last stdout line of JSON: `tokens`, `tokens_per_s`, `text`, and with a draft `lookahead`,
 * `rounds`, `acceptance_rate` (accepted / proposed drafts), `mean_accepted` (accepted drafts per round)
 * and `fused_draft`. At temperature 0 a small Llama draft runs its whole round as one dispatch with f16
 * matrices (`fusedDraft: "auto"`, lib/decode/fused_draft.ts): the same output, faster at the bundled size.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { adapterName, initGpu } from "../gpu/device.ts";
import { loadTokenizer } from "../io/tokenizer.ts";
import { LlamaModel } from "../models/llama.ts";
import { DEFAULT_MODEL_DIR } from "../models/default_model.ts";
import { generate, type GenerateResult } from "../decode/generate.ts";
import { speculativeGenerate } from "../decode/speculative.ts";
import { intFlag, parseFlags, required } from "./args.ts";

/** Whether two files hold the same bytes (false when either is missing). */
async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [x, y] = await Promise.all([Deno.readFile(a), Deno.readFile(b)]);
    return x.length === y.length && x.every((v, i) => v === y[i]);
  } catch {
    return false;
  }
}

/**
 * `lab generate --model DIR --prompt TEXT [--max-tokens N] [--temperature T] [--top-p P] [--seed S]
 * [--draft DIR --lookahead K] [--json]`.
 */
export async function generateCommand(args: string[]): Promise<void> {
  const cmd = "lab generate";
  const f = parseFlags(cmd, args, {
    model: "string",
    prompt: "string",
    "max-tokens": "number",
    temperature: "number",
    "top-p": "number",
    "top-k": "number",
    seed: "number",
    draft: "string",
    lookahead: "number",
    json: "boolean",
  });
  const dir = typeof f.model === "string" ? f.model : DEFAULT_MODEL_DIR;
  const prompt = required(cmd, f, "prompt");
  const temperature = (f.temperature as number | undefined) ?? 0.8;
  const topP = (f["top-p"] as number | undefined) ?? 0.95;
  if (temperature < 0) throw new UsageError(cmd, `--temperature must be ≥ 0, got ${temperature}`);
  if (!(topP > 0 && topP <= 1)) throw new UsageError(cmd, `--top-p must be in (0, 1], got ${topP}`);
  if (f.lookahead !== undefined && f.draft === undefined) {
    throw new UsageError(cmd, "--lookahead needs --draft DIR");
  }
  const draftDir = f.draft === undefined ? null : required(cmd, f, "draft");
  const lookahead = intFlag(cmd, f, "lookahead", 3);
  const opts = {
    maxTokens: intFlag(cmd, f, "max-tokens", 64),
    temperature,
    topP,
    topK: intFlag(cmd, f, "top-k", 0, 0),
    seed: intFlag(cmd, f, "seed", 0, 0),
  };
  const tok = await loadTokenizer(dir);
  if (draftDir !== null && !(await sameFile(`${dir}/tokenizer.json`, `${draftDir}/tokenizer.json`))) {
    throw new UsageError(
      cmd,
      `the draft ${draftDir} does not share ${dir}'s tokenizer.json (missing or different)`,
    );
  }
  await initGpu();
  using model = await LlamaModel.load(dir);
  using draft = draftDir === null ? null : await LlamaModel.load(draftDir);
  const enc = new TextEncoder();
  await Deno.stdout.write(enc.encode(prompt));
  const onText = (t: string) => Deno.stdout.writeSync(enc.encode(t));
  const spec = draft
    ? await speculativeGenerate(model, draft, tok, prompt, { ...opts, lookahead, onText, fusedDraft: "auto" })
    : null;
  const r: GenerateResult = spec ?? await generate(model, tok, prompt, { ...opts, onText });
  await Deno.stdout.write(enc.encode("\n"));
  console.error(
    `${r.tokens.length} tokens, ${r.tokensPerSecond.toFixed(1)} tokens/s on ${adapterName()}` +
      (spec
        ? `; lookahead ${lookahead}: ${spec.rounds.length} rounds, acceptance ${
          (100 * spec.acceptanceRate).toFixed(1)
        }%, ${spec.meanAccepted.toFixed(2)} accepted per round${spec.fusedDraft ? ", fused draft (f16)" : ""}`
        : ""),
  );
  if (f.json) {
    const out: Record<string, unknown> = {
      tokens: r.tokens.length,
      tokens_per_s: r.tokensPerSecond,
      text: r.text,
    };
    if (spec) {
      Object.assign(out, {
        lookahead,
        rounds: spec.rounds.length,
        acceptance_rate: spec.acceptanceRate,
        mean_accepted: spec.meanAccepted,
        fused_draft: spec.fusedDraft,
      });
    }
    console.log(JSON.stringify(out));
  }
}
