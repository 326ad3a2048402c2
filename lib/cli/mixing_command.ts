/**
 * `lab mixing --model DIR --input FILE --layer L --out FILE [--html FILE]`: the mixing matrices of one
 * layer for the first sequence of `input_ids` (I32 (B, T)) in FILE, written as `mixing` F32 [H, T, T]
 * (rows = output t, columns = source s): softmax probabilities for attention layers, the SSD matrix
 * (C_t·B_s)·exp(Σ_{s<r≤t} A_r)·dt_s + D on the diagonal for Mamba-2 layers, and for Mamba-1 layers one
 * matrix per channel (H = d_inner) (lib/mixing). The metadata `mixer` names which. `--html` also writes
 * an offline page (plotly.js inlined) with the heads' heatmaps.
 *
 * @module
 */
import { DataError, UsageError } from "../errors.ts";
import { initGpu } from "../gpu/device.ts";
import { Checkpoint } from "../io/checkpoint.ts";
import { SafetensorsFile, writeSafetensors } from "../io/safetensors.ts";
import { layerMixing } from "../mixing/layer_mixing.ts";
import { LlamaModel } from "../models/llama.ts";
import { readTensors, Tensor } from "../tensor/tensor.ts";
import { heatmap } from "../viz/figures.ts";
import { mixingGrid } from "../viz/mixing_figures.ts";
import { standaloneHtml } from "../viz/plotly.ts";
import { parseFlags, required } from "./args.ts";

const INTS = ["I32", "I64", "I16", "U16", "U8"];

/** The first sequence of `input_ids` (B, T) in a safetensors file. */
async function firstSequence(path: string): Promise<Int32Array> {
  using f = await SafetensorsFile.open(path);
  if (!f.names().includes("input_ids")) {
    throw new DataError(path, `no tensor "input_ids" (tensors: ${f.names().join(", ") || "none"})`);
  }
  const info = f.info("input_ids");
  if (!INTS.includes(info.dtype) || info.shape.length !== 2 || info.shape[1] < 1) {
    throw new DataError(
      path,
      `input_ids must be an integer (B, T) tensor, got ${info.dtype} [${info.shape}]`,
    );
  }
  const t = await f.read("input_ids");
  const T = info.shape[1];
  return Int32Array.from({ length: T }, (_, i) => Number((t.data as ArrayLike<number | bigint>)[i]));
}

/** `lab mixing` (see the module doc). */
export async function mixingCommand(args: string[]): Promise<void> {
  const cmd = "lab mixing";
  const f = parseFlags(cmd, args, {
    model: "string",
    input: "string",
    layer: "number",
    out: "string",
    html: "string",
  });
  const modelDir = required(cmd, f, "model");
  const input = required(cmd, f, "input");
  const out = required(cmd, f, "out");
  if (f.layer === undefined) throw new UsageError(cmd, "--layer is required");
  const layer = f.layer as number;
  const ids = await firstSequence(input);
  // Checked against config.json before the GPU starts, so that bad input fails fast.
  const c = await Checkpoint.open(modelDir).then((ck) => {
    ck.close();
    return ck.config;
  });
  const n = c.numLayers;
  if (!Number.isInteger(layer) || layer < 0 || layer >= n) {
    throw new UsageError(cmd, `--layer ${layer} is outside 0 … ${n - 1} (the model has ${n} layers)`);
  }
  const V = c.vocabSize;
  const bad = ids.findIndex((id) => id < 0 || id >= V);
  if (bad >= 0) {
    throw new DataError(input, `input_ids[0, ${bad}] = ${ids[bad]} is outside the vocabulary [0, ${V})`);
  }
  await initGpu();
  using model = await LlamaModel.load(modelDir);
  const T = ids.length;
  using x = Tensor.from(ids, [1, T], "i32");
  const { kind, M } = await layerMixing(model, x, layer);
  const H = M.shape[1];
  const [values] = await readTensors([M]) as Float32Array[];
  M.dispose();
  await writeSafetensors(out, { mixing: { dtype: "F32", shape: [H, T, T], data: values } }, {
    format: "pt",
    producer: "mamba-distill-lab",
    layer: String(layer),
    mixer: kind,
  });
  if (typeof f.html === "string") {
    const what = {
      attention: "softmax attention probabilities",
      mamba2: "Mamba-2 (SSD) mixing matrices",
      mamba1: "Mamba-1 mixing matrices, one per channel",
    }[kind];
    const unit = kind === "mamba1" ? "channel" : "head";
    const figures = [
      {
        title: `all heads`,
        fig: mixingGrid([values], H, T, {
          rowNames: [`layer ${layer}`],
          colNames: Array.from({ length: H }, (_, h) => `${unit} ${h}`),
          signed: kind !== "attention",
          cell: H > 16 ? 60 : 150,
        }),
      },
      // One large heatmap per head (the first 16 channels of a Mamba-1 layer).
      ...Array.from({ length: Math.min(H, 16) }, (_, h) => ({
        title: `${unit} ${h}`,
        fig: heatmap(values.subarray(h * T * T, (h + 1) * T * T), T, T, { signed: kind !== "attention" }),
      })),
    ];
    await Deno.writeTextFile(f.html, await standaloneHtml(`layer ${layer}: ${what}`, figures));
  }
  console.log(`mixing [${H}, ${T}, ${T}] (${kind}, layer ${layer}) → ${out}${f.html ? `, ${f.html}` : ""}`);
}
