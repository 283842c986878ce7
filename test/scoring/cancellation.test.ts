/**
 * A cancelled shard attempt stops and writes nothing afterwards: its cancellation signal (what a workflow cancel,
 * a heartbeat timeout or a worker's drain timeout fires) is checked at every device and carried by every store call.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { AggregatesCache } from '../../lib/arrow/aggregates-cache';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import { planRun } from '../../lib/scoring/plan-run';
import { scoreShard } from '../../lib/scoring/score-shard';
import { keys } from '../../lib/shared/keys';
import { LocalStore } from '../../lib/store/local-store';
import { withSignal } from '../../lib/store/signal-store';
import { quiet } from '../support/run-window';

const WINDOW = '2026-11-21T11';
const RUN = 'run-1';

let dir: string;
let store: LocalStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-cancel-'));
  store = new LocalStore(dir);
  await seedDemoFleet(store, { devices: 60, sensors: 2, hours: 1, endMs: Date.parse('2026-11-21T12:00Z'), seed: 9 });
  await planRun(store, { store: store.uri, window: WINDOW, shardSize: 100, pool: 'cpu', runId: RUN });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('an attempt cancelled mid-shard stops at the next device and writes nothing more', async () => {
  const controller = new AbortController();
  const sessions = new ModelSessionCache({ batching: false });
  let beats = 0;
  const before = new Map<string, string>();
  const snapshot = async (into: Map<string, string>) => {
    for (const o of await store.listObjects(keys.predictionsPrefix(WINDOW)))
      into.set(o.key, `${o.size}@${o.lastModified.getTime()}`);
    for (const o of await store.listObjects(keys.logsPrefix(WINDOW)))
      into.set(o.key, `${o.size}@${o.lastModified.getTime()}`);
  };
  try {
    const attempt = scoreShard(
      { store: withSignal(store, controller.signal), sharedStore: store, sessions, aggregates: new AggregatesCache() },
      { store: store.uri, window: WINDOW, windowHours: 1, runId: RUN, shard: 0 },
      {
        attempt: 1,
        taskQueue: 'q',
        workflowId: 'wf',
        workflowRunId: RUN,
        log: quiet,
        signal: controller.signal,
        // The second heartbeat (25 devices in) brings the cancel, as the SDK delivers it.
        heartbeat: () => {
          if (++beats === 2) controller.abort(new CancelledFailure('CANCELLED'));
        },
      },
    );
    await expect(attempt).rejects.toBeInstanceOf(CancelledFailure);
    await snapshot(before);
    await new Promise((r) => setTimeout(r, 500));
    const after = new Map<string, string>();
    await snapshot(after);
    expect(after).toEqual(before);
    expect(beats).toBe(2);
    // Neither predictions nor a status: nothing of the shard's outcome, and the log ends where it was cut off.
    expect(await store.tryGet(keys.shardStatus(WINDOW, RUN, 0))).toBeUndefined();
    expect(await store.tryGet(keys.predictions(WINDOW, RUN, 0))).toBeUndefined();
    const log = Buffer.from(await store.get(keys.attemptLog(WINDOW, RUN, 0, 1))).toString('utf8');
    expect(log).not.toMatch(/attempt-(completed|failed)/);
  } finally {
    await sessions.close();
  }
});

test('every call through a signalled store rejects once the signal has fired', async () => {
  const controller = new AbortController();
  const signalled = withSignal(store, controller.signal);
  await signalled.put('scratch/a', 'x');
  controller.abort(new CancelledFailure('CANCELLED'));
  // The signal's reason or Node's AbortError: the SDK reports either as the attempt's cancellation.
  const cancelled = /CANCELLED|aborted/;
  await expect(signalled.put('scratch/b', 'y')).rejects.toThrow(cancelled);
  await expect(signalled.putIf('scratch/c', 'y', null)).rejects.toThrow(cancelled);
  await expect(signalled.delete('scratch/a')).rejects.toThrow(cancelled);
  await expect(signalled.get('scratch/a')).rejects.toThrow(cancelled);
  expect(await store.list('scratch/')).toEqual(['scratch/a']);
});
