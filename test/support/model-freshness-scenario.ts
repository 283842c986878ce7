/**
 * The freshness scenario every store must pass: a warm worker (its caches full from an earlier run) fails the
 * devices whose model.onnx was deleted or overwritten in the store exactly as a fresh worker does, and scores the
 * rest from its caches without reading their models again. The local store (test/scoring/model-freshness.test.ts)
 * and S3 (test/scoring/model-freshness-s3.it.test.ts) run it with the lookups each offers.
 */
import { AggregatesCache } from '../../lib/arrow/aggregates-cache';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { readIndex } from '../../lib/models/model-index';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import { readJsonFile, type DeviceOutcome, type ShardStatusFile } from '../../lib/scoring/manifest';
import { ModelFreshness } from '../../lib/scoring/model-freshness';
import { planRun } from '../../lib/scoring/plan-run';
import { scoreShard, type ShardDeps } from '../../lib/scoring/score-shard';
import type { ShardSummary } from '../../lib/shared/run-types';
import { keys } from '../../lib/shared/keys';
import type { CallOptions, ObjectStore } from '../../lib/store/object-store';
import { quiet } from './run-window';

const WINDOW = '2026-11-21T11';

/** Seeds the scenario's fleet: four demo devices with one window, `WINDOW`. */
export async function seedFreshnessFleet(store: ObjectStore): Promise<void> {
  await seedDemoFleet(store, { devices: 4, sensors: 2, hours: 1, endMs: Date.parse('2026-11-21T12:00Z'), seed: 6 });
}

/** Which of a store's optional lookups the warm worker's store offers freshness. */
export interface Offered {
  statObjects?: boolean;
  statObjectsNow?: boolean;
  takeReadStat?: boolean;
  listRange?: boolean;
}

/** What the warm worker asked of its store: model.onnx reads (of any kind), and the listings of `models/`. */
export interface Calls {
  onnxReads: string[];
  listObjects: string[];
  listRange: string[];
}

/**
 * `inner` with the optional lookups `offered` keeps (and no others), recording in `calls` each model.onnx read
 * and each listing; freshness lists the whole of `models/` where neither `statObjects` nor `listRange` is there.
 */
export function recording(inner: ObjectStore, calls: Calls, offered: Offered): ObjectStore {
  const { statObjects, statObjectsNow, takeReadStat, listRange } = inner;
  return {
    uri: inner.uri,
    get: (k, o) => inner.get(k, o),
    tryGet: (k, o) => {
      if (k.endsWith('model.onnx')) calls.onnxReads.push(k);
      return inner.tryGet(k, o);
    },
    getVersioned: (k, o) => {
      if (k.endsWith('model.onnx')) calls.onnxReads.push(k);
      return inner.getVersioned(k, o);
    },
    put: (k, b, o) => inner.put(k, b, o),
    putIf: (k, b, e, o) => inner.putIf(k, b, e, o),
    list: (p, o) => inner.list(p, o),
    listObjects: (p, o) => (calls.listObjects.push(p), inner.listObjects(p, o)),
    delete: (k, o) => inner.delete(k, o),
    ...(offered.statObjects &&
      statObjects && { statObjects: (k: readonly string[], o?: CallOptions) => statObjects.call(inner, k, o) }),
    ...(offered.statObjectsNow &&
      statObjectsNow && { statObjectsNow: (k: readonly string[]) => statObjectsNow.call(inner, k) }),
    ...(offered.takeReadStat && takeReadStat && { takeReadStat: (k: string) => takeReadStat.call(inner, k) }),
    ...(offered.listRange &&
      listRange && {
        listRange: (p: string, first: string, last: string, o?: CallOptions) => {
          calls.listRange.push(`${first}..${last}`);
          return listRange.call(inner, p, first, last, o);
        },
      }),
  };
}

/** A warm worker's caches and freshness check, reading models through `shared` (close its `sessions` after). */
export function warmDeps(store: ObjectStore, shared: ObjectStore, batching = true): ShardDeps {
  return {
    store,
    sharedStore: shared,
    sessions: new ModelSessionCache({ batching }),
    aggregates: new AggregatesCache(),
    freshness: new ModelFreshness(),
  };
}

/**
 * Plans run `runId` of `store` in shards of `shardSize` and scores them one by one with `deps`; every outcome. What
 * each shard returned goes to `summaries`.
 */
export async function scoreRun(
  store: ObjectStore,
  runId: string,
  deps: ShardDeps,
  shardSize = 10,
  summaries: ShardSummary[] = [],
): Promise<Record<string, DeviceOutcome>> {
  const plan = await planRun(store, { store: store.uri, window: WINDOW, shardSize, pool: 'cpu', runId });
  const ctx = { attempt: 1, taskQueue: 'q', workflowId: 'wf', workflowRunId: runId, heartbeat: () => undefined };
  const outcomes: Record<string, DeviceOutcome> = {};
  for (const { shard } of plan.shards) {
    const req = { store: store.uri, window: WINDOW, windowHours: 1, runId, shard };
    summaries.push(await scoreShard(deps, req, { ...ctx, log: quiet }));
    const file = keys.shardStatus(WINDOW, runId, shard);
    const status = await readJsonFile<ShardStatusFile>(store, file, 'fleetscore.shard-status/v1');
    Object.assign(outcomes, status.devices);
  }
  return outcomes;
}

/**
 * Runs the scenario on `store` (seeded by {@link seedFreshnessFleet}); the warm worker reads models through
 * `warmShared`, a {@link recording} of `store` (or of another handle on the same objects) filling `calls`.
 */
export async function expectWarmFailsAsFresh(
  store: ObjectStore,
  warmShared: ObjectStore,
  calls: Calls,
  batching: boolean,
): Promise<void> {
  const warm = warmDeps(store, warmShared, batching);
  const fresh: ShardDeps = { store, sessions: new ModelSessionCache({ batching }), aggregates: new AggregatesCache() };
  try {
    const first = await scoreRun(store, 'run-1', warm);
    expect(Object.values(first).every((o) => o.status === 'scored')).toBe(true);
    expect(calls.onnxReads).toHaveLength(4);

    const index = await readIndex(store);
    await store.delete(keys.modelOnnx('dev-00001', index.devices['dev-00001']!.version));
    await store.put(keys.modelOnnx('dev-00002', index.devices['dev-00002']!.version), 'garbage');

    calls.onnxReads.length = 0;
    const again = await scoreRun(store, 'run-2', warm);
    const cold = await scoreRun(store, 'run-3', fresh);
    expect(again).toEqual(cold);
    expect(again['dev-00001']).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^ModelNotFound: /) });
    expect(again['dev-00002']).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/^ModelChecksumMismatch/),
    });
    expect(again['dev-00003']).toMatchObject({ status: 'scored' });
    // Only the changed models were read again; the unchanged ones came from the caches.
    expect(calls.onnxReads.sort()).toEqual([
      keys.modelOnnx('dev-00001', index.devices['dev-00001']!.version),
      keys.modelOnnx('dev-00002', index.devices['dev-00002']!.version),
    ]);
  } finally {
    await warm.sessions.close();
    await fresh.sessions.close();
  }
}
