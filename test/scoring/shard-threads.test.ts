/**
 * Shards scored on shard threads (the cpu pool's default) against a real local store: the same files and summary
 * as on the worker's event loop, heartbeats, logs and session metrics relayed, a new shard sent to an idle thread
 * (or kept waiting until a thread has prepared its shard) and later back to the thread whose caches hold its models,
 * errors rebuilt as their fleetscore classes, a cancel honoured, and each part of a window read by one thread and
 * taken by the other (the same predictions as the event loop's where devices' rows are split across parts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { tableFromIPC, tableToIPC } from 'apache-arrow';
import { AggregatesCache } from '../../lib/arrow/aggregates-cache';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import { cachedWindowDevices } from '../../lib/scoring/commit-run';
import { readJsonFile, type ShardPlanFile, type ShardStatusFile } from '../../lib/scoring/manifest';
import { planRun } from '../../lib/scoring/plan-run';
import { scoreShard, type ShardContext } from '../../lib/scoring/score-shard';
import { reviveError, ShardThreads, threadError } from '../../lib/scoring/shard-threads';
import { InvalidPlan, ModelChecksumMismatch } from '../../lib/shared/errors';
import { keys } from '../../lib/shared/keys';
import type { ShardRequest } from '../../lib/shared/run-types';
import { LocalStore } from '../../lib/store/local-store';
import { parseWindow } from '../../lib/shared/window';

jest.setTimeout(60_000);

const WINDOW = '2026-11-21T11';
const DEVICES = 40;

let dir: string;
let store: LocalStore;
let threads: ShardThreads;
const seen = { hits: 0, misses: 0, inferences: 0 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-shard-threads-'));
  store = new LocalStore(dir);
  await seedDemoFleet(store, {
    devices: DEVICES,
    sensors: 2,
    hours: 1,
    endMs: Date.parse('2026-11-21T12:00Z'),
    seed: 4,
  });
  threads = new ShardThreads({
    threads: 2,
    cache: {},
    observer: {
      cacheLookup: (hit) => void (hit ? seen.hits++ : seen.misses++),
      inference: () => void seen.inferences++,
    },
  });
  threads.start();
});

afterAll(async () => {
  await threads.close();
  await rm(dir, { recursive: true, force: true });
});

/** A shard context that records heartbeats and log lines. */
function recordingContext(signal?: AbortSignal) {
  const beats: number[] = [];
  const lines: { level: string; message: string; attrs?: Record<string, unknown> }[] = [];
  const ctx: ShardContext = {
    attempt: 1,
    taskQueue: 'q',
    workflowId: 'wf',
    workflowRunId: 'r',
    heartbeat: ({ devicesDone }) => void beats.push(devicesDone),
    log: {
      info: (message, attrs) => void lines.push({ level: 'info', message, attrs }),
      warn: (message, attrs) => void lines.push({ level: 'warn', message, attrs }),
    },
    ...(signal ? { signal } : {}),
  };
  return { ctx, beats, lines };
}

async function plan(runId: string, shardSize = DEVICES / 2): Promise<ShardRequest[]> {
  const p = await planRun(store, { store: store.uri, window: WINDOW, shardSize, pool: 'cpu', runId });
  return p.shards.map((s) => ({ store: store.uri, window: WINDOW, windowHours: 1, runId, shard: s.shard }));
}

const status = (req: ShardRequest) =>
  readJsonFile<ShardStatusFile>(store, keys.shardStatus(WINDOW, req.runId, req.shard), 'fleetscore.shard-status/v1');

test('a shard scored on a thread writes what the event loop writes, and its heartbeats and logs come back', async () => {
  const [onLoop] = await plan('on-loop');
  const [onThread] = await plan('on-thread');
  const sessions = new ModelSessionCache();
  try {
    const loop = recordingContext();
    const expected = await scoreShard({ store, sessions, aggregates: new AggregatesCache() }, onLoop!, loop.ctx);
    const thread = recordingContext();
    const got = await threads.score(onThread!, thread.ctx);

    const { durationMs: _a, ...expectedCounts } = expected;
    const { durationMs: _b, ...gotCounts } = got;
    expect(gotCounts).toEqual(expectedCounts);
    expect(got.scored).toBe(DEVICES / 2);
    expect((await status(onThread!)).devices).toEqual((await status(onLoop!)).devices);
    const predictions = (req: ShardRequest) => store.get(keys.predictions(WINDOW, req.runId, req.shard));
    expect(Buffer.from(await predictions(onThread!))).toEqual(Buffer.from(await predictions(onLoop!)));

    expect(thread.beats.length).toBeGreaterThan(0);
    expect(thread.lines).toContainEqual(
      expect.objectContaining({
        level: 'info',
        message: 'shard scored',
        attrs: expect.objectContaining({ scored: 20 }),
      }),
    );
  } finally {
    await sessions.close();
  }
});

