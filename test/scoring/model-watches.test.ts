/**
 * Watched model files (lib/scoring/model-watches.ts), the two halves in one process on a real folder: a device is
 * taken as unchanged without a `stat` only while its watch holds, and any change a `stat` would see, or a move of
 * its folder, `models/` or the store's folder, ends that before the next shard prepares (`settle`). Files with other
 * hard links, version folders that are links, and files changed between the thread's look and the watch are never
 * taken so. Then a worker's shard threads: a model changed in place after its watch was set is scored as changed.
 */
import { linkSync, lstatSync, mkdirSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { planRun } from '../../lib/scoring/plan-run';
import { readJsonFile, type ShardStatusFile } from '../../lib/scoring/manifest';
import { fingerprintOf, print } from '../../lib/scoring/model-freshness';
import { ModelWatches, WatchedModels } from '../../lib/scoring/model-watches';
import { ShardThreads } from '../../lib/scoring/shard-threads';
import { keys } from '../../lib/shared/keys';
import { LocalStore } from '../../lib/store/local-store';
import { predictionRows } from '../../lib/arrow/predictions-columns';
import { readPredictions } from '../../lib/arrow/predictions-decode';

jest.setTimeout(60_000);

const IDLE_MS = 20;
/** Longer than {@link watchNow} takes. */
const STRETCH_GAP_MS = 300;

let root: string;
let watches: ModelWatches;
let warnings: string[];
/** The counts of devices watched the worker told of. */
let counts: number[];
let watched: WatchedModels;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'fleetscore-watches-'));
  warnings = [];
  counts = [];
  watches = new ModelWatches(
    (m) => void warnings.push(m),
    IDLE_MS,
    (n) => void counts.push(n),
  );
  const post = (msg: Parameters<ModelWatches['handle']>[1]) => watches.handle(0, msg, (id) => watched.settled(id));
  watched = new WatchedModels(watches.board(0, 3), post, STRETCH_GAP_MS);
});

afterEach(async () => {
  watches.close();
  await rm(root, { recursive: true, force: true });
});

/** A device's two model files, written anew; their paths. */
function writeModel(device: string, version = 'v1', content = 'a'): [string, string] {
  const dir = join(root, 'models', device, version);
  mkdirSync(dir, { recursive: true });
  const files: [string, string] = [join(dir, 'model.json'), join(dir, 'model.onnx')];
  for (const f of files) writeFileSync(f, `${f}:${content}`);
  return files;
}

/** The files' fingerprint as the freshness check takes it. */
function fingerprint(files: readonly string[]): string {
  return fingerprintOf(
    files.map((f) => {
      const s = lstatSync(f);
      return print({ key: f, size: s.size, lastModified: s.mtime });
    }),
  );
}

/**
 * Asks for the watch of the device's version `v1` as a shard thread does after a `stat` found `files` as `print`,
 * and waits until the worker set it (or not).
 */
async function watchNow(device: string, files: [string, string], print = fingerprint(files)): Promise<boolean> {
  watched.watch(device, root, device, 'v1', print);
  watched.flush();
  watches.setBusy(false);
  await new Promise((done) => setTimeout(done, IDLE_MS * 5));
  await watched.settle();
  return watched.unchanged(device);
}

test('a watched device is unchanged until a file of it is written; asked again, it is watched again', async () => {
  const files = writeModel('dev-a');
  expect(watched.unchanged('dev-a')).toBe(false);
  expect(await watchNow('dev-a', files)).toBe(true);
  expect(counts).toEqual([1]);
  // The same bytes written again: a stat would see a new time, and so does the watch.
  writeFileSync(files[0], `${files[0]}:a`);
  await watched.settle();
  expect(watched.unchanged('dev-a')).toBe(false);
  // The worker's metric counts it no longer.
  expect(counts).toEqual([1, 0]);
  expect(await watchNow('dev-a', files)).toBe(true);
  // A time set back by hand (as `touch -d` or a copy keeping times would): the watch sees that too.
  utimesSync(files[1], new Date('2026-01-01'), new Date('2026-01-01'));
  await watched.settle();
  expect(watched.unchanged('dev-a')).toBe(false);
});

test("a device's files removed, or its version folder, its folder, models/ or the store's folder moved", async () => {
  const cases: [string, (files: [string, string]) => void][] = [
    ['model.onnx removed', (files) => rmSync(files[1])],
    ['version folder moved', () => renameSync(join(root, 'models/dev-a/v1'), join(root, 'models/dev-a/v1-old'))],
    ['device folder moved', () => renameSync(join(root, 'models/dev-a'), join(root, 'models/dev-a-old'))],
    ['models/ moved', () => renameSync(join(root, 'models'), join(root, 'models-old'))],
  ];
  for (const [what, change] of cases) {
    rmSync(join(root, 'models'), { recursive: true, force: true });
    rmSync(join(root, 'models-old'), { recursive: true, force: true });
    const files = writeModel('dev-a');
    writeModel('dev-b');
    expect([what, await watchNow('dev-a', files)]).toEqual([what, true]);
    change(files);
    await watched.settle();
    expect([what, watched.unchanged('dev-a')]).toEqual([what, false]);
  }
});

test("the store's folder moved and another put in its place", async () => {
  const files = writeModel('dev-a');
  expect(await watchNow('dev-a', files)).toBe(true);
  const moved = `${root}-moved`;
  renameSync(root, moved);
  mkdirSync(root);
  try {
    await watched.settle();
    expect(watched.unchanged('dev-a')).toBe(false);
  } finally {
    await rm(moved, { recursive: true, force: true });
  }
});

