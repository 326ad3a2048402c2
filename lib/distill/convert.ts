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
import type { LlamaConfig } from "../io/config.ts";
import { convertAttentionToMamba2, type Mamba2Dims, mamba2Dims, type Mamba2Init } from "./convert_mamba2.ts";
import {
  convertAttentionToMamba1,
  type Mamba1Blocks,
  type Mamba1Dims,
  mamba1Dims,
} from "./convert_mamba1.ts";

/** Options of {@linkcode convertTeacher}. */
export interface ConvertOptions {
  /** Layers that keep attention (all others become Mamba). */
  attentionLayers: number[];
  /** Mamba version of the converted layers (default 2). */
  mamba?: 1 | 2;
  /** Initialisation of the converted layers (default: from attention; linear-attention: Mamba-2 only). */
  init?: Mamba2Init;
  /** Mamba-1: which q blocks the C groups hold (default: the reference's; see convert_mamba1.ts). */
  blocks?: Mamba1Blocks;
  /** Mamba-1: state size N per channel (default 16, MambaInLlama's). */
  dState?: number;
  /** Seed of the new parameters (default 0). */
  seed?: number;
}

/**
 * The `mamba_config.json` of a hybrid, with MambaInLlama's keys. Its Mamba-2 code reads `ssm_cfg`
 * {expand, ngroups, d_state[, headdim]}; its Mamba-1 code passes `ssm_cfg` to the layer as keyword
 * arguments ({expand[, d_state, dt_rank]}, d_state 16 when absent), so no other key may go there.
 */
export interface MambaConfigJson {
  d_model: number;
  ssm_cfg: { expand: number; ngroups?: number; d_state: number; headdim?: number; dt_rank?: number };
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

/**
 * The `mamba_config.json` of a hybrid of teacher config `c` with attention kept at `attentionLayers`:
 * Mamba-2 layers of dimensions `d`, or Mamba-1 layers when `d1` is given.
 */
export function hybridMambaConfig(
  c: LlamaConfig,
  d: Mamba2Dims,
  d1: Mamba1Dims | null,
  attentionLayers: number[],
): MambaConfigJson {
  return {
    d_model: d.dModel,
    ssm_cfg: d1 ? { expand: 1, d_state: d1.dState } : { expand: 1, ngroups: d.nGroups, d_state: d.dState },
    rms_norm_eps: c.rmsNormEps,
    vocab_size: c.vocabSize,
    d_inner: d.dInner,
    d_xb: d.dXb,
    intermediate_size: c.intermediateSize,
    hidden_act: c.hiddenAct,
    n_layer: c.numLayers,
    attn_layers: [...attentionLayers].sort((x, y) => x - y),
  };
}

/** Writes the student converted from `teacherDir` into `outDir`; returns its mamba_config. */
export async function convertTeacher(
  teacherDir: string,
  outDir: string,
  opts: ConvertOptions,
): Promise<MambaConfigJson> {
  const version = opts.mamba ?? 2;
  if (version === 1 && opts.init === "linear-attention") {
    throw new UsageError(
      "lab convert",
      "--init linear-attention is for --mamba 2 (a Mamba-1 channel's 16-state scan is not the head's q·k)",
    );
  }
  if (version === 2 && (opts.blocks !== undefined || opts.dState !== undefined)) {
    throw new UsageError("lab convert", "--blocks and --d-state apply to --mamba 1 only");
  }
  using ckpt = await Checkpoint.open(teacherDir);
  const c = ckpt.config;
  if (c.attentionBias) {
    throw new UsageError("lab convert", "teachers with attention biases are not supported");
  }
  const d = mamba2Dims(c);
  const d1 = version === 1 ? mamba1Dims(c, opts.dState ?? 16) : null;
  const keep = new Set(opts.attentionLayers);
  // A hybrid source (a student of an earlier stage) keeps its Mamba layers; only attention layers
  // outside `keep` are converted, so stepwise replacement is this function called once per step.
  const source = await readMambaConfig(teacherDir, c);
  const alreadyMamba = (i: number) => source !== null && !source.attn_layers.includes(i);
  for (let i = 0; i < c.numLayers; i++) {
    const v1 = ckpt.names().includes(`model.layers.${i}.mamba.in_proj_x.weight`);
    if (alreadyMamba(i) && (v1 ? 1 : 2) !== version) {
      throw new UsageError(
        "lab convert",
        `layer ${i} of ${teacherDir} is a Mamba-${v1 ? 1 : 2} layer: convert further layers with --mamba ${
          v1 ? 1 : 2
        }`,
      );
    }
  }
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
      inputNorm: await ckpt.readF32(`model.layers.${i}.input_layernorm.weight`),
    };
    const mamba = d1
      ? convertAttentionToMamba1(att, d1, rng, {
        init: opts.init === "random" ? "random" : "attention",
        blocks: opts.blocks,
        headDim: c.headDim,
      })
      : convertAttentionToMamba2(att, d, rng, opts.init ?? "attention", c.rmsNormEps);
    for (const [k, t] of Object.entries(mamba)) out[`model.layers.${i}.mamba.${k}`] = t;
  }
  const mambaConfig = hybridMambaConfig(c, d, d1, [...keep]);
  await Deno.mkdir(outDir, { recursive: true });
  await writeSafetensors(`${outDir}/model.safetensors`, out, { format: "pt" });
  await copyCheckpointFiles(teacherDir, outDir);
  await Deno.writeTextFile(`${outDir}/mamba_config.json`, JSON.stringify(mambaConfig, null, 4));
  return mambaConfig;
}