test('a shard goes back to the thread that holds its models: the second hour is all cache hits', async () => {
  const first = await plan('hour-1');
  const before = { ...seen };
  // Both shards at once: one per thread.
  await Promise.all(first.map((req) => threads.score(req, recordingContext().ctx)));

  const second = await plan('hour-2');
  const hits = seen.hits;
  const misses = seen.misses;
  // One after the other this time: each still goes to the thread that scored it, although both are idle.
  for (const req of second) await threads.score(req, recordingContext().ctx);
  expect(seen.misses).toBe(misses);
  expect(seen.hits - hits).toBe(DEVICES);
  expect(seen.inferences).toBeGreaterThan(before.inferences);
  // Each shard has its own thread (with both idle, route answers where a shard went last).
  expect(threads.route(second[0]!)).not.toBe(threads.route(second[1]!));
});

test('a shard no thread has scored goes to the idle thread, whatever its number; then stays there', async () => {
  const fresh = new ShardThreads({ threads: 2, cache: {} });
  try {
    // Shards 0 and 2 at once, as a worker with two slots gets them when shard 1 finished first.
    const [zero, , two] = await plan('same-parity', DEVICES / 4);
    const both = [zero!, two!].map((req) => fresh.score(req, recordingContext().ctx));
    expect(fresh.route(zero!)).not.toBe(fresh.route(two!));
    await expect(Promise.all(both)).resolves.toMatchObject([{ scored: DEVICES / 4 }, { scored: DEVICES / 4 }]);

    // Next hour shard 2 comes alone, with both threads idle: it goes back to the thread that holds its models.
    const [, , later] = await plan('same-parity-2', DEVICES / 4);
    const placed = fresh.route(two!);
    expect(fresh.route(later!)).toBe(placed);
    await fresh.score(later!, recordingContext().ctx);
    expect(fresh.route(later!)).toBe(placed);
  } finally {
    await fresh.close();
  }
});

test('a shard no thread has scored waits for a thread with no shard preparing; a cancel or a close ends its wait', async () => {
  const fresh = new ShardThreads({ threads: 2, cache: {} });
  try {
    const [a, b, c, d] = await plan('waiting', DEVICES / 4);
    const first = [a!, b!].map((req) => fresh.score(req, recordingContext().ctx));
    // Both threads prepare a shard: a third waits, then goes to the thread that has prepared its shard first.
    expect(fresh.route(c!)).toBeUndefined();
    const third = fresh.score(c!, recordingContext().ctx);
    // A fourth is cancelled while it waits: it fails with the cancellation and never reaches a thread.
    const controller = new AbortController();
    const fourth = fresh.score(d!, recordingContext(controller.signal).ctx);
    controller.abort(new CancelledFailure('CANCELLED'));
    await expect(fourth).rejects.toBeInstanceOf(CancelledFailure);
    const quarter = { scored: DEVICES / 4 };
    await expect(Promise.all([...first, third])).resolves.toMatchObject([quarter, quarter, quarter]);
    expect([fresh.route(a!), fresh.route(b!)]).toContain(fresh.route(c!));
    expect(await store.tryGet(keys.shardStatus(WINDOW, 'waiting', d!.shard))).toBeUndefined();
  } finally {
    await fresh.close();
  }
  // Closing the threads fails a shard that waits for one too (on threads of their own: these shards have none yet).
  const closing = new ShardThreads({ threads: 2, cache: {} });
  const [e, f, g] = await plan('waiting-closed', DEVICES / 4);
  const running = [e!, f!].map((req) => expect(closing.score(req, recordingContext().ctx)).rejects.toThrow(/exited/));
  const waiting = expect(closing.score(g!, recordingContext().ctx)).rejects.toThrow('the shard threads were closed');
  await closing.close();
  await Promise.all([...running, waiting]);
});