test('hard-linked files, a linked version folder and files changed since the thread looked are not watched', async () => {
  const linked = writeModel('dev-a');
  linkSync(linked[1], join(root, 'elsewhere.onnx'));
  expect(await watchNow('dev-a', linked)).toBe(false);

  const real = writeModel('dev-b', 'v1-real');
  symlinkSync(join(root, 'models/dev-b/v1-real'), join(root, 'models/dev-b/v1'));
  expect(await watchNow('dev-b', real)).toBe(false);

  const files = writeModel('dev-c');
  const before = fingerprint(files);
  writeFileSync(files[0], 'changed before the watch was set');
  expect(await watchNow('dev-c', files, before)).toBe(false);
  expect(warnings).toEqual([]);
});

test('past its slots a thread keeps the watches used in this stretch of work, else gives up the least recent', async () => {
  for (const d of ['dev-a', 'dev-b', 'dev-c']) expect(await watchNow(d, writeModel(d))).toBe(true);
  // Every slot holds a device used in this stretch: dev-d stays checked by stat, the others keep their watches.
  expect(await watchNow('dev-d', writeModel('dev-d'))).toBe(false);
  expect(['dev-a', 'dev-b', 'dev-c'].map((d) => watched.unchanged(d))).toEqual([true, true, true]);
  // The next stretch (the next run, say) uses dev-c, then dev-a; dev-d takes dev-b's slot.
  await new Promise((done) => setTimeout(done, STRETCH_GAP_MS * 1.5));
  await watched.settle();
  for (const d of ['dev-c', 'dev-a']) expect(watched.unchanged(d)).toBe(true);
  expect(await watchNow('dev-d', writeModel('dev-d'))).toBe(true);
  expect(['dev-a', 'dev-b', 'dev-c', 'dev-d'].map((d) => watched.unchanged(d))).toEqual([true, false, true, true]);
  // dev-b's old watch is gone: a change to it no longer touches the slot dev-d holds now.
  writeFileSync(join(root, 'models/dev-b/v1/model.json'), 'x');
  await watched.settle();
  expect(watched.unchanged('dev-d')).toBe(true);
});

test('no watch is set while a shard runs: only once the worker has been idle', async () => {
  const files = writeModel('dev-a');
  watches.setBusy(true);
  watched.watch('dev-a', root, 'dev-a', 'v1', fingerprint(files));
  watched.flush();
  await new Promise((done) => setTimeout(done, IDLE_MS * 5));
  expect(watched.unchanged('dev-a')).toBe(false);
  watches.setBusy(false);
  await new Promise((done) => setTimeout(done, IDLE_MS * 5));
  expect(watched.unchanged('dev-a')).toBe(true);
});

describe("a worker's shard threads", () => {
  const WINDOW = '2026-11-21T11';
  let dir: string;
  let store: LocalStore;
  let threads: ShardThreads;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetscore-watched-threads-'));
    store = new LocalStore(dir);
    await seedDemoFleet(store, { devices: 8, sensors: 2, hours: 1, endMs: Date.parse('2026-11-21T12:00Z'), seed: 4 });
    threads = new ShardThreads({ threads: 1, cache: {} });
  });

  afterAll(async () => {
    await threads.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Scores the window in a new run of one shard (on `on`); each device's flags. */
  async function run(runId: string, on = threads): Promise<Map<string, boolean[]>> {
    const plan = await planRun(store, { store: dir, window: WINDOW, shardSize: 100, runId });
    await on.score(
      { store: dir, window: WINDOW, windowHours: 1, runId: plan.runId, shard: 0 },
      {
        attempt: 1,
        taskQueue: 'q',
        workflowId: 'wf',
        workflowRunId: 'r',
        heartbeat: () => {},
        log: { info: () => {}, warn: () => {} },
      },
    );
    const status = await readJsonFile<ShardStatusFile>(
      store,
      keys.shardStatus(WINDOW, runId, 0),
      'fleetscore.shard-status/v1',
    );
    const flags = new Map<string, boolean[]>();
    for (const row of predictionRows(readPredictions(await store.get(status.predictions!))))
      flags.set(row.device, [...(flags.get(row.device) ?? []), row.isAnomaly]);
    return flags;
  }

  test('the models a cold run read are watched once the worker is idle: the next run needs no `stat`', async () => {
    const watchedCounts: number[] = [];
    const own = new ShardThreads({
      threads: 1,
      cache: {},
      observer: { watchedModelFolders: (n) => void watchedCounts.push(n) },
    });
    try {
      const scored = await run('cold-watched', own);
      await new Promise((done) => setTimeout(done, 1_500));
      // Every device of the shard (each has rows here).
      expect(watchedCounts.at(-1)).toBe(scored.size);
    } finally {
      await own.close();
    }
  });

  test('a model.json changed in place after its watch was set is scored as changed, as a fresh worker would', async () => {
    await run('cold');
    await run('warm-stat');
    // The worker has been idle long enough to set the watches asked for in the warm run.
    await new Promise((done) => setTimeout(done, 1_500));
    const before = await run('warm-watched');
    const device = [...before.keys()][0]!;
    expect(before.get(device)!.some((f) => !f)).toBe(true);
    // Its threshold lowered to nothing, in place (same version): every row is now an anomaly.
    const index = JSON.parse(Buffer.from(await store.get(keys.modelIndex())).toString()) as {
      devices: Record<string, { version: string }>;
    };
    const metaKey = keys.modelMeta(device, index.devices[device]!.version);
    const meta = JSON.parse(Buffer.from(await store.get(metaKey)).toString()) as Record<string, unknown>;
    writeFileSync(store.localPath(metaKey), JSON.stringify({ ...meta, threshold: -1 }));
    const after = await run('after-change');
    expect(after.get(device)!.every((f) => f)).toBe(true);
    for (const [d, flags] of before) if (d !== device) expect(after.get(d)).toEqual(flags);
  });
});
