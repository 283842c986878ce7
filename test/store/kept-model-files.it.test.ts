/**
 * An S3 store's model files kept on the worker's host (a real MinIO): a worker started after another on the same
 * host scores every device without a GET of its model files and gives the same outcomes; a model replaced or
 * deleted in the store after it was kept fails as it does on a fresh worker; a damaged copy is read from the store
 * again; only what a listing of the last hour vouches for is read from the host, and never the index.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AggregatesCache } from '../../lib/arrow/aggregates-cache';
import { readIndex } from '../../lib/models/model-index';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import { commitRun } from '../../lib/scoring/commit-run';
import { readJsonFile, readManifest, type ShardPlanFile, type ShardStatusFile } from '../../lib/scoring/manifest';
import { planRun } from '../../lib/scoring/plan-run';
import type { ShardContext, ShardDeps } from '../../lib/scoring/score-shard';
import type { ShardSummary } from '../../lib/shared/run-types';
import { ShardThreads } from '../../lib/scoring/shard-threads';
import { ObjectNotFound } from '../../lib/shared/errors';
import { keys } from '../../lib/shared/keys';
import { KeptModelFiles, sweepKeptModelFiles } from '../../lib/store/kept-model-files';
import { S3Store } from '../../lib/store/s3-store';
import { recording, scoreRun, seedFreshnessFleet, warmDeps, type Calls } from '../support/model-freshness-scenario';
import { fleetscore } from '../support/fleetscore-cli';
import { quiet } from '../support/run-window';
import { useS3Server } from '../support/s3-server';

jest.setTimeout(60_000);

const WINDOW = '2026-11-21T11';
const server = useS3Server();
const opened: S3Store[] = [];
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-model-files-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));
afterAll(() => {
  for (const store of opened) store.destroy();
});

/** A bucket prefix of its own, seeded with the scenario's four devices. */
async function seeded(): Promise<S3Store> {
  const store = S3Store.fromUri(`s3://${server().bucket}/kept-${randomBytes(3).toString('hex')}`);
  opened.push(store);
  await seedFreshnessFleet(store);
  return store;
}

/** A worker started on this host: caches of its own, model files kept in `dir`; what it read from S3 in `calls`. */
function worker(store: S3Store, warnings: string[] = [], maxBytes = 2 ** 30) {
  const calls: Calls = { onnxReads: [], listObjects: [], listRange: [] };
  const kept = new KeptModelFiles(
    recording(store, calls, { listRange: true }),
    { dir, maxBytes },
    {
      warn: (m) => warnings.push(m),
    },
  );
  return { calls, kept, deps: warmDeps(store, kept) };
}

/** Every file under `dir`. */
async function files(): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

async function closing<T>(deps: ShardDeps[], body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } finally {
    for (const d of deps) await d.sessions.close();
  }
}

test('a worker started after another on the host reads no model file from S3 and scores the same', async () => {
  const store = await seeded();
  const first = worker(store);
  const second = worker(store);
  await closing([first.deps, second.deps], async () => {
    const before = await scoreRun(store, 'run-1', first.deps);
    expect(Object.values(before).map((o) => o.status)).toEqual(['scored', 'scored', 'scored', 'scored']);
    expect(first.calls.onnxReads).toHaveLength(4);
    expect(first.kept.files.stats).toEqual({ read: 0, written: 8, damaged: 0 });
    expect(await files()).toHaveLength(8);

    const summaries: ShardSummary[] = [];
    const after = await scoreRun(store, 'run-2', second.deps, 10, summaries);
    expect(after).toEqual(before);
    // What the activity returns says so too, for the worker's metrics (fleetscore_model_files_read_total).
    expect(summaries.map((s) => s.modelFiles)).toEqual([{ host: 8, store: 0 }]);
    expect(second.calls.onnxReads).toEqual([]);
    // Both files of every device came from the host: model.json and model.onnx.
    expect(second.kept.files.stats).toEqual({ read: 8, written: 0, damaged: 0 });
    // The shard was listed, as on any worker: that listing is what vouches for the copies.
    expect(second.calls.listRange).toHaveLength(1);
    // Each shard's status says where its model files came from; a warm run read none.
    expect((await shardStatus(store, 'run-1')).modelFiles).toEqual({ host: 0, store: 8 });
    expect((await shardStatus(store, 'run-2')).modelFiles).toEqual({ host: 8, store: 0 });
    await scoreRun(store, 'run-3', second.deps);
    expect((await shardStatus(store, 'run-3')).modelFiles).toBeUndefined();
    // The commit carries it into the manifest, and `runs show` sums it.
    const run2 = { store: store.uri, window: WINDOW, windowHours: 1, workflowId: 'wf', runId: 'run-2' };
    const plan = await readJsonFile<ShardPlanFile>(
      store,
      keys.shardPlan(WINDOW, 'run-2', 0),
      'fleetscore.shard-plan/v1',
    );
    const shards = [{ shard: 0, pool: plan.pool, devices: plan.devices.length }];
    const request = { ...run2, shards, failedShards: [], runStartedAt: new Date().toISOString() };
    await commitRun(store, request, { logger: quiet });
    expect((await readManifest(store, WINDOW))?.shards[0]?.modelFiles).toEqual({ host: 8, store: 0 });
    const shown = await fleetscore(['runs', 'show', WINDOW, '--store', store.uri]);
    expect(shown.stdout).toContain('\nmodel files host 8, store 0\n');
  });
});

