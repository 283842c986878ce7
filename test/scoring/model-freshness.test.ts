/**
 * The answer does not depend on the worker: after a model.onnx is deleted or overwritten in the local store, a
 * warm worker (its caches full from an earlier run) fails those devices exactly as a fresh worker does, and scores
 * the rest from its caches without reading their models again; whichever way it finds the files (S3:
 * model-freshness-s3.it.test.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keys } from '../../lib/shared/keys';
import { LocalStore } from '../../lib/store/local-store';
import {
  expectWarmFailsAsFresh,
  recording,
  scoreRun,
  seedFreshnessFleet,
  warmDeps,
  type Calls,
  type Offered,
} from '../support/model-freshness-scenario';

let dir: string;
let store: LocalStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-fresh-'));
  store = new LocalStore(dir);
  await seedFreshnessFleet(store);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * How freshness finds a device's files: a `stat` of each (the local store), also at once without a promise (a
 * warm device is then prepared at once), what the synchronous reads of a shard thread's store found (with both
 * kinds of `stat`, as a shard thread has them), or neither, so that it lists all of `models/` (a store that can
 * list no range).
 */
const LOOKUPS: Record<string, Offered> = {
  'a stat per file': { statObjects: true },
  'a stat per file, at once': { statObjects: true, statObjectsNow: true },
  'what reading them found': { statObjects: true, takeReadStat: true },
  'what reading them found, and a stat at once': { statObjects: true, takeReadStat: true, statObjectsNow: true },
  'a listing of models/': {},
};

describe.each([
  ['stacked', true],
  ['one session per model', false],
])('a warm worker (%s)', (_m, batching) => {
  test.each(Object.keys(LOOKUPS))('fails a deleted or replaced model as a fresh worker does (%s)', async (lookup) => {
    const calls: Calls = { onnxReads: [], listObjects: [], listRange: [] };
    const offered = LOOKUPS[lookup]!;
    // A shard thread's store reads synchronously, and keeps what each read found.
    const inner = offered.takeReadStat ? new LocalStore(dir, { blockingReads: true }) : store;
    await expectWarmFailsAsFresh(store, recording(inner, calls, offered), calls, batching);
    // The listing, where there is one, is one per shard and run.
    expect(calls.listObjects).toEqual(offered.statObjects ? [] : [keys.modelsRoot(), keys.modelsRoot()]);
  });
});

test('shards of one run share one listing of models/ where the store lists no ranges', async () => {
  const calls: Calls = { onnxReads: [], listObjects: [], listRange: [] };
  const deps = warmDeps(store, recording(store, calls, {}));
  try {
    const outcomes = await scoreRun(store, 'run-1', deps, 2);
    expect(Object.values(outcomes).map((o) => o.status)).toEqual(['scored', 'scored', 'scored', 'scored']);
    expect(calls.listObjects).toEqual([keys.modelsRoot()]);
  } finally {
    await deps.sessions.close();
  }
});
