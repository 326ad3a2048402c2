/**
 * A terminal progress bar with ETA on stderr (redrawn in place on a terminal; a line per 10% when
 * stderr is a file or pipe, so CI logs stay short).
 *
 * @module
 */

/** A running progress display. */
export interface ProgressBar {
  /** Reports `done` of `total` units, with an optional status text (current losses). */
  update: (done: number, total: number, status?: string) => void;
  /** Ends the line. */
  done: () => void;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${Math.round(s % 60).toString().padStart(2, "0")}s` : `${s.toFixed(0)}s`;
}

/** A progress bar labelled `label`, counting `unit`s. */
export function progressBar(label: string, unit: string): ProgressBar {
  const tty = Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  const start = performance.now();
  let lastDecile = -1;
  let drawn = false;
  return {
    update(done, total, status = "") {
      const elapsed = (performance.now() - start) / 1000;
      const eta = done > 0 ? elapsed / done * (total - done) : Infinity;
      const frac = total > 0 ? done / total : 1;
      if (tty) {
        const width = 30;
        const fill = Math.round(frac * width);
        const line = `\r${label} [${"#".repeat(fill)}${".".repeat(width - fill)}] ${done}/${total} ${unit}` +
          `  ${fmtTime(elapsed)} elapsed, ETA ${fmtTime(eta)}  ${status}  `;
        Deno.stderr.writeSync(enc.encode(line));
        drawn = true;
      } else {
        const decile = Math.floor(frac * 10);
        if (decile !== lastDecile) {
          lastDecile = decile;
          console.error(
            `${label}: ${done}/${total} ${unit}, ${fmtTime(elapsed)} elapsed, ETA ${fmtTime(eta)}`,
          );
        }
      }
    },
    done() {
      if (drawn) Deno.stderr.writeSync(enc.encode("\n"));
    },
  };
}
