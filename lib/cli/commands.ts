/**
 * The `lab` commands of the foundation: `logits`, `eval`, `generate` and `demo`.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { DataError, UsageError } from "../errors.ts";
import { adapterName, initGpu } from "../gpu/device.ts";
import { type HostTensor, SafetensorsFile, writeSafetensors } from "../io/safetensors.ts";
import { loadTokenizer } from "../io/tokenizer.ts";
import { loadBrownIds } from "../data/brown.ts";
import { type EvalResult, evaluateLoss } from "../models/evaluate.ts";
import { LlamaModel } from "../models/llama.ts";
import { DEFAULT_MODEL_DIR } from "../models/default_model.ts";
import { generate } from "../decode/generate.ts";
import { readTensors, Tensor } from "../tensor/tensor.ts";
import { intFlag, parseFlags, required } from "./args.ts";
import { nextTokenBackward, nextTokenTargets } from "../train/next_token.ts";
import { convertTeacher } from "../distill/convert.ts";
import { attentionLayersByShare } from "../distill/plan.ts";
import { Checkpoint } from "../io/checkpoint.ts";
import { progressBar } from "./progress.ts";
import { runDistillation } from "../distill/run.ts";
import { attentionLayersFromFlags, layerCount } from "./distill_command.ts";
import { terminalProgress } from "../train/listeners.ts";

/** Reads a flattened integer tensor: the only one in the file, or `names[i]` for the first present. */
async function readIds(path: string, names: string[]): Promise<HostTensor & { name: string }> {
  using f = await SafetensorsFile.open(path);
  const ints = f.names().filter((n) => ["I32", "I64", "I16", "U16", "U8"].includes(f.info(n).dtype));
  const name = names.find((n) => ints.includes(n)) ?? (ints.length === 1 ? ints[0] : undefined);
  if (!name) {
    throw new DataError(
      path,
      `no integer tensor named ${names.join(" or ")} (integer tensors: ${ints.join(", ") || "none"})`,
    );
  }
  const t = await f.read(name);
  const data = t.dtype === "I32"
    ? t.data as Int32Array
    : Int32Array.from(t.data as ArrayLike<number>, Number);
  return { ...t, dtype: "I32", data, name };
}

/** `lab logits --model DIR --input FILE --out FILE [--hidden] [--attentions]`. */
export async function logitsCommand(args: string[]): Promise<void> {
  const cmd = "lab logits";
  const f = parseFlags(cmd, args, {
    model: "string",
    input: "string",
    out: "string",
    hidden: "boolean",
    attentions: "boolean",
  });
  const ids = await readIds(required(cmd, f, "input"), ["input_ids"]);
  if (ids.shape.length !== 2) {
    throw new DataError(required(cmd, f, "input"), `input_ids must be (B, T), got [${ids.shape}]`);
  }
  await initGpu();
  using model = await LlamaModel.load(required(cmd, f, "model"));
  const V = model.config.vocabSize;
  const bad = (ids.data as Int32Array).findIndex((id) => id < 0 || id >= V);
  if (bad >= 0) {
    throw new DataError(
      String(f.input),
      `input_ids[${bad}] = ${ids.data[bad]} is outside the vocabulary [0, ${V})`,
    );
  }
  using x = Tensor.from(ids.data as Int32Array, ids.shape, "i32");
  const out = model.forward(x, { hidden: !!f.hidden, attentions: !!f.attentions });
  const hidden = out.hidden ?? [];
  const atts = out.attentions ?? [];
  const [logits, ...rest] = await readTensors([out.logits, ...hidden, ...atts]);
  const stack = (parts: ArrayLike<number>[], shape: number[]): HostTensor => {
    const data = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) data.set(p, (o += p.length) - p.length);
    return { dtype: "F32", shape, data };
  };
  const [B, T] = ids.shape;
  const c = model.config;
  const tensors: Record<string, HostTensor> = { logits: { dtype: "F32", shape: [B, T, V], data: logits } };
  if (f.hidden) {
    tensors.hidden_states = stack(rest.slice(0, hidden.length), [hidden.length, B, T, c.hiddenSize]);
  }
  if (f.attentions) tensors.attentions = stack(rest.slice(hidden.length), [atts.length, B, c.numHeads, T, T]);
  for (const t of [out.logits, ...hidden, ...atts]) t.dispose();
  await writeSafetensors(required(cmd, f, "out"), tensors, { format: "pt", producer: "mamba-distill-lab" });
}

async function brownValidation(modelDir: string): Promise<Int32Array> {
  const tok = await loadTokenizer(modelDir);
  const json = await Deno.readFile(`${modelDir}/tokenizer.json`);
  const hash = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", json)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  return (await loadBrownIds(tok, { tokenizerKey: hash, eosId: tok.eosTokenId ?? 0 })).validation;
}

