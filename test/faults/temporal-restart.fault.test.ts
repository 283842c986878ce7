/**
 * The Temporal dev server killed (SIGKILL) during a run and restarted on the same SQLite file a second later, at
 * three points of the run. Workers and the client reconnect; the run completes from its durable history and the
 * committed window equals a fault-free run's, row for row.
 */
import { measureFault, useFaultRig } from './support/fault-rig';
import { CLEAN } from './support/fault-record';

jest.setTimeout(300_000);

const rig = useFaultRig({ devices: 3000, sensors: 4, shardSize: 500 });

test.each([
  ['first shard', 0],
  ['middle shard', 2],
  ['late shards', 3],
])('the dev server killed and restarted while the %s is scored', async (point, shardsDone) => {
  const result = await measureFault(rig, 'Temporal server SIGKILL + restart', point, async () => {
    await rig.startWorkers(2);
    const handle = await rig.start('server');
    await rig.waitForShard(handle, { shardsDone });
    await rig.crashTemporal(1_000);
    return { injected: 1, summary: await rig.result(handle) };
  });
  expect(result.record.runsCompleted).toBe(1);
  expect(result).toMatchObject(CLEAN);
});
