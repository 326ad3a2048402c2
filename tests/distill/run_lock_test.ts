import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import { acquireRunLock, RUN_LOCK_FILE } from "../../lib/distill/run_lock.ts";

const lockOf = (pid: number) =>
  JSON.stringify({ pid, host: Deno.hostname(), started: "2026-12-01T00:00:00.000Z" }) + "\n";

Deno.test("run lock: a second writer of one run directory is refused, naming the holder", async () => {
  const dir = await Deno.makeTempDir();
  {
    await using _held = await acquireRunLock(dir);
    await assert.rejects(() => acquireRunLock(dir), (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, new RegExp(`pid ${Deno.pid}`));
      return true;
    });
  }
  // Released on dispose: the next run takes it.
  await assert.rejects(() => Deno.stat(`${dir}/${RUN_LOCK_FILE}`), Deno.errors.NotFound);
  await using _again = await acquireRunLock(dir);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run lock: a lock of another live process is refused; a dead process's lock is taken over", async () => {
  const dir = await Deno.makeTempDir();
  const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    await Deno.writeTextFile(`${dir}/${RUN_LOCK_FILE}`, lockOf(sleeper.pid));
    await assert.rejects(() => acquireRunLock(dir), UsageError);
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
  }
  // The holder is gone now (as after kill -9 of `lab distill`): resume takes the lock.
  {
    await using _lock = await acquireRunLock(dir);
    const info = JSON.parse(await Deno.readTextFile(`${dir}/${RUN_LOCK_FILE}`));
    assert.equal(info.pid, Deno.pid);
  }
  // A half-written lock (the writer died while creating it) is stale too.
  await Deno.writeTextFile(`${dir}/${RUN_LOCK_FILE}`, '{"pid": 12');
  await using _lock = await acquireRunLock(dir);
  await Deno.remove(dir, { recursive: true });
});
