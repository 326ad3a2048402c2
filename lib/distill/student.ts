/**
 * Students on disk and in memory: a {@linkcode LlamaModel} (teacher or hybrid) written back in
 * MambaInLlama's layout, and students made by converting more of a directory's attention layers.
 *
 * A distillation stage starts from a directory (the teacher, or the student an earlier stage wrote),
 * converts the layers its plan replaces (`convertTeacher` keeps a hybrid source's Mamba layers), and
 * loads the result; when the stage ends its trained student is written with {@linkcode saveStudent}.
 * So every stage's output can continue training in MambaInLlama's PyTorch code, and a resumed run
 * rebuilds a stage's starting point from the last finished stage (conversion is seeded).
 *
 * @module
 */
import { type HostTensor, writeSafetensors } from "../io/safetensors.ts";
import { LlamaModel } from "../models/llama.ts";
import { readTensors } from "../tensor/tensor.ts";
import { convertTeacher, copyCheckpointFiles } from "./convert.ts";
import type { Mamba2Init } from "./convert_mamba2.ts";

/**
 * Writes `model`'s weights to `dir/model.safetensors` (F32, checkpoint names; conv1d weights in
 * PyTorch's (C, 1, W) shape), `config.json` and the tokenizer files copied from `sourceDir`, and
 * `mamba_config.json` when the model is a hybrid. The weights file is written atomically.
 */
export async function saveStudent(model: LlamaModel, dir: string, sourceDir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const params = model.namedParameters();
  const values = await readTensors(params.map(([, t]) => t));
  const out: Record<string, HostTensor> = {};
  params.forEach(([name, t], i) => {
    const shape = /conv1d\.weight$/.test(name) && t.shape.length === 2
      ? [t.shape[0], 1, t.shape[1]]
      : [...t.shape];
    out[name] = { dtype: "F32", shape, data: values[i] as Float32Array };
  });
  await writeSafetensors(`${dir}/model.safetensors`, out, { format: "pt", producer: "mamba-distill-lab" });
  if (sourceDir !== dir) await copyCheckpointFiles(sourceDir, dir);
  if (model.hybrid) {
    await Deno.writeTextFile(`${dir}/mamba_config.json`, JSON.stringify(model.hybrid.config, null, 4));
  } else {
    await Deno.remove(`${dir}/mamba_config.json`).catch(() => {});
  }
}

/** How a stage's new Mamba layers start. */
export interface StudentInit {
  /** From attention (MambaInLlama's port) or random. */
  init?: Mamba2Init;
  /** Seed of the new parameters. */
  seed?: number;
}

/**
 * Converts every attention layer of `sourceDir` outside `attentionLayers` into Mamba-2 (keeping
 * layers the source already converted), writes the student to `outDir` and loads it.
 */
export async function convertAndLoad(
  sourceDir: string,
  outDir: string,
  attentionLayers: number[],
  opts: StudentInit = {},
): Promise<LlamaModel> {
  await convertTeacher(sourceDir, outDir, {
    attentionLayers,
    init: opts.init ?? "attention",
    seed: opts.seed ?? 0,
  });
  return await LlamaModel.load(outDir);
}

/** Layers of `model` that keep attention. */
export function attentionLayersOf(model: LlamaModel): number[] {
  return model.layers.flatMap((l, i) => l.attn ? [i] : []);
}
