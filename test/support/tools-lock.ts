/**
 * A lock folder under .tools/ for building a tool once while parallel jest workers (or CI steps) wait: a live
 * holder is waited for, a dead one's lock is broken.
 */
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Runs `fn` while holding the lock folder `lock`; waits up to 30 minutes for a live holder. */
export async function withLock(lock: string, fn: () => Promise<void>): Promise<void> {
  await mkdir(dirname(lock), { recursive: true });
  const deadline = Date.now() + 30 * 60_000;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (await isStale(lock)) {
      await rm(lock, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}; delete it if no build is running`);
    await sleep(2_000);
  }
  try {
    await writeFile(join(lock, 'pid'), String(process.pid));
    await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

async function isStale(lock: string): Promise<boolean> {
  const pid = Number(await readFile(join(lock, 'pid'), 'utf8').catch(() => ''));
  if (pid > 0) {
    try {
      process.kill(pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
  // No pid yet: the holder is between mkdir and writeFile, unless it died there long ago.
  const info = await stat(lock).catch(() => undefined);
  return info !== undefined && Date.now() - info.mtimeMs > 60_000;
}