function printEval(r: EvalResult, json: boolean, label = "") {
  if (json) {
    console.log(
      JSON.stringify({ loss: r.loss, ppl: r.ppl, tokens: r.tokens, windows: r.windows, seconds: r.seconds }),
    );
  } else {
    console.log(
      `${label}loss ${r.loss.toFixed(4)}  ppl ${
        r.ppl.toFixed(2)
      }  tokens ${r.tokens}  windows ${r.windows}  ` +
        `(${r.seconds.toFixed(1)} s on ${adapterName()})`,
    );
  }
}

/** `lab eval --model DIR [--ids FILE] [--seq N] [--windows N] [--json]`. */
export async function evalCommand(args: string[]): Promise<void> {
  const cmd = "lab eval";
  const f = parseFlags(cmd, args, {
    model: "string",
    ids: "string",
    seq: "number",
    windows: "number",
    json: "boolean",
  });
  const seq = intFlag(cmd, f, "seq", 256);
  const dir = typeof f.model === "string" ? f.model : DEFAULT_MODEL_DIR;
  await initGpu();
  using model = await LlamaModel.load(dir);
  const ids = f.ids
    ? (await readIds(String(f.ids), ["val_ids", "input_ids", "ids"])).data as Int32Array
    : await brownValidation(dir);
  const limit = f.windows === undefined ? ids.length : intFlag(cmd, f, "windows", 1) * seq + 1;
  const bar = f.json ? undefined : progressBar("eval", "windows");
  const r = await evaluateLoss(model, ids.subarray(0, limit), { seqLen: seq, onProgress: bar?.update });
  bar?.done();
  printEval(r, !!f.json);
}

/** `lab generate` lives in its own module (speculative decoding included). */
export { generateCommand } from "./generate_command.ts";

/**
 * `lab demo [--model DIR] [--out DIR] [--tokens N] [--windows N]`: the main job on the bundled teacher.
 * It converts the teacher into a 50% hybrid, distils it with MambaInLlama's stepwise recipe on a small
 * budget, prints teacher and student validation perplexity, writes `report.html` (default directory
 * `out/demo`, started afresh) and samples from the student. On a software adapter the budget and the
 * scored validation windows are small: the full split takes the better part of an hour there.
 */
export async function demoCommand(args: string[]): Promise<void> {
  const cmd = "lab demo";
  const f = parseFlags(cmd, args, { model: "string", out: "string", tokens: "number", windows: "number" });
  const dir = typeof f.model === "string" ? f.model : DEFAULT_MODEL_DIR;
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const out = typeof f.out === "string" ? f.out : `${root}out/demo`;
  const ctx = await initGpu();
  const software = ctx.isFallback;
  console.log(`adapter: ${adapterName(ctx)}`);
  console.log(`teacher: ${dir.replace(root, "")}`);
  const attention = attentionLayersByShare(await layerCount(dir), 0.5);
  // A small budget: a few minutes on the software adapter, about half a minute on a GPU.
  // The software adapter runs the bundled teacher at roughly 30 tokens/s per forward on 2 cores.
  const batch = software ? 1 : 8;
  const seqLen = software ? 64 : 256;
  const tokens = intFlag(cmd, f, "tokens", software ? 3 * 4 * batch * seqLen : 2 ** 21);
  const windows = intFlag(cmd, f, "windows", software ? 2 : 327);
  console.log(
    `distilling into a 50% hybrid (attention kept at [${attention.join(", ")}], the other layers Mamba-2 ` +
      `initialised from attention), MambaInLlama's stepwise recipe, ${
        tokens.toLocaleString("en-US")
      } tokens` +
      (software ? " (software adapter: a small budget; a GPU runs 2M tokens)" : ""),
  );
  // The demo's directory is scratch space: start it afresh each time.
  await Deno.remove(out, { recursive: true }).catch(() => {});
  const r = await runDistillation({
    teacherDir: dir,
    outDir: out,
    recipe: "stepwise",
    attentionLayers: attention,
    tokens,
    batch,
    seqLen,
    evalWindows: windows,
    listeners: (stage, i, n) => [terminalProgress(`${i + 1}/${n} ${stage.name}`)],
    log: (line) => console.log(line),
  });
  console.log(`teacher validation perplexity ${r.teacherPpl.toFixed(2)} (${windows} windows of 256 tokens)`);
  console.log(`student validation perplexity ${r.studentPpl.toFixed(2)}`);
  if (software) {
    console.log(
      "(a few hundred tokens leave the student far from the teacher; on a GPU the demo trains on 2M tokens,\n" +
        " and docs/results.md shows 50% hybrids within a few perplexity points of the teacher after 1M)",
    );
  }
  console.log(`report: ${r.reportPath}`);
  using student = await LlamaModel.load(out);
  const tok = await loadTokenizer(out);
  const prompt = "The jury said";
  console.log(`student sample (temperature 0.8, seed 0):`);
  const enc = new TextEncoder();
  await Deno.stdout.write(enc.encode(prompt));
  await generate(student, tok, prompt, {
    maxTokens: 32,
    temperature: 0.8,
    topP: 0.95,
    onText: (t) => Deno.stdout.writeSync(enc.encode(t)),
  });
  console.log(
    `\nnext: deno task lab distill --teacher ${dir.replace(root, "")} --out DIR --recipe mohawk ` +
      "--attention-share 0.5 (see README)",
  );
}

