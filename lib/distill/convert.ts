/**
 * Converting a Llama teacher directory into a hybrid student directory in MambaInLlama's layout:
 * `model.safetensors` with the teacher's names for kept layers and `model.layers.{i}.mamba.*` for
 * converted ones (their `mlp.*` and norms copied), the teacher's `config.json` unchanged, and
 * `mamba_config.json`. Kept tensors are copied byte for byte in their stored dtype; new ones are F32.
 * So a student made here can continue training in MambaInLlama's PyTorch code, and theirs loads here.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { Checkpoint } from "../io/checkpoint.ts";
import { type HostTensor, writeSafetensors } from "../io/safetensors.ts";
import { Rng } from "../random.ts";
import { readMambaConfig } from "../models/hybrid.ts";
import { convertAttentionToMamba2, mamba2Dims, type Mamba2Init } from "./convert_mamba2.ts";

/** Options of {@linkcode convertTeacher}. */
export interface ConvertOptions {
  /** Layers that keep attention (all others become Mamba). */
  attentionLayers: number[];
  /** Mamba version of the converted layers (only 2 is implemented). */
  mamba?: 1 | 2;
  /** Initialisation of the converted layers (default: from attention). */
  init?: Mamba2Init | "linear-attention";
  /** Seed of the new parameters (default 0). */
  seed?: number;
}

/** The `mamba_config.json` of a Mamba-2 hybrid, with MambaInLlama's keys. */
export interface MambaConfigJson {
  d_model: number;
  ssm_cfg: { expand: number; ngroups: number; d_state: number; headdim?: number };
  rms_norm_eps: number;
  vocab_size: number;
  d_inner: number;
  d_xb: number;
  intermediate_size: number;
  hidden_act: string;
  n_layer: number;
  attn_layers: number[];
}

const COPIED_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "chat_template.jinja",
];

/** Copies a checkpoint directory's config, generation config, tokenizer and chat template (those present). */
export async function copyCheckpointFiles(fromDir: string, toDir: string): Promise<void> {
  for (const f of COPIED_FILES) {
    try {
      await Deno.copyFile(`${fromDir}/${f}`, `${toDir}/${f}`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
}

/** Writes the student converted from `teacherDir` into `outDir`; returns its mamba_config. */
export async function convertTeacher(
  teacherDir: string,
  outDir: string,
  opts: ConvertOptions,
): Promise<MambaConfigJson> {
  if ((opts.mamba ?? 2) !== 2) {
    throw new UsageError("lab convert", "--mamba 1 is not implemented yet (Mamba-2 only)");
  }
  if (opts.init === "linear-attention") {
    throw new UsageError("lab convert", "--init linear-attention is not implemented yet");
  }
  using ckpt = await Checkpoint.open(teacherDir);
  const c = ckpt.config;
  if (c.attentionBias) {
    throw new UsageError("lab convert", "teachers with attention biases are not supported");
  }
  const d = mamba2Dims(c);
  const keep = new Set(opts.attentionLayers);
  // A hybrid source (a student of an earlier stage) keeps its Mamba layers; only attention layers
  // outside `keep` are converted, so stepwise replacement is this function called once per step.
  const source = await readMambaConfig(teacherDir, c);
  const alreadyMamba = (i: number) => source !== null && !source.attn_layers.includes(i);
  for (const i of keep) {
    if (alreadyMamba(i)) {
      throw new UsageError(
        "lab convert",
        `layer ${i} is already a Mamba layer in ${teacherDir}: it cannot keep attention`,
      );
    }
  }
  const rng = new Rng(opts.seed ?? 0);
  const out: Record<string, HostTensor> = {};
  for (const name of ckpt.names()) {
    const m = /^model\.layers\.(\d+)\.self_attn\./.exec(name);
    if (m && !keep.has(Number(m[1]))) continue; // replaced by the layer's mamba.* below
    out[name] = await ckpt.read(name);
  }
  for (let i = 0; i < c.numLayers; i++) {
    if (keep.has(i) || alreadyMamba(i)) continue;
    const a = `model.layers.${i}.self_attn`;
    const att = {
      q: await ckpt.readF32(`${a}.q_proj.weight`),
      k: await ckpt.readF32(`${a}.k_proj.weight`),
      v: await ckpt.readF32(`${a}.v_proj.weight`),
      o: await ckpt.readF32(`${a}.o_proj.weight`),
    };
    const mamba = convertAttentionToMamba2(att, d, rng, opts.init === "random" ? "random" : "attention");
    for (const [k, t] of Object.entries(mamba)) out[`model.layers.${i}.mamba.${k}`] = t;
  }
  const mambaConfig: MambaConfigJson = {
    d_model: d.dModel,
    ssm_cfg: { expand: 1, ngroups: d.nGroups, d_state: d.dState },
    rms_norm_eps: c.rmsNormEps,
    vocab_size: c.vocabSize,
    d_inner: d.dInner,
    d_xb: d.dXb,
    intermediate_size: c.intermediateSize,
    hidden_act: c.hiddenAct,
    n_layer: c.numLayers,
    attn_layers: [...keep].sort((x, y) => x - y),
  };
  await Deno.mkdir(outDir, { recursive: true });
  await writeSafetensors(`${outDir}/model.safetensors`, out, { format: "pt" });
  await copyCheckpointFiles(teacherDir, outDir);
  await Deno.writeTextFile(`${outDir}/mamba_config.json`, JSON.stringify(mambaConfig, null, 4));
  return mambaConfig;
}
