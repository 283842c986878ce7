/**
 * Pruning run folders on both real stores (a local folder and MinIO): only folders of runs the manifest does not
 * name go, and only once nothing in them, nor the manifest, was written within the grace period. Ages are
 * measured at an injected `now` ahead of the clock, so no test waits a day.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { keys } from '../../lib/shared/keys';
import type { Manifest } from '../../lib/scoring/manifest';
import { pruneRuns, type RunFolder } from '../../lib/scoring/prune-runs';
import { LocalStore } from '../../lib/store/local-store';
import type { ObjectStore } from '../../lib/store/object-store';
import { S3Store } from '../../lib/store/s3-store';
import { useS3Server } from '../support/s3-server';
import { withListing } from '../support/store-view';

jest.setTimeout(60_000);

const HOUR = 3_600_000;
const GRACE = 24 * HOUR;
/** A moment at which everything the test wrote is past the grace period. */
const later = () => Date.now() + GRACE + HOUR;

const server = useS3Server();
const cleanups: (() => Promise<void>)[] = [];

afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
});

async function localStore(): Promise<ObjectStore> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetscore-prune-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return new LocalStore(dir);
}

async function s3Store(): Promise<ObjectStore> {
  const prefix = `prune-${randomBytes(4).toString('hex')}`;
  const store = S3Store.fromUri(`s3://${server().bucket}/${prefix}?endpoint=${server().endpoint}&forcePathStyle=true`);
  cleanups.push(async () => store.destroy());
  return store;
}

/** The files a run of two shards writes, as the scoring activities name them. */
async function writeRun(store: ObjectStore, window: string, runId: string): Promise<string[]> {
  const written = [0, 1].flatMap((shard) => [
    keys.shardPlan(window, runId, shard),
    keys.predictions(window, runId, shard),
    keys.shardStatus(window, runId, shard),
    keys.attemptLog(window, runId, shard, 1),
  ]);
  for (const key of written) await store.put(key, `${key}\n`);
  return written;
}

/** Commits `runId` as the window's run: the manifest is all that decides which run a window is. */
async function commit(store: ObjectStore, window: string, runId: string): Promise<void> {
  const manifest: Manifest = {
    schema: 'fleetscore.manifest/v1',
    window,
    windowStart: '',
    windowEnd: '',
    workflowId: `wf-${window}`,
    runId,
    committedAt: new Date().toISOString(),
    store: store.uri,
    counts: { devices: 0, scored: 0, noData: 0, failed: 0, rows: 0, anomalies: 0 },
    shards: [],
    devices: {},
  };
  await store.put(keys.manifest(window), JSON.stringify(manifest));
}

const runKeys = async (store: ObjectStore, window: string, runId: string) => [
  ...(await store.list(keys.runPrefix(window, runId))),
  ...(await store.list(keys.runLogsPrefix(window, runId))),
];

const summary = (folders: RunFolder[]) =>
  folders.map((f) => `${f.window} ${f.runId} ${f.committed ? 'committed' : '-'} ${f.action} ${f.deleted}`);

