/**
 * One writer per run directory: `lab distill` holds `DIR/run.lock` (the process id, host and start
 * time, JSON) while it runs, so a second process pointed at the same `--out` stops with a
 * {@linkcode UsageError} instead of interleaving checkpoints and metrics. The lock is taken with an
 * exclusive create; a lock left by a process that died (kill -9, power loss) is detected through
 * `/proc/<pid>` on the same host and taken over, so `--resume` after a crash needs no clean-up.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** File name of the lock inside the run directory. */
export const RUN_LOCK_FILE = "run.lock";

/** What the lock file holds. */
interface LockInfo {
  pid: number;
  host: string;
  started: string;
}

/** Whether the process that wrote `info` may still be running (unknown counts as running). */
async function mayBeAlive(info: LockInfo): Promise<boolean> {
  if (info.host !== Deno.hostname() || Deno.build.os !== "linux") return true;
  if (info.pid === Deno.pid) return true;
  try {
    await Deno.stat(`/proc/${info.pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Takes `dir/run.lock` for this process; throws a {@linkcode UsageError} naming the holder when
 * another live process has it. Dispose the result to release it.
 */
export async function acquireRunLock(dir: string): Promise<AsyncDisposable> {
  const path = `${dir}/${RUN_LOCK_FILE}`;
  const info: LockInfo = { pid: Deno.pid, host: Deno.hostname(), started: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await Deno.writeTextFile(path, JSON.stringify(info) + "\n", { createNew: true });
      return { [Symbol.asyncDispose]: () => Deno.remove(path).catch(() => {}) };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    let held: LockInfo | null = null;
    try {
      held = JSON.parse(await Deno.readTextFile(path));
    } catch {
      held = null; // unreadable or half-written: the writer died while creating it
    }
    if (held && typeof held.pid === "number" && await mayBeAlive(held)) {
      throw new UsageError(
        dir,
        `another process (pid ${held.pid} on ${held.host}, started ${held.started}) is writing this run; ` +
          `wait for it, or delete ${path} if no such process runs`,
      );
    }
    await Deno.remove(path).catch(() => {}); // stale: its process is gone
  }
  throw new UsageError(dir, `could not take ${path}: another process keeps creating it`);
}
