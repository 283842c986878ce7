/**
 * A fleet of large isolation forests (300 trees each, about 2.8 MB of ONNX and 8,000 nodes per model, the graph
 * skl2onnx writes; onnxruntime-node takes seconds to create a session for one, blocking its thread) scored by a
 * real `fleetscore worker` under a 3 s shard heartbeat timeout: the fast path compiles the forests in worker
 * threads, so the worker's event loop keeps heartbeating and running workflow tasks, and the run completes with no
 * heartbeat, activity or workflow-task timeout. The forests are fitted and written in TypeScript
 * (test/support/isolation-forest.ts), each device on its own data: no Python, seconds per forest. A worker
 * started afterwards on the same host reads the forests' saved programs instead of compiling them again, and
 * commits the same scores.
 */
import { keys } from '../../lib/shared/keys';
import { registerModel } from '../../lib/models/model-registry';
import { LocalStore } from '../../lib/store/local-store';
import { parseWindow } from '../../lib/shared/window';
import { aggregatesPart, type PartRows } from '../support/aggregates-part';
import { buildIsolationForestOnnx, fitIsolationForest } from '../support/isolation-forest';
import { random } from '../support/random';
import { FaultRig, WINDOW } from './support/fault-rig';
import { recordFault } from './support/fault-record';

jest.setTimeout(900_000);

const DEVICES = 4;
const TREES = 300;
const FEATURES = [...Array(7).keys()].map((j) => `s${j}`);

/** Each device's own forest, fitted on 300 rows of its own data, and 60 rows of the window (a few outliers). */
async function forestFleet(storeDir: string): Promise<void> {
  const store = new LocalStore(storeDir);
  const window = parseWindow(WINDOW);
  const rows: PartRows = [];
  for (let d = 0; d < DEVICES; d++) {
    const device = `forest-${d}`;
    const rand = random(1000 + d);
    const centre = FEATURES.map(() => rand() * 4 - 2);
    const draw = (shift: number) => centre.map((c) => Math.fround(c + (rand() + rand() + rand() - 1.5) + shift));
    const forest = fitIsolationForest(
      Array.from({ length: 300 }, () => draw(0)),
      TREES,
      d + 1,
    );
    const meta = { pool: 'cpu', features: FEATURES, input: { name: 'X' }, output: { name: 'scores' } } as const;
    await registerModel(store, {
      device,
      onnx: buildIsolationForestOnnx(forest),
      meta: { ...meta, anomalyWhen: 'below', threshold: 0 },
    });
    const x = Array.from({ length: 60 }, (_, i) => draw(i % 20 === 0 ? 8 : 0));
    const values = Object.fromEntries(FEATURES.map((f, j) => [f, x.map((r) => r[j]!)]));
    rows.push({ device, minutes: x.map((_, i) => i), values });
  }
  const columns = Object.fromEntries(FEATURES.map((f) => [f, 'float' as const]));
  await store.put(keys.aggregatesPart(window.id, 0), aggregatesPart(window, rows, columns));
}

const rig = FaultRig.create({
  devices: DEVICES,
  sensors: FEATURES.length,
  shardSize: 1,
  stacked: true,
  fleet: forestFleet,
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
  expect(summary).toMatchObject({ scored: DEVICES, failed: 0, rows: DEVICES * 60 });
  // The shifted rows (every 20th) are the anomalies the forests were not fitted on.
  expect(summary.anomalies).toBeGreaterThanOrEqual(DEVICES * 3);
  expect(Object.values(manifest.devices).map((o) => o.status === 'scored' && o.path)).toEqual(
    new Array(DEVICES).fill('compiled:tree-ensemble'),
  );
  expect(manifest.shards.every((s) => s.attempt === 1)).toBe(true);
  expect(await programOrigins(manifest.runId)).toEqual({ compiled: DEVICES });
});

test('a worker restarted on the same host reads the saved programs and commits the same scores', async () => {
  const first = await rig.committed();
  await rig.stopWorkers();
  await rig.startWorkers(1);
  const summary = await rig.result(await rig.start('forests-restarted'), 600_000);
  expect(summary).toMatchObject({ scored: DEVICES, failed: 0, rows: DEVICES * 60 });
  const again = await rig.committed();
  expect(again.manifest.runId).not.toBe(first.manifest.runId);
  expect(again.rows).toEqual(first.rows);
  expect(await programOrigins(again.manifest.runId)).toEqual({ saved: DEVICES });
});

/** Where the programs of a run's shards came from, summed over their logs' `fast-paths` events. */
async function programOrigins(runId: string): Promise<Record<string, number>> {
  const sums: Record<string, number> = {};
  for (const key of await rig.store.list(keys.runLogsPrefix(WINDOW, runId))) {
    for (const line of Buffer.from(await rig.store.get(key))
      .toString()
      .split('\n')) {
      if (!line.includes('"fast-paths"')) continue;
      const { programs } = JSON.parse(line) as { programs: Record<string, number> };
      for (const [origin, n] of Object.entries(programs)) sums[origin] = (sums[origin] ?? 0) + n;
    }
  }
  return sums;
}
