/**
 * Listeners of the training loop: a JSONL log, a terminal progress bar, and a live loss chart that
 * updates one notebook display in place.
 *
 * @module
 */
import { progressBar } from "../cli/progress.ts";
import { type DisplayFn, jupyterDisplay } from "../viz/display.ts";
import { figureBundle } from "../viz/plotly.ts";
import type { TrainEvent, TrainListener } from "./loop.ts";

export { type DisplayFn, jupyterDisplay };

/** Appends one JSON object per step to `path` (`step`, `loss`, `tokens`, parts, lr, grad norm, …). */
export function jsonlLogger(path: string, extra: Record<string, unknown> = {}): TrainListener {
  const enc = new TextEncoder();
  return {
    async log(events) {
      const lines = events.map((e) => JSON.stringify({ ...extra, ...flatten(e) })).join("\n") + "\n";
      await Deno.writeFile(path, enc.encode(lines), { append: true });
    },
  };
}

function flatten(e: TrainEvent): Record<string, unknown> {
  const { parts, ...rest } = e;
  return { ...rest, ...Object.fromEntries(Object.entries(parts).map(([k, v]) => [`loss_${k}`, v])) };
}

/** A progress bar on stderr with ETA and the current loss (and parts). */
export function terminalProgress(label = "train"): TrainListener {
  let bar: ReturnType<typeof progressBar> | null = null;
  let start = 0;
  return {
    start(info) {
      start = info.startStep;
      bar = progressBar(label, "steps");
    },
    log(events, total) {
      const e = events.at(-1)!;
      const parts = Object.entries(e.parts).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(" ");
      bar!.update(
        e.step - start,
        total - start,
        `loss ${e.loss.toFixed(4)}${parts ? ` (${parts})` : ""}` +
          ` | ${Math.round(e.tokensPerSecond)} tok/s`,
      );
    },
    end() {
      bar?.done();
    },
  };
}

/**
 * A live loss chart for notebooks: one display, updated in place at each log (Plotly figure, one
 * trace per loss part). Outside the Jupyter kernel it does nothing.
 */
export function notebookChart(
  title = "training loss",
  display: DisplayFn | undefined = jupyterDisplay(),
): TrainListener {
  const id = `train-${Date.now().toString(36)}`;
  const series = new Map<string, { x: number[]; y: number[] }>();
  let shown = false;
  const draw = async () => {
    if (!display) return;
    const data = [...series].map(([name, s]) => ({ type: "scatter", mode: "lines", name, x: s.x, y: s.y }));
    const last = [...series].map(([name, s]) => `${name} ${s.y.at(-1)?.toFixed(4)}`).join(", ");
    const fig = {
      data,
      layout: {
        title: { text: title },
        xaxis: { title: { text: "step" } },
        yaxis: { title: { text: "loss" } },
      },
    };
    await display(figureBundle(fig, `${title}: ${last}`), {
      raw: true,
      display_id: id,
      update: shown,
    });
    shown = true;
  };
  return {
    async log(events) {
      for (const e of events) {
        for (const [name, v] of [["loss", e.loss], ...Object.entries(e.parts)] as [string, number][]) {
          const s = series.get(name) ?? series.set(name, { x: [], y: [] }).get(name)!;
          s.x.push(e.step);
          s.y.push(v);
        }
      }
      await draw();
    },
  };
}
