/**
 * The students the decoding benchmarks distil in their own run (so nothing is carried to the GPU
 * machine): a MambaInLlama student by end-to-end KD from the bundled teacher, and an early-exit draft.
 *
 * @module
 */
import { randomWindows } from "../lib/data/windows.ts";
import { convertTeacher } from "../lib/distill/convert.ts";
import { pseudoLabelBatch } from "../lib/distill/pseudo_labels.ts";
import { runDistillation } from "../lib/distill/run.ts";
import { saveStudent } from "../lib/distill/student.ts";
import type { LlamaConfig } from "../lib/io/config.ts";
import { SafetensorsFile, writeSafetensors } from "../lib/io/safetensors.ts";
import { DEFAULT_MODEL_DIR } from "../lib/models/default_model.ts";
import type { LlamaModel } from "../lib/models/llama.ts";
import { Rng } from "../lib/random.ts";
import { readTensors, type Tensor } from "../lib/tensor/tensor.ts";

/** Options of {@linkcode distilledStudent}. */
export interface StudentOptions {
  /** Distillation tokens; 0: the converted student as initialised (a check of the harness). */
  tokens: number;
  /** Validation windows for the perplexity (default: all). */
  evalWindows?: number;
  /** Progress lines. */
  log: (line: string) => void;
}

/**
 * The bundled teacher converted into a Mamba-2 hybrid keeping `attentionLayers` and distilled by
 * end-to-end KD (batch 16 × 256) into `dir`; returns the directory and the student's perplexity.
 */
export async function distilledStudent(
  dir: string,
  attentionLayers: number[],
  o: StudentOptions,
): Promise<{ dir: string; ppl: number | null }> {
  const name = dir.split("/").pop();
  if (o.tokens === 0) {
    await convertTeacher(DEFAULT_MODEL_DIR, dir, { attentionLayers, mamba: 2, init: "attention", seed: 0 });
    return { dir, ppl: null };
  }
  const r = await runDistillation({
    teacherDir: DEFAULT_MODEL_DIR,
    outDir: dir,
    recipe: "kd",
    attentionLayers,
    tokens: o.tokens,
    batch: 16,
    seqLen: 256,
    report: false,
    evalWindows: o.evalWindows,
    log: (l) => o.log(`[${name}] ${l}`),
  });
  return { dir, ppl: r.studentPpl };
}

/** The first `layers` layers of the model in `src` as a checkpoint directory `dir` (an early-exit draft). */
export async function earlyExit(src: string, dir: string, layers: number): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const cfg = JSON.parse(await Deno.readTextFile(`${src}/config.json`));
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...cfg, num_hidden_layers: layers }));
  for (const file of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${src}/${file}`, `${dir}/${file}`).catch(() => {});
  }
  using st = await SafetensorsFile.open(`${src}/model.safetensors`);
  const kept = st.names().filter((n) => !n.startsWith("model.layers.") || Number(n.split(".")[2]) < layers);
  const tensors = Object.fromEntries(
    await Promise.all(kept.map(async (n) => [n, await st.read(n)] as const)),
  );
  await writeSafetensors(`${dir}/model.safetensors`, tensors, { format: "pt" });
}

/** A small Llama draft's shape (the head width is hidden / heads). */
export interface DraftShape {
  name: string;
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  mlp: number;
}

/** The small drafts the decoding benches train or time: 1 and 2 layers of width 128. */
export const TINY_DRAFTS: DraftShape[] = [
  { name: "tiny-1x128", layers: 1, hidden: 128, heads: 4, kvHeads: 2, mlp: 344 },
  { name: "tiny-2x128", layers: 2, hidden: 128, heads: 4, kvHeads: 2, mlp: 344 },
];

/** `base` (vocabulary, RoPE, norms) with the widths and depth of `s`, untied. */
export function draftConfig(base: LlamaConfig, s: DraftShape): LlamaConfig {
  return {
    ...base,
    hiddenSize: s.hidden,
    intermediateSize: s.mlp,
    numLayers: s.layers,
    numHeads: s.heads,
    numKvHeads: s.kvHeads,
    headDim: s.hidden / s.heads,
    tieWordEmbeddings: false,
  };
}

/**
 * A small Llama draft written to `dir` as a Hugging Face checkpoint: its weights (`saveStudent`) and
 * the teacher's `config.json` with the draft's widths and depth (so PyTorch can load it).
 */
export async function saveDraft(model: LlamaModel, dir: string): Promise<void> {
  await saveStudent(model, dir, DEFAULT_MODEL_DIR);
  const c = model.config;
  const cfg = JSON.parse(await Deno.readTextFile(`${DEFAULT_MODEL_DIR}/config.json`));
  await Deno.writeTextFile(
    `${dir}/config.json`,
    JSON.stringify({
      ...cfg,
      hidden_size: c.hiddenSize,
      intermediate_size: c.intermediateSize,
      num_hidden_layers: c.numLayers,
      num_attention_heads: c.numHeads,
      num_key_value_heads: c.numKvHeads,
      head_dim: c.headDim,
      tie_word_embeddings: c.tieWordEmbeddings,
      dtype: "float32",
    }),
  );
}

/** Options of {@linkcode targetContinuations}. */
export interface ContinuationOptions {
  /** Batches of 16 sequences. */
  batches: number;
  /** Tokens per sequence, the prompt's included. */
  seqLen: number;
  /** Prompt tokens from random windows of the data. */
  promptLen: number;
  /** Sampling temperature of each batch in turn (0: greedy). */
  temperatures: number[];
  seed: number;
}

/**
 * The target's own text for training a draft on the contexts it meets when decoding: `batches` × 16
 * sequences, each a `promptLen`-token prompt from a random window of `ids` continued by `model`
 * (greedy or sampled, by batch), concatenated. A greedy draft is accepted when it predicts the
 * target's argmax on the target's own continuations, which KD on corpus text only approximates.
 */
export async function targetContinuations(
  model: LlamaModel,
  ids: Int32Array,
  o: ContinuationOptions,
): Promise<Int32Array> {
  const B = 16;
  const rng = new Rng(o.seed);
  const batches: Tensor[] = [];
  try {
    for (let i = 0; i < o.batches; i++) {
      const w = randomWindows(ids, { batch: B, seqLen: o.promptLen, rng });
      const { x, y } = pseudoLabelBatch(model, w.input, B, o.seqLen, {
        promptLen: o.promptLen,
        temperature: o.temperatures[i % o.temperatures.length],
        seed: o.seed + i,
      });
      y.dispose();
      batches.push(x);
    }
    // One readback for all of them (each costs >= 11 ms).
    const rows = await readTensors(batches);
    const out = new Int32Array(o.batches * B * o.seqLen);
    rows.forEach((r, i) => out.set(r as Int32Array, i * B * o.seqLen));
    return out;
  } finally {
    for (const x of batches) x.dispose();
  }
}