test("an attempt's error comes back as its fleetscore class, naming the file", async () => {
  const [req] = await plan('bad-shard');
  const missing = { ...req!, shard: 99 };
  const err = await threads.score(missing, recordingContext().ctx).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidPlan);
  expect(err).toMatchObject({ name: 'InvalidPlan', file: keys.shardPlan(WINDOW, 'bad-shard', 99) });
  expect((err as InvalidPlan).retryable).toBe(false);

  // Rebuilt from data alone: class, message and every field; anything else stays a plain Error of its name.
  const original = new ModelChecksumMismatch('d1', 'models/d1/v1/model.onnx', 'aa', 'bb', 'models/index.json');
  const revived = reviveError(structuredClone(threadError(original)));
  expect(revived).toBeInstanceOf(ModelChecksumMismatch);
  expect({ ...revived }).toEqual({ ...original });
  expect(revived.message).toBe(original.message);
  expect((revived as ModelChecksumMismatch).scope).toBe('device');
  const plain = reviveError(threadError(new TypeError('boom')));
  expect(plain).toMatchObject({ name: 'TypeError', message: 'boom' });
});

test("a run's device ids come from a thread's cache, as the event loop reads them", async () => {
  const reqs = await plan('devices');
  // The thread that scores shard 0 has parsed the run's parts.
  await threads.score(reqs[0]!, recordingContext().ctx);
  const { parts } = await readJsonFile<ShardPlanFile>(
    store,
    keys.shardPlan(WINDOW, 'devices', 0),
    'fleetscore.shard-plan/v1',
  );
  const window = parseWindow(WINDOW);
  const onLoop = cachedWindowDevices(new AggregatesCache());
  const got = await threads.windowDevices({ store: store.uri, window, parts, runId: 'devices' });
  expect(got).toHaveLength(DEVICES);
  expect(got).toEqual(await onLoop(store, window, parts, 'devices'));

  // A part the store cannot give fails the question with the error the event loop gets.
  const missing = [...parts, `${parts[0]!.replace(/part-[^/]+$/, 'part-gone.arrow')}`];
  const expected = (await onLoop(store, window, missing, 'gone').catch((e: unknown) => e)) as Error;
  expect(expected).toBeInstanceOf(Error);
  const err = await threads.windowDevices({ store: store.uri, window, parts: missing, runId: 'gone' }).catch((e) => e);
  expect(err).toMatchObject({ name: expected.name, message: expected.message });
});

test("a run's parts read ahead by every thread are what its shards score, on either thread", async () => {
  // Two runs of the window; only the first one's parts are read ahead, as its planning worker does.
  let planned: { runId: string; parts: string[] } | undefined;
  const req = { store: store.uri, window: WINDOW, shardSize: DEVICES / 2, pool: 'cpu' as const };
  const ahead = await planRun(store, { ...req, runId: 'ahead' }, (p) => void (planned = p));
  await planRun(store, { ...req, runId: 'not-ahead' });
  expect(planned).toEqual({ runId: 'ahead', parts: expect.arrayContaining([expect.stringMatching(/\.arrow$/)]) });
  await threads.readAhead({ store: store.uri, window: parseWindow(WINDOW), ...planned! });
  // The parts gone from the store: the read-ahead run's shards score from the threads' caches, the other fails.
  const saved = await Promise.all(planned!.parts.map(async (k) => [k, await store.get(k)] as const));
  try {
    await Promise.all(planned!.parts.map((k) => store.delete(k)));
    const shard = (runId: string, n: number) => ({ store: store.uri, window: WINDOW, windowHours: 1, runId, shard: n });
    // The two shards go to the two threads (where earlier tests placed shards 0 and 1 of this store).
    expect(new Set(ahead.shards.map((s) => threads.route(shard('ahead', s.shard))))).toEqual(new Set([0, 1]));
    const summaries = await Promise.all(
      ahead.shards.map((s) => threads.score(shard('ahead', s.shard), recordingContext().ctx)),
    );
    expect(summaries.map((s) => s.scored)).toEqual([DEVICES / 2, DEVICES / 2]);
    await expect(threads.score(shard('not-ahead', 0), recordingContext().ctx)).rejects.toThrow(/part-/);
  } finally {
    await Promise.all(saved.map(([k, body]) => store.put(k, body)));
  }
});

