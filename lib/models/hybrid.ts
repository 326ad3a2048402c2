/**
 * Hybrid students in MambaInLlama's layout: the teacher's `config.json`, `mamba_config.json` naming the
 * layers that keep attention, and `model.layers.{i}.mamba.*` tensors for the others — Mamba-2's
 * (`in_proj`, `conv1d`, `dt_bias`, `A_log`, `D`, `norm`, `out_proj`) or Mamba-1's (`in_proj_x`,
 * `in_proj_z`, `conv1d`, `B_proj`, `C_proj`, `dt_proj_down`, `dt_proj`, `A_log`, `D`, `out_proj`),
 * told apart by their names as MambaInLlama's two code paths are. `LlamaModel.load` reads such a
 * directory through these helpers, so every command that takes `--model` accepts hybrids.
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
import type { Mamba1Weights } from "./mamba1_layer.ts";
import { checkMamba1Dims, type Mamba1Dims } from "../distill/convert_mamba1.ts";
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
  // MambaInLlama's Mamba-1 configs may leave d_state to the layer's default, 16.
  m.ssm_cfg.d_state ??= 16;
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

/** Whether layer i of the checkpoint is a Mamba-1 layer (it has `mamba.in_proj_x.weight`). */
export function isMamba1Layer(ckpt: Checkpoint, i: number): boolean {
  return ckpt.has(`model.layers.${i}.mamba.in_proj_x.weight`);
}

/** The Mamba-1 dimensions a `mamba_config.json` describes (dt_rank "auto" = ⌈d_model/16⌉). */
export function mamba1DimsOf(m: MambaConfigJson): Mamba1Dims {
  const d: Mamba1Dims = {
    dModel: m.d_model,
    dInner: m.d_inner,
    dXb: m.d_xb,
    dState: m.ssm_cfg.d_state,
    dtRank: typeof m.ssm_cfg.dt_rank === "number" ? m.ssm_cfg.dt_rank : Math.ceil(m.d_model / 16),
    convWidth: 4,
  };
  try {
    checkMamba1Dims(d);
  } catch (e) {
    throw new ConfigError("mamba_config.json", (e as Error).message);
  }
  return d;
}

/** Loads layer i's Mamba-1 `mamba.*` tensors, checking every shape against the dimensions. */
export async function loadMamba1Weights(
  ckpt: Checkpoint,
  i: number,
  d: Mamba1Dims,
  opts: LoadOptions = {},
): Promise<Mamba1Weights> {
  const pre = `model.layers.${i}.mamba`;
  const { dModel, dInner, dXb, dState, dtRank } = d;
  ckpt.require(`${pre}.conv1d.weight`, [dInner, 1, d.convWidth]);
  ckpt.require(`${pre}.A_log`, [dInner, dState]);
  const mat = (name: string, shape: [number, number]) => loadWeight(ckpt, `${pre}.${name}`, shape, opts);
  return {
    inProjX: await mat("in_proj_x.weight", [dXb, dModel]),
    inProjZ: await mat("in_proj_z.weight", [dInner, dModel]),
    convWeight: await loadFlat(ckpt, `${pre}.conv1d.weight`),
    convBias: await loadVector(ckpt, `${pre}.conv1d.bias`, dInner),
    bProj: await mat("B_proj.weight", [dXb, dModel]),
    cProj: await mat("C_proj.weight", [dInner, dModel]),
    dtDown: await mat("dt_proj_down.weight", [dtRank, dModel]),
    dtProj: await mat("dt_proj.weight", [dInner, dtRank]),
    dtBias: await loadVector(ckpt, `${pre}.dt_proj.bias`, dInner),
    aLog: uploadHost(await ckpt.read(`${pre}.A_log`)),
    D: await loadVector(ckpt, `${pre}.D`, dInner),
    outProj: await mat("out_proj.weight", [dModel, dInner]),
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
