/**
 * The durable attempt log against a real local store: written when the attempt starts, rewritten at checkpoints,
 * and a retry says when the attempt before it was cut off (its worker killed) and where it got to.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keys } from '../../lib/shared/keys';
import { AttemptLog } from '../../lib/scoring/attempt-log';
import { LocalStore } from '../../lib/store/local-store';
import { AggregatesCache } from '../../lib/arrow/aggregates-cache';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import { planRun } from '../../lib/scoring/plan-run';
import { scoreShard } from '../../lib/scoring/score-shard';
import { quiet } from '../support/run-window';

const WINDOW = '2026-11-21T11';
const PLAN = 'plan-1';

let dir: string;
let store: LocalStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-attempt-log-'));
  store = new LocalStore(dir);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function events(unit: number | 'commit', attempt: number): Promise<Record<string, unknown>[]> {
  const text = Buffer.from(await store.get(keys.attemptLog(WINDOW, PLAN, unit, attempt))).toString('utf8');
  return text
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

test('a cut-off attempt leaves its log, and the retry records where it stopped', async () => {
  const first = new AttemptLog(store, WINDOW, PLAN, 7, 1);
  first.add({ event: 'attempt-started', level: 'info' });
  await first.flush();
  // The first checkpoint comes after the interval: right after a write there is nothing to do.
  await first.checkpoint({ event: 'progress', level: 'info', devicesDone: 25 });
  expect(await events(7, 1)).toEqual([expect.objectContaining({ event: 'attempt-started', shard: 7, attempt: 1 })]);

  const second = new AttemptLog(store, WINDOW, PLAN, 7, 2);
  second.add({ event: 'attempt-started', level: 'info' });
  await second.notePreviousAttempt();
  await second.flush();
  expect((await events(7, 2))[1]).toMatchObject({
    event: 'previous-attempt-cut-off',
    level: 'warn',
    previousAttempt: 1,
    log: keys.attemptLog(WINDOW, PLAN, 7, 1),
    lastEvent: { event: 'attempt-started' },
  });

  // An attempt that ended (completed or failed) is not reported by the next one.
  await second.failed(new Error('store down'), { info: () => undefined, warn: () => undefined });
  expect((await events(7, 2)).at(-1)).toMatchObject({ event: 'attempt-failed', error: 'Error: store down' });
  const third = new AttemptLog(store, WINDOW, PLAN, 7, 3);
  third.add({ event: 'attempt-started', level: 'info' });
  await third.notePreviousAttempt();
  await third.flush();
  expect((await events(7, 3)).map((e) => e.event)).toEqual(['attempt-started']);
});

test('the next log of a unit is numbered after those in the store', async () => {
  const first = await AttemptLog.next(store, WINDOW, PLAN, 'commit');
  expect(first.key).toBe(keys.attemptLog(WINDOW, PLAN, 'commit', 1));
  first.add({ event: 'attempt-started', level: 'info' });
  await first.flush();
  const second = await AttemptLog.next(store, WINDOW, PLAN, 'commit');
  expect(second.key).toBe(keys.attemptLog(WINDOW, PLAN, 'commit', 2));
  await second.notePreviousAttempt();
  await second.flush();
  expect((await events('commit', 2))[0]).toMatchObject({ event: 'previous-attempt-cut-off', previousAttempt: 1 });
});

test('a retry whose previous attempt left no log at all says so', async () => {
  const log = new AttemptLog(store, WINDOW, PLAN, 'commit', 2);
  await log.notePreviousAttempt();
  await log.flush();
  expect(await events('commit', 2)).toEqual([
    expect.objectContaining({ event: 'previous-attempt-cut-off', unit: 'commit', log: null, lastEvent: null }),
  ]);
});

test('checkpoints rewrite the log with a progress line once the interval has passed', async () => {
  jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
  try {
    const log = new AttemptLog(store, WINDOW, PLAN, 0, 1);
    log.add({ event: 'attempt-started', level: 'info' });
    await log.flush();
    jest.advanceTimersByTime(6_000);
    await log.checkpoint({ event: 'progress', level: 'info', devicesDone: 250 });
    expect((await events(0, 1)).map((e) => [e.event, e.devicesDone])).toEqual([
      ['attempt-started', undefined],
      ['progress', 250],
    ]);
  } finally {
    jest.useRealTimers();
  }
});

test('the write failure of a failed attempt goes to the logger, not in place of the error', async () => {
  const broken = new LocalStore(join(dir, 'file-not-folder'));
  await store.put('file-not-folder', new Uint8Array([1]));
  const warnings: Record<string, unknown>[] = [];
  const log = new AttemptLog(broken, WINDOW, PLAN, 0, 1);
  await log.failed(new Error('boom'), { info: () => undefined, warn: (_m, attrs) => void warnings.push(attrs ?? {}) });
  expect(warnings).toEqual([expect.objectContaining({ log: keys.attemptLog(WINDOW, PLAN, 0, 1) })]);
});

test('a shard scheduled again (activity attempt 1 again, as after a pool wait) keeps every earlier log', async () => {
  await seedDemoFleet(store, { devices: 3, sensors: 2, hours: 1, endMs: Date.parse('2026-11-21T12:00Z'), seed: 2 });
  const plan = await planRun(store, { store: store.uri, window: WINDOW, shardSize: 10, pool: 'cpu', runId: PLAN });
  const deps = { store, sessions: new ModelSessionCache(), aggregates: new AggregatesCache() };
  const ctx = {
    attempt: 1,
    taskQueue: 'q',
    workflowId: 'wf',
    workflowRunId: PLAN,
    heartbeat: () => undefined,
    log: quiet,
  };
  try {
    const req = { store: store.uri, window: WINDOW, windowHours: 1, runId: PLAN, shard: 0 };
    const first = await scoreShard(deps, req, ctx);
    const firstLog = await store.get(keys.attemptLog(WINDOW, PLAN, 0, 1));
    const second = await scoreShard(deps, req, ctx);
    expect([first.attempt, second.attempt]).toEqual([1, 2]);
    expect(await store.get(keys.attemptLog(WINDOW, PLAN, 0, 1))).toEqual(firstLog);
    expect((await events(0, 2))[0]).toMatchObject({ event: 'attempt-started', attempt: 2, activityAttempt: 1 });
    expect(plan.shards).toHaveLength(1);
  } finally {
    await deps.sessions.close();
  }
});
