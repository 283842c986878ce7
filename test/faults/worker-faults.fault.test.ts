/**
 * Worker faults, each injected into real `fleetscore worker` processes at three points of a run (the first
 * shard, a middle shard, the late shards), with the committed window compared row for row with a fault-free run:
 * - SIGKILL mid-shard: heartbeats stop, Temporal retries the shard on another worker after the heartbeat
 *   timeout (a replacement worker starts at once, as a process supervisor would).
 * - a stuck shard (SIGSTOP): the heartbeat timeout fires and the shard is retried elsewhere; the stuck worker is
 *   then resumed, finishes its stale attempt late, and the commit must not change.
 * - SIGTERM while busy: the worker stops polling, finishes its in-flight shard, and exits 0.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { readRunLogs } from '../../lib/scoring/attempt-log';
import { measureFault, useFaultRig } from './support/fault-rig';
import { CLEAN, type CommittedRows } from './support/fault-record';

jest.setTimeout(300_000);

const SHARD_SIZE = 500;

/** Where the fault lands: the shard caught half-way (its 250th device's model read held, so it is surely mid-way). */
const POINTS = [
  ['first shard', 0],
  ['middle shard', 2],
  ['late shards', 5],
] as const;

const rig = useFaultRig({ devices: 3000, sensors: 4, shardSize: SHARD_SIZE });

/** Starts two workers and a run, and catches the worker scoring `shard` half-way (the hold made before the run). */
async function catchMidShard(label: string, shard: number) {
  await rig.startWorkers(2);
  const held = await rig.holdShard(shard, SHARD_SIZE / 2);
  try {
    const handle = await rig.start(label);
    return { handle, held, victim: await rig.readerOf(held) };
  } catch (err) {
    await held.release();
    throw err;
  }
}

test.each(POINTS)('SIGKILL of the worker scoring the %s', async (point, shard) => {
  const result = await measureFault(rig, 'worker SIGKILL mid-shard', point, async () => {
    const { handle, victim, held } = await catchMidShard('kill', shard);
    victim.signal('SIGKILL');
    await victim.exited;
    await held.release();
    await rig.killAndReplace(victim);
    return { injected: 1, summary: await rig.result(handle) };
  });
  expect(result.record.runsCompleted).toBe(1);
  expect(result).toMatchObject(CLEAN);
  // The killed attempt was retried: the held shard was committed by a later attempt.
  const { manifest } = await rig.committed();
  const retried = manifest.shards.filter((s) => (s.attempt ?? 1) > 1);
  expect(retried.map((s) => s.shard)).toContain(shard);
  // The killed attempt left its log, cut off before its end, and the retry says so. (Under load another shard
  // may be retried too, after a late heartbeat; its first attempt then ends normally.)
  const cutOff: Awaited<ReturnType<typeof readRunLogs>>[] = [];
  for (const { shard } of retried) {
    const logs = await readRunLogs(rig.store, manifest.window, manifest.runId, { shard });
    const first = logs.filter((e) => e.attempt === 1).map((e) => e.event);
    if (first[0] === 'attempt-started' && !first.includes('attempt-completed')) cutOff.push(logs);
  }
  expect(cutOff.length).toBeGreaterThan(0);
  expect(cutOff[0]).toContainEqual(
    expect.objectContaining({ attempt: 2, event: 'previous-attempt-cut-off', previousAttempt: 1 }),
  );
});

test.each(POINTS)('a stuck worker (SIGSTOP) on the %s: heartbeat timeout, retry elsewhere', async (point, shard) => {
  let before: CommittedRows | undefined;
  const result = await measureFault(rig, 'stuck shard (heartbeat timeout)', point, async () => {
    const { handle, victim, held } = await catchMidShard('stuck', shard);
    victim.signal('SIGSTOP');
    // The stopped worker keeps the file open and reads its bytes when resumed; the retry reads the file.
    await held.release();
    await rig.startWorkers(1);
    const summary = await rig.result(handle);
    before = await rig.committed();
    // Resume the stuck worker: its stale attempt finishes and writes late; the commit must stay the same.
    victim.signal('SIGCONT');
    await sleep(5_000);
    return { injected: 1, summary };
  });
  expect(result.record.runsCompleted).toBe(1);
  expect(result).toMatchObject(CLEAN);
  // The stale attempt rewrites its shard's files with the same bytes. If the stuck worker also held the run's
  // commit (a local activity of its workflow task), it may write the same run's manifest again when it wakes:
  // the same run, shards and outcomes, only `committedAt` newer.
  const after = await rig.committed();
  expect({ ...after.manifest, committedAt: '' }).toEqual({ ...before!.manifest, committedAt: '' });
  expect(after.rows).toEqual(before!.rows);
  expect(before!.manifest.shards.find((s) => s.shard === shard)?.attempt).toBeGreaterThan(1);
});

test.each(POINTS)('SIGTERM of the worker scoring the %s: it finishes the shard and exits 0', async (point, shard) => {
  let exitCode: number | null = null;
  const result = await measureFault(rig, 'worker SIGTERM while busy', point, async () => {
    const { handle, victim, held } = await catchMidShard('term', shard);
    victim.signal('SIGTERM');
    await held.release();
    await rig.startWorkers(1);
    exitCode = await victim.exited;
    rig.workers.splice(rig.workers.indexOf(victim), 1);
    return { injected: 1, summary: await rig.result(handle) };
  });
  expect(exitCode).toBe(0);
  expect(result.record.runsCompleted).toBe(1);
  expect(result).toMatchObject(CLEAN);
});
