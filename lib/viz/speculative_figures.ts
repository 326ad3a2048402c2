/**
 * Figures of speculative decoding (method.md §3.9): what each round did with its K drafts, and the
 * speedup against plain decoding.
 *
 * @module
 */
import type { RoundRecord } from "../decode/speculative.ts";
import type { Figure } from "./plotly.ts";

/** Options of {@linkcode roundsFigure}. */
export interface RoundsFigureOptions {
  /** Text of a token id (for the hover labels); default the id. */
  label?: (token: number) => string;
  /** Figure title (default: "speculative rounds (K = …)"). */
  title?: string;
}

/**
 * A stacked bar per round: the accepted drafts (green), the first rejected draft (red), the drafts
 * never checked after it (grey), and the token the target adds (blue: resampled after a rejection,
 * the bonus token when all K were accepted). Every bar is K + 1 high; hover shows the tokens.
 */
export function roundsFigure(rounds: RoundRecord[], K: number, opts: RoundsFigureOptions = {}): Figure {
  const label = opts.label ?? String;
  const x = rounds.map((_, i) => i + 1);
  const trace = (name: string, color: string, y: number[], text: string[]) => ({
    type: "bar",
    name,
    x,
    y,
    text,
    hoverinfo: "text+name",
    textposition: "none",
    marker: { color },
  });
  const words = (ts: number[]) => ts.map((t) => JSON.stringify(label(t))).join(" ");
  return {
    data: [
      trace(
        "accepted drafts",
        "#2ca02c",
        rounds.map((r) => r.accepted),
        rounds.map((r) => words(r.drafts.slice(0, r.accepted))),
      ),
      trace(
        "rejected draft",
        "#d62728",
        rounds.map((r) => (r.accepted < K ? 1 : 0)),
        rounds.map((r) => (r.accepted < K ? words([r.drafts[r.accepted]]) : "")),
      ),
      trace(
        "not checked",
        "#c7c7c7",
        rounds.map((r) => Math.max(0, K - r.accepted - 1)),
        rounds.map((r) => words(r.drafts.slice(r.accepted + 1))),
      ),
      trace(
        "target's token",
        "#1f77b4",
        rounds.map(() => 1),
        rounds.map((r) => `${r.accepted < K ? "resampled" : "bonus"} ${words([r.token])}`),
      ),
    ],
    layout: {
      barmode: "stack",
      title: { text: opts.title ?? `speculative rounds (K = ${K})` },
      xaxis: { title: { text: "round" } },
      yaxis: { title: { text: "tokens" }, dtick: 1 },
      width: 720,
      height: 360,
    },
  };
}

/**
 * Expected speedup of speculative over plain decoding (Leviathan et al. 2023, §3.4) for an acceptance
 * rate α, lookahead K, a draft step costing `c` target steps and a (K + 1)-token verification costing
 * `v` target steps: (1 − α^{K+1}) / ((1 − α) · (K·c + v)) tokens per target step.
 */
export function expectedSpeedup(alpha: number, K: number, c: number, v = 1): number {
  const tokens = alpha >= 1 ? K + 1 : (1 - alpha ** (K + 1)) / (1 - alpha);
  return tokens / (K * c + v);
}
