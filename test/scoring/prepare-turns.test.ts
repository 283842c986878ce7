/**
 * Two shards that share a thread's caches prepare their models in turns: while one is reading and compiling, the
 * other reads no model; once the first is done, the second goes on, and both score every device. Within its turn a
 * shard reads as many devices' models at once as its store wants (`concurrentReads`: S3's round trips overlap).
 * They score their prepared devices in turns too: the first to prepare scores all of its devices before the other
 * scores any, so it finishes first rather than both together; the other heartbeats while it waits.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AggregatesCache } from '../../lib/arrow/aggregates-cache';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import { planRun } from '../../lib/scoring/plan-run';
import { scoreShard, type ShardContext } from '../../lib/scoring/score-shard';
import type { ShardSummary } from '../../lib/shared/run-types';
import { Turns } from '../../lib/shared/concurrency';
import { registerModel, type ModelMetaInput } from '../../lib/models/model-registry';
import { keys } from '../../lib/shared/keys';
import { parseWindow } from '../../lib/shared/window';
import { LocalStore } from '../../lib/store/local-store';
import type { ObjectStore } from '../../lib/store/object-store';
import { aggregatesPart } from '../support/aggregates-part';
import { quiet } from '../support/run-window';
import { sklearnCases, sklearnFixture } from '../support/sklearn-cases';
import { waitUntil } from '../support/wait-until';

const WINDOW = '2026-11-21T11';
const RUN = 'run-turns';

let dir: string;
let sessions: ModelSessionCache;

/** A shard's context with a quiet log, and `overrides`. */
const shardContext = (overrides: Partial<ShardContext> = {}): ShardContext => ({
  attempt: 1,
  taskQueue: 'q',
  workflowId: 'wf',
  workflowRunId: RUN,
  heartbeat: () => {},
  log: quiet,
  ...overrides,
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-turns-'));
  sessions = new ModelSessionCache();
});

afterEach(async () => {
  await sessions.close();
  await rm(dir, { recursive: true, force: true });
});

