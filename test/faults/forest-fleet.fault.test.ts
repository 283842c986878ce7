/**
 * A fleet of large isolation forests (300 trees each, exported by skl2onnx, about 2.5 MB of ONNX and thousands
 * of nodes per model; onnxruntime-node takes tens of seconds to create a session for one, blocking its thread)
 * scored by a real `fleetscore worker` under a 3 s shard heartbeat timeout: the fast path compiles the forests in
 * worker threads, so the worker's event loop keeps heartbeating and running workflow tasks, and the run completes
 * with no heartbeat, activity or workflow-task timeout. The forests are made once by the benchmark's generator
 * (bench/make_fleet.py in its Python venv) and cached under .cache/bench/fleets.
 */
import { benchFleet } from '../../bench/fleets';
import { ensurePeerPython } from '../../bench/peer-python';
import { parseWindow } from '../../lib/shared/window';
import { FaultRig, WINDOW } from './support/fault-rig';
import { recordFault } from './support/fault-record';

// The first run on a machine trains and converts the forests (skl2onnx takes minutes per 300-tree forest).
jest.setTimeout(1_500_000);

const DEVICES = 2;
const TREES = 300;

const rig = FaultRig.create({
  devices: DEVICES,
  sensors: 7,
  shardSize: 1,
  stacked: true,
  fleet: async (storeDir) => {
    const python = await ensurePeerPython();
    const window = parseWindow(WINDOW);
    await benchFleet('isolation-forest', DEVICES, TREES, window, storeDir, python, 2, storeDir);
  },
});

beforeAll(() => rig.init());
afterAll(async () => {
  await rig.stopWorkers();
  await rig.close();
});

test('300-tree forests are scored cold with no heartbeat or workflow-task timeout', async () => {
  const started = Date.now();
  await rig.startWorkers(1);
  const handle = await rig.start('forests');
  const summary = await rig.result(handle, 600_000);
  const history = await handle.fetchHistory();
  const timeouts = (history.events ?? []).filter(
    (e) => e.activityTaskTimedOutEventAttributes || e.workflowTaskTimedOutEventAttributes,
  );
  const { manifest } = await rig.committed();
  await recordFault({
    fault: `${TREES}-tree isolation forests, cold worker, 3 s heartbeat timeout (no fault injected)`,
    point: 'cold',
    injected: 0,
    runs: 1,
    runsCompleted: summary.scored === DEVICES && timeouts.length === 0 ? 1 : 0,
    lost: DEVICES - summary.scored,
    duplicated: 0,
    seconds: Math.round((Date.now() - started) / 100) / 10,
  });
  expect(timeouts).toEqual([]);
  expect(summary).toMatchObject({ scored: DEVICES, failed: 0 });
  expect(Object.values(manifest.devices).map((o) => o.status === 'scored' && o.path)).toEqual(
    new Array(DEVICES).fill('compiled:tree-ensemble'),
  );
  expect(manifest.shards.every((s) => s.attempt === 1)).toBe(true);
});
