/**
 * The answer does not depend on the worker: after a model.onnx is deleted or overwritten in the store, a warm
 * worker (its caches full from an earlier run) fails those devices exactly as a fresh worker does, and scores the
 * rest from its caches without reading their models again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AggregatesCache } from '../../lib/arrow/aggregates-cache';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { readIndex } from '../../lib/models/model-index';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import type { DeviceOutcome, ShardStatusFile } from '../../lib/scoring/manifest';
import { readJsonFile } from '../../lib/scoring/manifest';
import { ModelFreshness } from '../../lib/scoring/model-freshness';
import { planRun } from '../../lib/scoring/plan-run';
import { scoreShard, type ShardDeps } from '../../lib/scoring/score-shard';
import { keys } from '../../lib/shared/keys';
import { LocalStore } from '../../lib/store/local-store';
import type { CallOptions, ObjectStore } from '../../lib/store/object-store';
import { quiet } from '../support/run-window';

const WINDOW = '2026-11-21T11';

let dir: string;
let store: LocalStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-fresh-'));
  store = new LocalStore(dir);
  await seedDemoFleet(store, { devices: 4, sensors: 2, hours: 1, endMs: Date.parse('2026-11-21T12:00Z'), seed: 6 });
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Plans run `runId` and scores its one shard with `deps`; returns every device's outcome. */
async function score(runId: string, deps: ShardDeps): Promise<Record<string, DeviceOutcome>> {
  await planRun(store, { store: store.uri, window: WINDOW, shardSize: 10, pool: 'cpu', runId });
  const ctx = {
    attempt: 1,
    taskQueue: 'q',
    workflowId: 'wf',
    workflowRunId: runId,
    heartbeat: () => undefined,
    log: quiet,
  };
  await scoreShard(deps, { store: store.uri, window: WINDOW, windowHours: 1, runId, shard: 0 }, ctx);
  const status = await readJsonFile<ShardStatusFile>(
    store,
    keys.shardStatus(WINDOW, runId, 0),
    'fleetscore.shard-status/v1',
  );
  return status.devices;
}

/** How freshness finds a device's files: stat each, list `models/` (as on S3), or take what reading them found. */
type Lookup = 'stat' | 'list' | 'reads';

/**
 * A store that counts the model.onnx reads and offers freshness what `lookup` says: the local store's per-key
 * `statObjects` ('stat'), that and the synchronous reads' records of a shard thread's store ('reads'), or neither,
 * so that freshness lists `models/` as it does on S3 ('list').
 */
function counting(inner: LocalStore, reads: string[], lookup: Lookup): ObjectStore {
  const stat = lookup !== 'list';
  return {
    ...inner,
    uri: inner.uri,
    get: (k, o) => inner.get(k, o),
    tryGet: (k, o) => {
      if (k.endsWith('model.onnx')) reads.push(k);
      return inner.tryGet(k, o);
    },
    getVersioned: (k, o) => inner.getVersioned(k, o),
    put: (k, b, o) => inner.put(k, b, o),
    putIf: (k, b, e, o) => inner.putIf(k, b, e, o),
    list: (p, o) => inner.list(p, o),
    listObjects: (p, o) => inner.listObjects(p, o),
    delete: (k, o) => inner.delete(k, o),
    ...(stat && { statObjects: (k: readonly string[], o?: CallOptions) => inner.statObjects(k, o) }),
    ...(lookup === 'reads' && { takeReadStat: (k: string) => inner.takeReadStat(k) }),
  };
}

test.each([
  ['stacked', 'a stat per file', true, 'stat'],
  ['stacked', 'a listing per run', true, 'list'],
  ['stacked', 'what reading them found', true, 'reads'],
  ['one session per model', 'a stat per file', false, 'stat'],
  ['one session per model', 'a listing per run', false, 'list'],
  ['one session per model', 'what reading them found', false, 'reads'],
] as const)(
  'a warm worker (%s, %s) fails a deleted or replaced model as a fresh worker does',
  async (_m, _f, batching, lookup) => {
    const reads: string[] = [];
    // A shard thread's store reads synchronously, and keeps what each read found.
    const inner = lookup === 'reads' ? new LocalStore(dir, { blockingReads: true }) : store;
    const warm: ShardDeps = {
      store,
      sharedStore: counting(inner, reads, lookup),
      sessions: new ModelSessionCache({ batching }),
      aggregates: new AggregatesCache(),
      freshness: new ModelFreshness(),
    };
    const fresh: ShardDeps = {
      store,
      sessions: new ModelSessionCache({ batching }),
      aggregates: new AggregatesCache(),
    };
    try {
      const first = await score('run-1', warm);
      expect(Object.values(first).every((o) => o.status === 'scored')).toBe(true);
      expect(reads).toHaveLength(4);

      const index = await readIndex(store);
      await store.delete(keys.modelOnnx('dev-00001', index.devices['dev-00001']!.version));
      await store.put(keys.modelOnnx('dev-00002', index.devices['dev-00002']!.version), 'garbage');

      reads.length = 0;
      const again = await score('run-2', warm);
      const cold = await score('run-3', fresh);
      expect(again).toEqual(cold);
      expect(again['dev-00001']).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^ModelNotFound: /) });
      expect(again['dev-00002']).toMatchObject({
        status: 'failed',
        reason: expect.stringMatching(/^ModelChecksumMismatch/),
      });
      expect(again['dev-00003']).toMatchObject({ status: 'scored' });
      // Only the changed models were read again; the unchanged ones came from the caches.
      expect(reads.sort()).toEqual([
        keys.modelOnnx('dev-00001', index.devices['dev-00001']!.version),
        keys.modelOnnx('dev-00002', index.devices['dev-00002']!.version),
      ]);
    } finally {
      await warm.sessions.close();
      await fresh.sessions.close();
    }
  },
);
