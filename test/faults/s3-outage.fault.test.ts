/**
 * The S3-compatible server (real MinIO) stopped for a few seconds and started again on the same data folder and
 * port, at six points of a run: as planning starts; while planRun writes the plan files (some written, one held
 * by the store gate when the server stops); while shards read and write; and in commitRun, just before the
 * manifest is written and just after (the manifest stored, its reply held, so the attempt fails after the commit
 * landed). Store errors fail the attempt, Temporal retries it, the retry rewrites the same files (a retried commit
 * whose manifest had landed finds the run's own commit and writes nothing), and the committed window equals a
 * fault-free run's: one manifest, one plan, the same rows and counts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { keys, shardName } from '../../lib/shared/keys';
import { measureFault, storeRequests, useFaultRig, WINDOW } from './support/fault-rig';
import { waitUntil } from '../support/wait-until';
import { CLEAN } from './support/fault-record';
import type { HeldRequest } from './support/store-gate';

jest.setTimeout(300_000);

const DOWN_MS = 4_000;

const rig = useFaultRig({ devices: 1500, sensors: 4, shardSize: 250, s3: true });

test('the store down when the run starts (planning)', async () => {
  const result = await measureFault(rig, 'S3 server down for 4 s', 'planning', async () => {
    await rig.startWorkers(2);
    await rig.s3!.kill();
    const handle = await rig.start('s3-plan');
    await sleep(DOWN_MS);
    await rig.s3!.restart();
    return { injected: 1, summary: await rig.result(handle) };
  });
  expect(result.record.runsCompleted).toBe(1);
  expect(result).toMatchObject(CLEAN);
});

test.each([
  ['first shards', 0],
  ['late shards', 3],
])('the store down while the %s read and write', async (point, shardsDone) => {
  const result = await measureFault(rig, 'S3 server down for 4 s', point, async () => {
    await rig.startWorkers(2);
    const handle = await rig.start('s3');
    await rig.waitForShard(handle, { shardsDone });
    await rig.s3!.kill();
    await sleep(DOWN_MS);
    await rig.s3!.restart();
    return { injected: 1, summary: await rig.result(handle) };
  });
  expect(result.record.runsCompleted).toBe(1);
  expect(result).toMatchObject(CLEAN);
});

/** Stops the store while `held` waits in the gate, resets the held request, and starts the store again. */
async function outageAt(held: HeldRequest): Promise<void> {
  await rig.s3!.kill();
  held.drop();
  await sleep(DOWN_MS);
  await rig.s3!.restart();
}

test('the store down while planRun writes the plan files (half written)', async () => {
  const gate = rig.gate!;
  const since = gate.forwarded.length;
  const result = await measureFault(rig, 'S3 server down for 4 s', 'plan files half written', async () => {
    await rig.startWorkers(2);
    const caught = gate.hold(storeRequests.planWrite(3));
    const handle = await rig.start('s3-plan-write');
    const held = await caught;
    // The other five plan files land; shard 3's never does in this attempt.
    await waitUntil('five plan files are written', () => gate.succeeded(storeRequests.planWrite(), since) === 5);
    await outageAt(held);
    return { injected: 1, summary: await rig.result(handle) };
  });
  expect(result.record.runsCompleted).toBe(1);
  expect(result).toMatchObject(CLEAN);
  // planRun was retried and rewrote its plan whole, under the same run id: shard 0's file again, shard 3's too.
  expect(gate.succeeded(storeRequests.planWrite(0), since)).toBeGreaterThanOrEqual(2);
  expect(gate.succeeded(storeRequests.planWrite(3), since)).toBeGreaterThanOrEqual(1);
  const { manifest } = await rig.committed();
  // The plan: the input parts it read, and one file a shard.
  expect(await rig.store.list(`${keys.runPrefix(WINDOW, manifest.runId)}_plan/`)).toEqual([
    keys.runInput(WINDOW, manifest.runId),
    ...[0, 1, 2, 3, 4, 5].map((n) => `${keys.runPrefix(WINDOW, manifest.runId)}_plan/${shardName(n)}.json`),
  ]);
  expect(await rig.manifestKeys()).toEqual([keys.manifest(WINDOW)]);
});

test.each([
  ['commit: before the manifest is written', 'request'],
  ['commit: manifest written, reply lost', 'response'],
] as const)('the store down in commitRun (%s)', async (point, phase) => {
  const gate = rig.gate!;
  const since = gate.forwarded.length;
  let runId = '';
  let committedWhenHeld = '';
  const result = await measureFault(rig, 'S3 server down for 4 s', point, async () => {
    await rig.startWorkers(2);
    const caught = gate.hold(storeRequests.manifestWrite, phase);
    const handle = await rig.start('s3-commit');
    runId = handle.firstExecutionRunId;
    const held = await caught;
    // The run the window's manifest names while the write is held: an earlier run's before it, this run's after.
    committedWhenHeld = (await rig.committed()).manifest.runId;
    await outageAt(held);
    return { injected: 1, summary: await rig.result(handle) };
  });
  expect(result.record.runsCompleted).toBe(1);
  expect(result).toMatchObject(CLEAN);
  if (phase === 'request') expect(committedWhenHeld).not.toBe(runId);
  else expect(committedWhenHeld).toBe(runId);
  // The manifest was written once: by the retried commitRun when the first write never landed; by the first
  // attempt when only its reply was lost, and then the retry found the run's own commit and wrote nothing.
  expect(gate.succeeded(storeRequests.manifestWrite, since)).toBe(1);
  if (phase === 'response') {
    const commitLogs = await rig.store.list(keys.unitLogsPrefix(WINDOW, runId, 'commit'));
    const text = (await Promise.all(commitLogs.map((k) => rig.store.get(k)))).map((b) => Buffer.from(b)).join('');
    expect(text).toContain('"event":"already-committed"');
  }
  // One manifest, this run's, with the reference's counts.
  const { manifest } = await rig.committed();
  expect(manifest.runId).toBe(runId);
  expect(manifest.counts).toEqual(rig.reference!.manifest.counts);
  expect(await rig.manifestKeys()).toEqual([keys.manifest(WINDOW)]);
});
