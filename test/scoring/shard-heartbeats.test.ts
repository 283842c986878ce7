/**
 * What a shard's activity heartbeats to Temporal: nothing in its first second (the SDK would send the first call at
 * once, a round trip and a server write for every warm shard), then at most one call a second. The clock is jest's
 * (Date only; timers, I/O and microtasks are real), moved by the store as the shard reads its models.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { AggregatesCache } from '../../lib/arrow/aggregates-cache';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import { planRun } from '../../lib/scoring/plan-run';
import type { ShardRequest, ShardSummary } from '../../lib/shared/run-types';
import { LocalStore } from '../../lib/store/local-store';

const WINDOW = '2026-11-21T11';
const RUN = 'run-1';
const START = Date.parse('2026-12-07T16:00:00Z');

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-heartbeats-'));
  const store = new LocalStore(dir);
  await seedDemoFleet(store, { devices: 60, sensors: 2, hours: 1, endMs: Date.parse('2026-11-21T12:00Z'), seed: 4 });
  await planRun(store, { store: store.uri, window: WINDOW, shardSize: 100, pool: 'cpu', runId: RUN });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  jest.useFakeTimers({
    doNotFake: [
      'setTimeout',
      'clearTimeout',
      'setInterval',
      'clearInterval',
      'setImmediate',
      'clearImmediate',
      'nextTick',
      'queueMicrotask',
      'hrtime',
      'performance',
    ],
    now: START,
  });
});

afterEach(() => {
  jest.useRealTimers();
});

/** A local store on which every model file read moves the clock `stepMs` on. */
class SlowModelStore extends LocalStore {
  constructor(
    root: string,
    private readonly stepMs: number,
  ) {
    super(root);
  }

  override tryGet(key: string): Promise<Uint8Array | undefined> {
    if (key.startsWith('models/')) jest.setSystemTime(Date.now() + this.stepMs);
    return super.tryGet(key);
  }
}

/** Scores the run's one shard through the activity; the clock's reading at each heartbeat, from the start. */
async function heartbeatsOf(store: LocalStore): Promise<number[]> {
  const { scoreShard } = createActivities({
    openStore: () => store,
    sessions: new ModelSessionCache({ batching: false }),
    aggregates: new AggregatesCache(),
  });
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('WARN') });
  const at: number[] = [];
  env.on('heartbeat', () => at.push(Date.now() - START));
  const req: ShardRequest = { store: store.uri, window: WINDOW, windowHours: 1, runId: RUN, shard: 0 };
  const summary = await env.run<[ShardRequest], ShardSummary, typeof scoreShard>(scoreShard, req);
  expect(summary.scored).toBe(60);
  return at;
}

test('a shard done within its first second sends no heartbeat', async () => {
  expect(await heartbeatsOf(new LocalStore(dir))).toEqual([]);
});

test('a longer shard heartbeats from its first second on, at most once a second', async () => {
  // 60 devices, each reading its model.json and model.onnx: 100 ms a file makes a shard of about 12 s.
  const at = await heartbeatsOf(new SlowModelStore(dir, 100));
  expect(at.length).toBeGreaterThanOrEqual(2);
  expect(at[0]).toBeGreaterThanOrEqual(1_000);
  for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(1_000);
});