test('Turns runs work one at a time, in the order handed in, and goes on after a failure', async () => {
  const turns = new Turns();
  const events: string[] = [];
  const step =
    (name: string, fail = false) =>
    async () => {
      events.push(`${name} start`);
      await sleep(5);
      events.push(`${name} end`);
      if (fail) throw new Error(`${name} failed`);
      return name;
    };
  const results = await Promise.allSettled([turns.run(step('a')), turns.run(step('b', true)), turns.run(step('c'))]);
  expect(events).toEqual(['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
  expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
});

test('a run aborted before its turn rejects at once and its work never runs; one that has started settles as its work does', async () => {
  const turns = new Turns();
  let release!: () => void;
  const first = new AbortController();
  const held = turns.run(() => new Promise<string>((r) => (release = () => r('first'))), first.signal);
  const waiting = new AbortController();
  let ran = false;
  const skipped = turns.run(async () => void (ran = true), waiting.signal);
  const after = turns.run(async () => 'after');
  waiting.abort(new Error('cancelled while waiting'));
  await expect(skipped).rejects.toThrow('cancelled while waiting');
  // Handed in already aborted: the same.
  await expect(turns.run(async () => void (ran = true), waiting.signal)).rejects.toThrow('cancelled while waiting');
  // Aborted once started: the work goes on, and the run settles with it.
  first.abort(new Error('too late'));
  release();
  await expect(held).resolves.toBe('first');
  await expect(after).resolves.toBe('after');
  expect(ran).toBe(false);
});

test('two shards sharing prepare turns never read models at the same time, and both score every device', async () => {
  const local = new LocalStore(dir);
  await seedDemoFleet(local, { devices: 8, sensors: 2, hours: 1, endMs: Date.parse('2026-11-21T12:00Z'), seed: 3 });
  const plan = await planRun(local, { store: local.uri, window: WINDOW, shardSize: 4, pool: 'cpu', runId: RUN });
  expect(plan.shards).toHaveLength(2);

  // Every model read waits until released; each is recorded by device.
  const reads: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const store: ObjectStore = Object.assign(Object.create(local) as LocalStore, {
    tryGet: async (key: string, options?: Parameters<ObjectStore['tryGet']>[1]) => {
      if (key.endsWith('model.onnx')) {
        reads.push(key.split('/')[1]!);
        await gate;
      }
      return local.tryGet(key, options);
    },
  });
  const deps = { store, sessions, aggregates: new AggregatesCache(), prepareTurns: new Turns() };
  const ctx = shardContext();
  const shard = (n: number) =>
    scoreShard(deps, { store: local.uri, window: WINDOW, windowHours: 1, runId: RUN, shard: n }, ctx);
  const both = Promise.all([shard(0), shard(1)]);

  await waitUntil('one shard reads its four models', () => reads.length >= 4, 10_000);
  await sleep(200);
  // The reads held are one shard's four devices: the other shard has read none of its models meanwhile.
  const halves = [
    ['dev-00001', 'dev-00002', 'dev-00003', 'dev-00004'],
    ['dev-00005', 'dev-00006', 'dev-00007', 'dev-00008'],
  ];
  expect(halves).toContainEqual([...reads].sort());
  release();
  const summaries = await both;
  expect(summaries.map((s) => s.scored)).toEqual([4, 4]);
  // Then the other shard read its four: every device's model once, shard by shard.
  expect(halves).toContainEqual([...reads.slice(4)].sort());
  expect([...reads].sort()).toEqual(halves.flat());
});

test('two shards sharing infer turns score their devices one shard after the other, first prepared first', async () => {
  // 2 shards of 60 autoencoders (compiled programs, scored device by device with a heartbeat every 25).
  const local = new LocalStore(dir);
  const { schema: _s, sha256: _h, ...meta } = JSON.parse(sklearnFixture('autoencoder', 'model.json').toString('utf8'));
  const onnxBytes = new Uint8Array(sklearnFixture('autoencoder', 'model.onnx'));
  const devices = Array.from({ length: 120 }, (_, i) => `ae-${String(i).padStart(3, '0')}`);
  for (const device of devices) await registerModel(local, { device, onnx: onnxBytes, meta: meta as ModelMetaInput });
  const { features, rows } = sklearnCases('autoencoder');
  const window = parseWindow(WINDOW);
  const values = Object.fromEntries(features.map((f, j) => [f, rows.map((r) => r[j]!)]));
  const part = devices.map((device) => ({ device, minutes: rows.map((_, i) => i), values }));
  await local.put(
    keys.aggregatesPart(window.id, 0),
    aggregatesPart(window, part, Object.fromEntries(features.map((f) => [f, 'float' as const]))),
  );
  await planRun(local, { store: local.uri, window: WINDOW, shardSize: 60, pool: 'cpu', runId: RUN });

  const deps = {
    store: local,
    sessions,
    aggregates: new AggregatesCache(),
    prepareTurns: new Turns(),
    inferTurns: new Turns(),
  };
  // Each shard's heartbeats once it has prepared are its inference's (devices 0, 25 and 50).
  const preparedOrder: number[] = [];
  const inferred: string[] = [];
  const shard = (n: number) => {
    let prepared = false;
    const ctx = shardContext({
      prepared: () => {
        prepared = true;
        preparedOrder.push(n);
      },
      heartbeat: ({ devicesDone }) => void (prepared && inferred.push(`${n}:${devicesDone}`)),
    });
    return scoreShard(deps, { store: local.uri, window: WINDOW, windowHours: 1, runId: RUN, shard: n }, ctx);
  };
  // Warm first, so that the second shard prepares without a store read, within the first's inference.
  await Promise.all([shard(0), shard(1)]);
  preparedOrder.length = 0;
  inferred.length = 0;
  const summaries = await Promise.all([shard(0), shard(1)]);
  expect(summaries.map((s) => s.scored)).toEqual([60, 60]);
  expect(summaries.map((s) => s.failed)).toEqual([0, 0]);
  const [first, second] = preparedOrder;
  expect(inferred).toEqual([`${first}:0`, `${first}:25`, `${first}:50`, `${second}:0`, `${second}:25`, `${second}:50`]);
});

/**
 * A shard of 4 devices that has prepared and waits for its turn to score, which another shard of its thread holds
 * until `release`; `ctx` is its context, `prepared` called as the shard's own.
 */
async function waitingToScore(ctx: ShardContext): Promise<{ scored: Promise<ShardSummary>; release(): Promise<void> }> {
  const local = new LocalStore(dir);
  await seedDemoFleet(local, { devices: 4, sensors: 2, hours: 1, endMs: Date.parse('2026-11-21T12:00Z'), seed: 3 });
  await planRun(local, { store: local.uri, window: WINDOW, shardSize: 4, pool: 'cpu', runId: RUN });
  const inferTurns = new Turns();
  let release!: () => void;
  const held = inferTurns.run(() => new Promise<void>((r) => (release = r)));
  let prepared = false;
  const deps = { store: local, sessions, aggregates: new AggregatesCache(), inferTurns };
  const req = { store: local.uri, window: WINDOW, windowHours: 1, runId: RUN, shard: 0 };
  const scored = scoreShard(deps, req, {
    ...ctx,
    prepared: () => {
      prepared = true;
      ctx.prepared?.();
    },
  });
  await waitUntil('the shard prepares its models', () => prepared, 10_000);
  return {
    scored,
    release: async () => {
      release();
      await held;
    },
  };
}

test('a shard waiting for its turn to score its devices heartbeats meanwhile', async () => {
  let waitingBeats = -1;
  const { scored, release } = await waitingToScore(
    shardContext({
      prepared: () => void (waitingBeats = 0),
      heartbeat: () => void (waitingBeats >= 0 && waitingBeats++),
    }),
  );
  // Stacked Mahalanobis models score without a heartbeat of their own: these come from the timer, once a second.
  await waitUntil('two heartbeats while the shard waits to score', () => waitingBeats >= 2, 10_000);
  await release();
  expect((await scored).scored).toBe(4);
}, 30_000);

test('a shard cancelled while it waits for its turn to score fails at once, not when the turn comes', async () => {
  const cancel = new AbortController();
  const { scored, release } = await waitingToScore(shardContext({ signal: cancel.signal }));
  cancel.abort(new Error('the attempt was cancelled'));
  await expect(scored).rejects.toThrow('the attempt was cancelled');
  await release();
});

test.each([
  ['a local store', undefined, 8],
  ['a store that asks for 16 (a remote one, as S3 asks for 32)', 16, 16],
])('a shard reads as many models at once as its store wants: %s', async (_s, concurrentReads, expected) => {
  const local = new LocalStore(dir);
  await seedDemoFleet(local, { devices: 40, sensors: 2, hours: 1, endMs: Date.parse('2026-11-21T12:00Z'), seed: 3 });
  await planRun(local, { store: local.uri, window: WINDOW, shardSize: 40, pool: 'cpu', runId: RUN });
  // Every model.json read waits until released.
  let waiting = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const store: ObjectStore = Object.assign(Object.create(local) as LocalStore, {
    ...(concurrentReads !== undefined && { concurrentReads }),
    tryGet: async (key: string, options?: Parameters<ObjectStore['tryGet']>[1]) => {
      if (key.endsWith('model.json')) {
        waiting++;
        await gate;
      }
      return local.tryGet(key, options);
    },
  });
  const deps = { store, sessions, aggregates: new AggregatesCache() };
  const ctx = shardContext();
  const scored = scoreShard(deps, { store: local.uri, window: WINDOW, windowHours: 1, runId: RUN, shard: 0 }, ctx);
  await waitUntil(`${expected} model.json reads at once`, () => waiting >= expected, 10_000);
  await sleep(200);
  expect(waiting).toBe(expected);
  release();
  expect((await scored).scored).toBe(40);
});
