/**
 * Hybrid students in MambaInLlama's layout: the teacher's `config.json`, `mamba_config.json` naming the
 * layers that keep attention, and `model.layers.{i}.mamba.*` tensors for the others. `LlamaModel.load`
 * reads such a directory through these helpers, so every command that takes `--model` accepts hybrids.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import type { Checkpoint } from "../io/checkpoint.ts";
import { readJsonFile } from "../io/config.ts";
import type { LlamaConfig } from "../io/config.ts";
import type { Mamba2Dims } from "../distill/convert_mamba2.ts";
import type { MambaConfigJson } from "../distill/convert.ts";
import type { Mamba2Weights } from "./mamba2_layer.ts";
import { type LoadOptions, loadVector, loadWeight } from "./weights.ts";
import { uploadHost } from "../tensor/convert.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** `dir/mamba_config.json` validated, or null when the directory is a plain Transformer. */
export async function readMambaConfig(dir: string, llama: LlamaConfig): Promise<MambaConfigJson | null> {
  const path = `${dir}/mamba_config.json`;
  try {
    await Deno.stat(path);
  } catch {
    return null;
  }
  const j = await readJsonFile(path) as Partial<MambaConfigJson> | null;
  const need = (ok: boolean, what: string) => {
    if (!ok) throw new ConfigError(path, what);
  };
  need(typeof j === "object" && j !== null, "not a JSON object");
  const m = j as MambaConfigJson;
  for (const k of ["d_model", "d_inner", "d_xb", "n_layer"] as const) {
    need(Number.isInteger(m[k]) && m[k] > 0, `"${k}" must be a positive integer`);
  }
  need(typeof m.ssm_cfg === "object" && m.ssm_cfg !== null, `"ssm_cfg" missing`);
  need(
    Number.isInteger(m.ssm_cfg.d_state) && m.ssm_cfg.d_state > 0,
    `"ssm_cfg.d_state" must be a positive integer`,
  );
  need(
    Array.isArray(m.attn_layers) &&
      m.attn_layers.every((i) => Number.isInteger(i) && i >= 0 && i < m.n_layer),
    `"attn_layers" must list layer indices below n_layer`,
  );
  need(m.d_model === llama.hiddenSize, `d_model ${m.d_model} ≠ config.json hidden_size ${llama.hiddenSize}`);
  need(
    m.n_layer === llama.numLayers,
    `n_layer ${m.n_layer} ≠ config.json num_hidden_layers ${llama.numLayers}`,
  );
  need(
    m.d_inner % m.ssm_cfg.d_state === 0 && m.d_xb % m.ssm_cfg.d_state === 0,
    "d_inner and d_xb must be multiples of d_state",
  );
  return m;
}

/** The Mamba-2 dimensions a `mamba_config.json` describes (head dim = d_state, as MambaInLlama). */
export function mamba2DimsOf(m: MambaConfigJson): Mamba2Dims {
  const headDim = m.ssm_cfg.headdim ?? m.ssm_cfg.d_state;
  return {
    dModel: m.d_model,
    dInner: m.d_inner,
    dXb: m.d_xb,
    dState: m.ssm_cfg.d_state,
    nHeads: m.d_inner / headDim,
    headDim,
    nGroups: m.ssm_cfg.ngroups ?? m.d_inner / headDim,
    convWidth: 4,
  };
}

/** Loads layer i's `mamba.*` tensors, checking every shape against the dimensions. */
export async function loadMamba2Weights(
  ckpt: Checkpoint,
  i: number,
  d: Mamba2Dims,
  opts: LoadOptions = {},
): Promise<Mamba2Weights> {
  const pre = `model.layers.${i}.mamba`;
  const convChannels = d.dInner + 2 * d.dXb;
  ckpt.require(`${pre}.conv1d.weight`, [convChannels, 1, d.convWidth]);
  return {
    inProj: await loadWeight(
      ckpt,
      `${pre}.in_proj.weight`,
      [2 * d.dInner + 2 * d.dXb + d.nHeads, d.dModel],
      opts,
    ),
    convWeight: await loadFlat(ckpt, `${pre}.conv1d.weight`),
    convBias: await loadVector(ckpt, `${pre}.conv1d.bias`, convChannels),
    dtBias: await loadVector(ckpt, `${pre}.dt_bias`, d.nHeads),
    aLog: await loadVector(ckpt, `${pre}.A_log`, d.nHeads),
    D: await loadVector(ckpt, `${pre}.D`, d.nHeads),
    norm: await loadVector(ckpt, `${pre}.norm.weight`, d.dInner),
    outProj: await loadWeight(ckpt, `${pre}.out_proj.weight`, [d.dModel, d.dInner], opts),
  };
}

async function loadFlat(ckpt: Checkpoint, name: string): Promise<Tensor> {
  const t = await ckpt.read(name);
  return uploadHost({ ...t, shape: [t.shape[0], t.shape.slice(1).reduce((a, b) => a * b, 1)] });
}