/** The status of run `runId`'s one shard. */
function shardStatus(store: S3Store, runId: string): Promise<ShardStatusFile> {
  return readJsonFile<ShardStatusFile>(store, keys.shardStatus(WINDOW, runId, 0), 'fleetscore.shard-status/v1');
}

test('a model replaced or deleted in the store after it was kept fails as on a fresh worker', async () => {
  const store = await seeded();
  const { devices } = await readIndex(store);
  const onnx = (d: string) => keys.modelOnnx(d, devices[d]!.version);
  const first = worker(store);
  const second = worker(store);
  const fresh: ShardDeps = { store, sessions: new ModelSessionCache(), aggregates: new AggregatesCache() };
  await closing([first.deps, second.deps, fresh], async () => {
    await scoreRun(store, 'run-1', first.deps);
    await store.delete(onnx('dev-00001'));
    await store.put(onnx('dev-00002'), 'garbage');

    const kept = await scoreRun(store, 'run-2', second.deps);
    expect(kept).toEqual(await scoreRun(store, 'run-3', fresh));
    expect(kept['dev-00001']).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^ModelNotFound: /) });
    expect(kept['dev-00002']).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/^ModelChecksumMismatch/),
    });
    expect(kept['dev-00003']).toMatchObject({ status: 'scored' });
    // The two changed models were read from S3; the rest, and every model.json, from the host.
    expect(second.calls.onnxReads.sort()).toEqual([onnx('dev-00001'), onnx('dev-00002')]);
    expect(second.kept.files.stats.read).toBe(6);
  });
});

test('a damaged copy is reported, deleted and read from S3 again', async () => {
  const store = await seeded();
  const first = worker(store);
  const warnings: string[] = [];
  const second = worker(store, warnings);
  await closing([first.deps, second.deps], async () => {
    const before = await scoreRun(store, 'run-1', first.deps);
    const [damaged] = (await files()).sort();
    const bytes = await readFile(damaged!);
    await writeFile(damaged!, bytes.subarray(0, bytes.length - 1));

    expect(await scoreRun(store, 'run-2', second.deps)).toEqual(before);
    expect(second.kept.files.stats).toEqual({ read: 7, written: 1, damaged: 1 });
    expect(warnings).toEqual([
      expect.stringMatching(
        /^kept model file .* is damaged \(checksum mismatch\): deleted, reading it from the store again$/,
      ),
    ]);
    expect(await readFile(damaged!)).toEqual(bytes);
  });
});

test('reads from the host only what a listing of the last hour vouches for, and never the index', async () => {
  const store = await seeded();
  const { devices } = await readIndex(store);
  const version = devices['dev-00003']!.version;
  const json = keys.modelMeta('dev-00003', version);
  const onnx = keys.modelOnnx('dev-00003', version);
  let now = Date.now();
  const kept = new KeptModelFiles(store, { dir, maxBytes: 2 ** 30 }, { now: () => now });
  const body = Buffer.from(await store.get(onnx));
  const read = async (key: string) => Buffer.from(await kept.get(key));

  // No listing: the store is read and nothing kept.
  expect(await read(onnx)).toEqual(body);
  expect(kept.files.stats).toEqual({ read: 0, written: 0, damaged: 0 });

  // A listing of the device's files: kept once read, then read from the host.
  await kept.listRange!(keys.modelsRoot(), json, onnx);
  expect(await read(onnx)).toEqual(body);
  expect(await read(onnx)).toEqual(body);
  expect(kept.files.stats).toEqual({ read: 1, written: 1, damaged: 0 });

  // The index lies under a listing of all of models/, and changes: it is always read from the store.
  await kept.listObjects(keys.modelsRoot());
  await kept.get(keys.modelIndex());
  await kept.get(keys.modelIndex());
  expect(kept.files.stats).toEqual({ read: 1, written: 1, damaged: 0 });
  await kept.get(onnx);
  expect(kept.files.stats).toEqual({ read: 2, written: 1, damaged: 0 });

  // An hour later the listings vouch for nothing: the store is read.
  now += 3_600_001;
  expect(await read(onnx)).toEqual(body);
  expect(kept.files.stats).toEqual({ read: 2, written: 1, damaged: 0 });
  // A key the newest listing covers but did not find is read from the store, where it is missing too, even with a
  // copy on the host.
  await kept.listRange!(keys.modelsRoot(), json, onnx);
  await kept.get(json);
  await store.delete(json);
  await kept.listRange!(keys.modelsRoot(), json, onnx);
  await expect(kept.get(json)).rejects.toThrow(ObjectNotFound);
  expect(kept.files.stats).toEqual({ read: 2, written: 2, damaged: 0 });
});