/**
 * `lab grads --model DIR --input FILE --out FILE`: gradients of the mean next-token cross-entropy of
 * `input_ids` for every parameter, under the checkpoint's names, plus `loss`.
 */
export async function gradsCommand(args: string[]): Promise<void> {
  const cmd = "lab grads";
  const f = parseFlags(cmd, args, { model: "string", input: "string", out: "string" });
  const input = required(cmd, f, "input");
  const ids = await readIds(input, ["input_ids"]);
  if (ids.shape.length !== 2 || ids.shape[1] < 2) {
    throw new DataError(input, `input_ids must be (B, T) with T ≥ 2, got [${ids.shape}]`);
  }
  await initGpu();
  const dir = required(cmd, f, "model");
  using model = await LlamaModel.load(dir);
  using ckpt = await Checkpoint.open(dir);
  const [B, T] = ids.shape;
  const V = model.config.vocabSize;
  const bad = (ids.data as Int32Array).findIndex((id) => id < 0 || id >= V);
  if (bad >= 0) {
    throw new DataError(input, `input_ids[${bad}] = ${ids.data[bad]} is outside the vocabulary [0, ${V})`);
  }
  const params = model.namedParameters();
  for (const [, p] of params) p.requiresGrad = true;
  using x = Tensor.from(ids.data as Int32Array, [B, T], "i32");
  using y = Tensor.from(nextTokenTargets(ids.data as Int32Array, B, T), [B * T], "i32");
  using loss = nextTokenBackward(model, x, y);
  const [lossValue, ...grads] = await readTensors([loss, ...params.map(([, p]) => p.grad!)]);
  const tensors: Record<string, HostTensor> = { loss: { dtype: "F32", shape: [], data: lossValue } };
  // Each gradient in its checkpoint tensor's shape (a depthwise conv weight is held as (C, W) but
  // stored as (C, 1, W)); block-split weights (`name#k`) keep their own shapes.
  const shapeOf = (name: string, p: Tensor) => {
    const s = ckpt.has(name) ? ckpt.info(name).shape : p.shape;
    return s.reduce((a, b) => a * b, 1) === p.size ? [...s] : [...p.shape];
  };
  params.forEach(([name, p], i) => tensors[name] = { dtype: "F32", shape: shapeOf(name, p), data: grads[i] });
  await writeSafetensors(required(cmd, f, "out"), tensors, { format: "pt", producer: "mamba-distill-lab" });
}

/**
 * `lab convert --teacher DIR --out DIR (--attention-share S | --attention-layers LIST) [--mamba 1|2]
 * [--init attention|random|linear-attention] [--seed N]`; for `--mamba 1` also `[--blocks reference|heads]`
 * `[--d-state N]`.
 */
export async function convertCommand(args: string[]): Promise<void> {
  const cmd = "lab convert";
  const f = parseFlags(cmd, args, {
    teacher: "string",
    out: "string",
    "attention-share": "number",
    "attention-layers": "string",
    mamba: "number",
    init: "string",
    seed: "number",
    blocks: "string",
    "d-state": "number",
  });
  const teacher = required(cmd, f, "teacher");
  const out = required(cmd, f, "out");
  const attention = await attentionLayersFromFlags(cmd, f, teacher);
  const init = (f.init as string | undefined) ?? "attention";
  if (!["attention", "random", "linear-attention"].includes(init)) {
    throw new UsageError(cmd, `--init must be attention, random or linear-attention, got "${init}"`);
  }
  const mamba = (f.mamba as number | undefined) ?? 2;
  if (mamba !== 1 && mamba !== 2) throw new UsageError(cmd, `--mamba must be 1 or 2, got ${mamba}`);
  const blocks = f.blocks as string | undefined;
  if (blocks !== undefined && blocks !== "reference" && blocks !== "heads") {
    throw new UsageError(cmd, `--blocks must be reference or heads, got "${blocks}"`);
  }
  const cfg = await convertTeacher(teacher, out, {
    attentionLayers: attention,
    mamba,
    init: init as "attention" | "random" | "linear-attention",
    blocks,
    dState: f["d-state"] === undefined ? undefined : intFlag(cmd, f, "d-state", 16, 1),
    seed: intFlag(cmd, f, "seed", 0, 0),
  });
  const converted = cfg.n_layer - cfg.attn_layers.length;
  const how = mamba === 1
    ? `${init} init, ${blocks ?? "reference"} blocks, d_state ${cfg.ssm_cfg.d_state}`
    : `${init} init`;
  console.log(
    `wrote ${out}: ${converted} of ${cfg.n_layer} layers converted to Mamba-${mamba} (${how}), attention kept at ` +
      `[${cfg.attn_layers.join(", ")}]`,
  );
}
