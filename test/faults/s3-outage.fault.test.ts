/**
 * The S3-compatible server (real MinIO) stopped for a few seconds and started again on the same data folder and
 * port, at three points of a run: while planning (before any shard), and while shards read and write. Store
 * errors fail the attempt, Temporal retries it, and the committed window equals a fault-free run's.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { FaultRig, measureFault } from './support/fault-rig';

jest.setTimeout(300_000);

const DOWN_MS = 4_000;

let rig: FaultRig;

beforeAll(async () => {
  rig = await FaultRig.start({ devices: 1500, sensors: 4, shardSize: 250, s3: true });
  await rig.runReference();
});

afterAll(async () => {
  await rig?.close();
});

afterEach(async () => {
  await rig.stopWorkers();
});

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
  expect(result).toMatchObject({ lost: 0, duplicated: 0, unexpected: 0, changed: 0, outcomesDiffer: 0 });
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
  expect(result).toMatchObject({ lost: 0, duplicated: 0, unexpected: 0, changed: 0, outcomesDiffer: 0 });
});