test('keeps the folder within its bytes: the least recently used go first, also while a worker writes', async () => {
  const store = await seeded();
  const first = worker(store);
  await closing([first.deps], () => scoreRun(store, 'run-1', first.deps));
  const kept = (await files()).sort();
  const sizes = await Promise.all(kept.map(async (f) => (await stat(f)).size));
  const total = sizes.reduce((a, b) => a + b, 0);
  // The first file in this order the least recently used, the second the next.
  const now = Date.now();
  for (const [i, f] of kept.entries())
    await utimes(f, new Date(now - (9 - i) * 60_000), new Date(now - (9 - i) * 60_000));
  expect(await sweepKeptModelFiles({ dir, maxBytes: total - 1 })).toEqual({
    deleted: 1,
    kept: 7,
    keptBytes: total - sizes[0]!,
  });
  expect((await files()).sort()).toEqual(kept.slice(1));
  expect(await sweepKeptModelFiles({ dir, maxBytes: total - sizes[0]! - 1 })).toMatchObject({ deleted: 1, kept: 6 });
  expect((await files()).sort()).toEqual(kept.slice(2));

  // A worker whose folder holds less than a model sweeps it as it writes: the folder does not grow with the fleet.
  await rm(dir, { recursive: true });
  const small = worker(store, [], 64);
  await closing([small.deps], () => scoreRun(store, 'run-2', small.deps));
  expect(small.kept.files.stats.written).toBe(8);
  await sleep(200);
  expect((await files()).length).toBeLessThan(8);
});

test('a store told to defer keeps what it read when told, and serves it from memory meanwhile', async () => {
  const store = await seeded();
  const calls: Calls = { onnxReads: [], listObjects: [], listRange: [] };
  const folder = { dir, maxBytes: 2 ** 30 };
  const kept = new KeptModelFiles(recording(store, calls, { listRange: true }), folder, { deferWrites: true });
  const first = warmDeps(store, kept);
  const again = warmDeps(store, kept);
  const next = worker(store);
  await closing([first, again, next.deps], async () => {
    const scored = await scoreRun(store, 'run-1', first);
    expect(await files()).toEqual([]);
    // Another cache over the same store (another shard of the thread) reads what is held, not S3.
    expect(await scoreRun(store, 'run-2', again)).toEqual(scored);
    expect(calls.onnxReads).toHaveLength(4);
    expect(await kept.writeDeferred(3)).toBe(5);
    expect(await files()).toHaveLength(3);
    expect(await kept.writeDeferred()).toBe(0);
    expect(await files()).toHaveLength(8);
    expect(await scoreRun(store, 'run-3', next.deps)).toEqual(scored);
    expect(next.calls.onnxReads).toEqual([]);
  });
});

test('past the bytes it holds, a deferring store GETs the files again when told, keeping only what is unchanged', async () => {
  const store = await seeded();
  const calls: Calls = { onnxReads: [], listObjects: [], listRange: [] };
  // Holds the first file read (a model.json: devices are read at once, each its model.json first) and no more.
  const listed = await store.listObjects(keys.modelsRoot());
  const jsonBytes = Math.max(...listed.filter((o) => o.key.endsWith('model.json')).map((o) => o.size));
  const folder = { dir, maxBytes: 2 ** 30, heldMaxBytes: jsonBytes };
  const kept = new KeptModelFiles(recording(store, calls, { listRange: true }), folder, { deferWrites: true });
  const deps = warmDeps(store, kept);
  const next = worker(store);
  await closing([deps, next.deps], async () => {
    const scored = await scoreRun(store, 'run-1', deps);
    expect(calls.onnxReads).toHaveLength(4);
    // A closing thread writes what it holds and GETs nothing.
    expect(await kept.writeDeferred(Infinity, { fetch: 0 })).toBe(7);
    expect(await files()).toHaveLength(1);
    expect(calls.onnxReads).toHaveLength(4);
    // One model replaced since it was read: its new bytes are not what the listing vouched for, so not kept.
    const replaced = calls.onnxReads[3]!;
    await store.put(replaced, await store.get(calls.onnxReads[0]!));
    expect(await kept.writeDeferred(2)).toBe(5);
    expect(await kept.writeDeferred()).toBe(0);
    expect(calls.onnxReads.slice(4).sort()).toEqual(calls.onnxReads.slice(0, 4).sort());
    expect(await files()).toHaveLength(7);
    // The next worker reads the seven from the host, and the replaced one from the store (failing it as changed).
    const again = await scoreRun(store, 'run-2', next.deps);
    expect(next.calls.onnxReads).toEqual([replaced]);
    const device = replaced.split('/')[1]!;
    expect(again[device]).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^ModelChecksumMismatch/) });
    expect({ ...again, [device]: scored[device] }).toEqual(scored);
  });
});