test('each part of a window is read by one thread and taken by the other; a part unreadable as a whole too', async () => {
  const junk = `${keys.aggregatesPrefix(WINDOW)}part-junk.arrow`;
  await store.put(junk, new TextEncoder().encode('not Arrow at all'));
  try {
    let planned: { runId: string; parts: string[] } | undefined;
    const req = { store: store.uri, window: WINDOW, shardSize: DEVICES / 2, pool: 'cpu' as const, runId: 'exchange' };
    const ahead = await planRun(store, req, (p) => void (planned = p));
    expect(planned!.parts).toContain(junk);
    const before = threads.partsExchanged;
    await threads.readAhead({ store: store.uri, window: parseWindow(WINDOW), ...planned! });
    const after = threads.partsExchanged;
    const n = planned!.parts.length;
    expect({ read: after.read - before.read, taken: after.taken - before.taken }).toEqual({ read: n, taken: n });
    // Both threads' shards fail every device naming the unreadable part, as a thread that read it itself would.
    const summaries = await Promise.all(
      ahead.shards.map((s) => threads.score({ ...req, windowHours: 1, shard: s.shard }, recordingContext().ctx)),
    );
    expect(summaries.map((s) => [s.scored, s.failed])).toEqual([
      [0, DEVICES / 2],
      [0, DEVICES / 2],
    ]);
    for (const s of summaries) expect(s.failures[0]!.reason).toContain(`${junk}: is not a complete Arrow IPC stream`);
    // Nothing was read again for the shards.
    expect(threads.partsExchanged.read).toBe(after.read);
  } finally {
    await store.delete(junk);
  }
});

test("a window whose devices' rows are split across parts scores on both threads as on the event loop", async () => {
  const prefix = keys.aggregatesPrefix(WINDOW);
  const [whole] = await store.list(prefix);
  const bytes = await store.get(whole!);
  const table = tableFromIPC(bytes);
  // Three parts of consecutive rows, cut within devices' rows: a device's rows are in two parts.
  const cuts = [0, Math.floor(table.numRows / 3) + 7, Math.floor((2 * table.numRows) / 3) + 13, table.numRows];
  const split = cuts.slice(1).map((end, i) => tableToIPC(table.slice(cuts[i], end), 'file'));
  const splitKeys = split.map((_, i) => `${prefix}part-split-${i}.arrow`);
  await store.delete(whole!);
  const sessions = new ModelSessionCache();
  try {
    await Promise.all(split.map((b, i) => store.put(splitKeys[i]!, b)));
    const onLoop = await plan('split-loop');
    const onThreads = await plan('split-threads');
    const before = threads.partsExchanged.read;
    const summaries = await Promise.all(onThreads.map((r) => threads.score(r, recordingContext().ctx)));
    expect(summaries.map((s) => s.scored)).toEqual([DEVICES / 2, DEVICES / 2]);
    // Each part read once, by one of the threads.
    expect(threads.partsExchanged.read - before).toBe(3);
    const predictions = (req: ShardRequest) => store.get(keys.predictions(WINDOW, req.runId, req.shard));
    for (const [i, req] of onLoop.entries()) {
      await scoreShard({ store, sessions, aggregates: new AggregatesCache() }, req, recordingContext().ctx);
      expect(Buffer.from(await predictions(onThreads[i]!))).toEqual(Buffer.from(await predictions(req)));
    }
  } finally {
    await sessions.close();
    await Promise.all(splitKeys.map((k) => store.delete(k)));
    await store.put(whole!, bytes);
  }
});

test('a cancelled attempt fails with the cancellation and writes no status', async () => {
  const [req] = await plan('cancelled');
  const controller = new AbortController();
  const { ctx } = recordingContext(controller.signal);
  controller.abort(new CancelledFailure('CANCELLED'));
  await expect(threads.score(req!, ctx)).rejects.toBeInstanceOf(CancelledFailure);
  expect(await store.tryGet(keys.shardStatus(WINDOW, 'cancelled', req!.shard))).toBeUndefined();
});

test('closing the threads fails the shards on them, and the next shard starts a thread again', async () => {
  const [req] = await plan('closed');
  // Expected before the close, which rejects it at once.
  const running = expect(threads.score(req!, recordingContext().ctx)).rejects.toThrow(/shard thread \d exited/);
  await threads.close();
  await running;
  await expect(threads.score(req!, recordingContext().ctx)).resolves.toMatchObject({ scored: DEVICES / 2 });
});
