/**
 * `report.html` of a distillation run: self-contained and offline (plotly.js inlined), with the loss
 * curves of every stage, teacher vs student validation perplexity after each stage, and a snapshot
 * of mixing matrices: the teacher's attention next to the student's SSM matrix at one converted
 * layer and head, on the first tokens of the validation text.
 *
 * @module
 */
import type { TextTokenizer } from "../io/tokenizer.ts";
import type { LlamaModel } from "../models/llama.ts";
import { lines } from "../viz/figures.ts";
import { mixingComparison } from "../viz/mixing_figures.ts";
import { type Figure, standaloneHtml } from "../viz/plotly.ts";
import { layerMixing } from "../mixing/layer_mixing.ts";
import { readTensors, Tensor } from "../tensor/tensor.ts";
import type { RunState } from "./run.ts";

/** What {@linkcode writeReport} draws from. */
export interface ReportInputs {
  state: RunState;
  metricsPath: string;
  teacher: LlamaModel;
  student: LlamaModel;
  tokenizer: TextTokenizer;
  /** Token ids whose first positions feed the mixing-matrix snapshot. */
  sample: Int32Array;
  /** Tokens of the snapshot (default 32). */
  snapshotTokens?: number;
}

/** Loss curves per stage from `metrics.jsonl` (one trace per stage and loss). */
export async function lossFigure(metricsPath: string): Promise<Figure> {
  const series: Record<string, { x: number[]; y: number[] }> = {};
  const text = await Deno.readTextFile(metricsPath);
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const e = JSON.parse(line) as Record<string, number | string>;
    const s = (series[String(e.stage)] ??= { x: [], y: [] });
    s.x.push(Number(e.step));
    s.y.push(Number(e.loss));
  }
  const fig = lines(series, { title: "training loss per stage", xTitle: "step (whole run)", yTitle: "loss" });
  fig.layout = { ...fig.layout, yaxis: { title: { text: "loss" }, type: "log" } };
  return fig;
}

/** Teacher vs student validation perplexity after each stage. */
export function perplexityFigure(state: RunState): Figure {
  const names = ["teacher", ...state.done.map((d) => d.name)];
  const ppl = [state.teacherPpl ?? NaN, ...state.done.map((d) => d.ppl)];
  return {
    data: [{
      type: "bar",
      x: names,
      y: ppl,
      text: ppl.map((p) => p.toFixed(2)),
      textposition: "outside",
      marker: { color: names.map((_, i) => i === 0 ? "#636efa" : "#ef553b") },
    }],
    layout: {
      title: { text: "validation perplexity (Brown, lower is better)" },
      yaxis: { title: { text: "perplexity" } },
    },
  };
}

/** The teacher's and the student's mixing matrices at the first converted layer, head 0. */
export async function mixingSnapshot(
  teacher: LlamaModel,
  student: LlamaModel,
  ids: Int32Array,
  tokens = 32,
): Promise<{ layer: number; figure: Figure } | null> {
  const layer = student.layers.findIndex((l) => l.mamba);
  if (layer < 0) return null;
  const T = Math.min(tokens, ids.length);
  using x = Tensor.from(ids.subarray(0, T), [1, T], "i32");
  const t = await layerMixing(teacher, x, layer);
  const s = await layerMixing(student, x, layer);
  const [tm, sm] = await readTensors([t.M, s.M]);
  t.M.dispose();
  s.M.dispose();
  const head = (m: Float32Array) => m.subarray(0, T * T);
  return {
    layer,
    figure: mixingComparison(head(tm as Float32Array), head(sm as Float32Array), T, {
      title: `layer ${layer}, head 0: teacher attention vs student ${s.kind} (first ${T} validation tokens)`,
      difference: true,
    }),
  };
}

/** Writes the report page. */
export async function writeReport(path: string, r: ReportInputs): Promise<void> {
  const st = r.state;
  const figures: { title?: string; fig: Figure }[] = [
    { title: "Loss curves", fig: await lossFigure(r.metricsPath) },
    { title: "Perplexity", fig: perplexityFigure(st) },
  ];
  const snap = await mixingSnapshot(r.teacher, r.student, r.sample, r.snapshotTokens);
  if (snap) {
    figures.push({ title: `Mixing matrices at layer ${snap.layer}`, fig: snap.figure });
  }
  const title = `Distillation report: ${st.recipe}, attention kept at [${st.attentionLayers.join(", ")}], ` +
    `${st.tokens.toLocaleString("en-US")} tokens`;
  await Deno.writeTextFile(path, await standaloneHtml(title, figures));
}