test('a GET again that fails is warned of once, and the files left are not kept', async () => {
  const store = await seeded();
  const calls: Calls = { onnxReads: [], listObjects: [], listRange: [] };
  const warnings: string[] = [];
  let down = false;
  const inner = recording(store, calls, { listRange: true });
  const flaky = {
    ...inner,
    getVersioned: (k: string) => (down ? Promise.reject(new Error('connect ECONNREFUSED')) : inner.getVersioned(k)),
  };
  const kept = new KeptModelFiles(
    flaky,
    { dir, maxBytes: 2 ** 30, heldMaxBytes: 0 },
    { deferWrites: true, warn: (m) => warnings.push(m) },
  );
  const deps = warmDeps(store, kept);
  await closing([deps], () => scoreRun(store, 'run-1', deps));
  down = true;
  expect(await kept.writeDeferred()).toBe(0);
  expect(warnings).toEqual([
    expect.stringMatching(/^model file models\/\S+ could not be read from s3:\/\/.*ECONNREFUSED; 7 more not kept/),
  ]);
  expect(await files()).toEqual([]);
});

describe('through shard threads, as the cpu pool scores', () => {
  const ctx: ShardContext = {
    attempt: 1,
    taskQueue: 'q',
    workflowId: 'wf',
    workflowRunId: 'r',
    heartbeat: () => {},
    log: quiet,
  };

  /**
   * Scores the store's one shard on a new one-thread worker keeping model files in `dir` (holding up to
   * `heldMaxBytes` of them in memory), counting those it GETs again in `fetched`; its predictions.
   */
  async function scoreOnNewWorker(
    store: S3Store,
    runId: string,
    untilClose: () => Promise<void> = async () => {},
    { heldMaxBytes, fetched }: { heldMaxBytes?: number; fetched?: number[] } = {},
  ) {
    const threads = new ShardThreads({
      threads: 1,
      cache: {},
      modelFiles: { dir, maxBytes: 2 ** 30, ...(heldMaxBytes !== undefined ? { heldMaxBytes } : {}) },
      observer: { modelFilesFetched: (n) => fetched?.push(n) },
    });
    try {
      await planRun(store, { store: store.uri, window: WINDOW, shardSize: 10, pool: 'cpu', runId });
      const req = { store: store.uri, window: WINDOW, windowHours: 1, runId, shard: 0 };
      expect(await threads.score(req, ctx)).toMatchObject({ scored: 4, failed: 0 });
      await untilClose();
      return Buffer.from(await store.get(keys.predictions(WINDOW, runId, 0)));
    } finally {
      await threads.close();
    }
  }

  test('a thread keeps the files once idle, and the next worker reads them from the host', async () => {
    const store = await seeded();
    const first = await scoreOnNewWorker(store, 'run-1', async () => {
      for (let waited = 0; (await files()).length < 8; waited += 50) {
        if (waited > 20_000) throw new Error('the idle thread kept nothing in 20 s');
        await sleep(50);
      }
    });
    // Aged two days: a read refreshes a file's time once a day, so the next worker's reads show.
    const old = new Date(Date.now() - 2 * 24 * 3_600_000);
    for (const f of await files()) await utimes(f, old, old);
    expect((await scoreOnNewWorker(store, 'run-2')).equals(first)).toBe(true);
    for (const f of await files()) expect((await stat(f)).mtimeMs).toBeGreaterThan(Date.now() - 60_000);
  });

  test('a thread holding none of the files GETs them again once idle, and the worker counts those GETs', async () => {
    const store = await seeded();
    const fetched: number[] = [];
    const first = await scoreOnNewWorker(
      store,
      'run-1',
      async () => {
        for (let waited = 0; (await files()).length < 8; waited += 50) {
          if (waited > 20_000) throw new Error('the idle thread kept nothing in 20 s');
          await sleep(50);
        }
      },
      { heldMaxBytes: 0, fetched },
    );
    expect(fetched.reduce((a, b) => a + b, 0)).toBe(8);
    expect((await scoreOnNewWorker(store, 'run-2')).equals(first)).toBe(true);
  });

  test('a worker that closes before its thread was idle keeps the files as it closes', async () => {
    const store = await seeded();
    await scoreOnNewWorker(store, 'run-1');
    expect(await files()).toHaveLength(8);
  });
});