describe.each([
  ['a local folder', localStore],
  ['S3 (MinIO)', s3Store],
])('pruneRuns on %s', (_name, open) => {
  let store: ObjectStore;

  beforeEach(async () => {
    store = await open();
  });

  it('deletes superseded and never-committed run folders past the grace period, never the committed one', async () => {
    // W1: run-a committed, then run-b re-ran the window and committed last; run-c failed before committing.
    const a = await writeRun(store, '2026-11-21T10', 'run-a');
    await commit(store, '2026-11-21T10', 'run-a');
    const b = await writeRun(store, '2026-11-21T10', 'run-b');
    await commit(store, '2026-11-21T10', 'run-b');
    await writeRun(store, '2026-11-21T10', 'run-c');
    // W2: a run that never committed, in a window without a manifest.
    await writeRun(store, '2026-11-21T11', 'run-d');
    const manifest = await store.get(keys.manifest('2026-11-21T10'));

    // Now: everything is young, so everything stays, each for its reason.
    const young = await pruneRuns(store, { olderThanMs: GRACE });
    expect(summary(young)).toEqual([
      '2026-11-21T10 run-a - keep 0',
      '2026-11-21T10 run-b committed keep 0',
      '2026-11-21T10 run-c - keep 0',
      '2026-11-21T11 run-d - keep 0',
    ]);
    expect(young[0]).toMatchObject({ objects: a.length, reason: expect.stringMatching(/within the grace period/) });
    expect(young[1]?.reason).toMatch(/the committed run/);

    // A dry run a day later decides the same as the real prune, and deletes nothing.
    const dry = await pruneRuns(store, { olderThanMs: GRACE, now: later(), dryRun: true });
    expect(summary(dry)).toEqual([
      '2026-11-21T10 run-a - delete 0',
      '2026-11-21T10 run-b committed keep 0',
      '2026-11-21T10 run-c - delete 0',
      '2026-11-21T11 run-d - delete 0',
    ]);
    expect(dry[0]?.toDelete).toBe(a.length);
    expect(await runKeys(store, '2026-11-21T10', 'run-a')).toHaveLength(a.length);

    const pruned = await pruneRuns(store, { olderThanMs: GRACE, now: later() });
    expect(summary(pruned)).toEqual([
      `2026-11-21T10 run-a - delete ${a.length}`,
      '2026-11-21T10 run-b committed keep 0',
      `2026-11-21T10 run-c - delete ${a.length}`,
      `2026-11-21T11 run-d - delete ${a.length}`,
    ]);
    expect(pruned[0]?.reason).toMatch(/not the committed run \(the manifest names run run-b\)/);
    expect(pruned[3]?.reason).toMatch(/no manifest/);
    for (const [window, runId] of [
      ['2026-11-21T10', 'run-a'],
      ['2026-11-21T10', 'run-c'],
      ['2026-11-21T11', 'run-d'],
    ] as const) {
      expect(await runKeys(store, window, runId)).toEqual([]);
    }
    // The committed run and its manifest are untouched, byte for byte.
    expect((await runKeys(store, '2026-11-21T10', 'run-b')).sort()).toEqual([...b].sort());
    expect(Buffer.from(await store.get(keys.manifest('2026-11-21T10')))).toEqual(Buffer.from(manifest));
    // Pruning again finds only the committed run.
    expect(summary(await pruneRuns(store, { olderThanMs: GRACE, now: later() }))).toEqual([
      '2026-11-21T10 run-b committed keep 0',
    ]);
  });

  it('keeps an old superseded folder while the manifest that replaced it is younger than the grace period', async () => {
    await writeRun(store, '2026-11-21T12', 'run-old');
    await commit(store, '2026-11-21T12', 'run-old');
    // The re-run commits a few seconds later; a reader may have read the old manifest just before.
    await sleep(3_000);
    await writeRun(store, '2026-11-21T12', 'run-new');
    await commit(store, '2026-11-21T12', 'run-new');
    const grace = 2_500;
    const now = Date.now() + 500;

    const kept = await pruneRuns(store, { olderThanMs: grace, now });
    expect(summary(kept)).toEqual(['2026-11-21T12 run-new committed keep 0', '2026-11-21T12 run-old - keep 0']);
    expect(kept[1]?.reason).toMatch(/the manifest was written \d+s ago, within the grace period/);

    const pruned = await pruneRuns(store, { olderThanMs: grace, now: now + 10_000 });
    expect(summary(pruned)).toEqual(['2026-11-21T12 run-new committed keep 0', '2026-11-21T12 run-old - delete 8']);
  });

  it('treats a manifest written after the listing as new: a commit racing the prune keeps the folders', async () => {
    await writeRun(store, '2026-11-21T19', 'run-1');
    await writeRun(store, '2026-11-21T19', 'run-2');
    // A manifest without committedAt, which the listing does not show yet.
    await store.put(
      keys.manifest('2026-11-21T19'),
      JSON.stringify({ schema: 'fleetscore.manifest/v1', window: '2026-11-21T19', runId: 'run-2' }),
    );
    const staleListing = withListing(store, {
      list: (p) => store.list(p),
      listObjects: async (p) => (await store.listObjects(p)).filter((o) => !o.key.endsWith('_manifest.json')),
    });
    const folders = await pruneRuns(staleListing, { olderThanMs: GRACE, now: later() });
    expect(summary(folders)).toEqual(['2026-11-21T19 run-1 - keep 0', '2026-11-21T19 run-2 committed keep 0']);
    expect(folders[0]?.reason).toMatch(/the manifest was written 0s ago/);
  });

  it('judges a folder by its newest object: one fresh log keeps a run that looks old', async () => {
    await writeRun(store, '2026-11-21T13', 'run-live');
    await sleep(3_000);
    // A shard attempt of the still running run writes its log now.
    await store.put(keys.attemptLog('2026-11-21T13', 'run-live', 1, 2), 'attempt 2\n');
    const [folder] = await pruneRuns(store, { olderThanMs: 2_500, now: Date.now() + 500 });
    expect(folder).toMatchObject({ runId: 'run-live', action: 'keep', objects: 9 });
    expect(folder?.reason).toMatch(/its run may still be running/);
  });

  it('keeps the logs with keepLogs, and deletes them on a later prune without it', async () => {
    await writeRun(store, '2026-11-21T14', 'run-x');
    await writeRun(store, '2026-11-21T14', 'run-y');
    await commit(store, '2026-11-21T14', 'run-y');

    const first = await pruneRuns(store, { olderThanMs: GRACE, now: later(), keepLogs: true });
    expect(summary(first)).toEqual(['2026-11-21T14 run-x - delete 6', '2026-11-21T14 run-y committed keep 0']);
    expect(await store.list(keys.runPrefix('2026-11-21T14', 'run-x'))).toEqual([]);
    expect(await store.list(keys.runLogsPrefix('2026-11-21T14', 'run-x'))).toHaveLength(2);

    const again = await pruneRuns(store, { olderThanMs: GRACE, now: later(), keepLogs: true });
    expect(again[0]).toMatchObject({ runId: 'run-x', action: 'keep', reason: expect.stringMatching(/only its logs/) });

    const last = await pruneRuns(store, { olderThanMs: GRACE, now: later() });
    expect(summary(last)).toEqual(['2026-11-21T14 run-x - delete 2', '2026-11-21T14 run-y committed keep 0']);
    expect(await store.list(keys.logsPrefix('2026-11-21T14'))).toHaveLength(2);
  });

  it('prunes only the windows it is given and leaves folders fleetscore did not write', async () => {
    await writeRun(store, '2026-11-21T15', 'run-p');
    await writeRun(store, '2026-11-21T16', 'run-q');
    const foreign = ['predictions/window=latest/run=x/notes.txt', 'logs/window=2026-11-21T15/run=a..b/x.jsonl'];
    for (const key of foreign) await store.put(key, 'not ours');

    const one = await pruneRuns(store, { windows: ['2026-11-21T15'], olderThanMs: GRACE, now: later() });
    expect(summary(one)).toEqual(['2026-11-21T15 run-p - delete 8']);
    expect(await store.list(keys.runPrefix('2026-11-21T16', 'run-q'))).toHaveLength(6);

    const all = await pruneRuns(store, { olderThanMs: GRACE, now: later() });
    expect(summary(all)).toEqual(['2026-11-21T16 run-q - delete 8']);
    for (const key of foreign) expect(await store.tryGet(key)).toBeDefined();
  });

  it('deletes nothing when a manifest cannot be read', async () => {
    await writeRun(store, '2026-11-21T17', 'run-r');
    await writeRun(store, '2026-11-21T18', 'run-s');
    await store.put(keys.manifest('2026-11-21T18'), '{ not json');
    await expect(pruneRuns(store, { olderThanMs: GRACE, now: later() })).rejects.toThrow(
      /predictions\/window=2026-11-21T18\/_manifest\.json: not JSON/,
    );
    expect(await store.list(keys.runPrefix('2026-11-21T17', 'run-r'))).toHaveLength(6);
  });
});
