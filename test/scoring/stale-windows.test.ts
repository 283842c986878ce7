/**
 * Late data: the manifest records the input its run read, and a committed window whose input folders changed
 * since (a part added, replaced or removed) is found; one whose input is as it was is not.
 */
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { readIndex } from '../../lib/models/model-index';
import {
  changesSinceCommit,
  checkWindows,
  compareInput,
  findStaleWindows,
  windowsBefore,
} from '../../lib/scoring/stale-windows';
import { keys } from '../../lib/shared/keys';
import { LocalStore } from '../../lib/store/local-store';
import { runWindow } from '../support/run-window';

const [W1, W2, W3] = ['2026-11-21T09', '2026-11-21T10', '2026-11-21T11'];

let dir: string;
let store: LocalStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-stale-'));
  store = new LocalStore(dir);
  // Two parts per hour, so one can be late.
  await seedDemoFleet(store, {
    devices: 4,
    sensors: 2,
    hours: 3,
    endMs: Date.UTC(2026, 10, 21, 12),
    devicesPerPart: 2,
  });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a window committed without a late part, with a part replaced, or with a part removed is stale; others not', async () => {
  const late = keys.aggregatesPart(W1, 1);
  const held = await store.get(late);
  await store.delete(late);
  for (const w of [W1, W2, W3]) await runWindow(store, w, { shardSize: 10 });
  const { manifest } = await runWindow(store, W1, { shardSize: 10 });
  expect(manifest.input?.parts.map((p) => p.key)).toEqual([keys.aggregatesPart(W1, 0)]);
  expect(manifest.input?.parts[0]).toEqual({
    key: keys.aggregatesPart(W1, 0),
    size: expect.any(Number),
    lastModified: expect.any(String),
  });
  expect((await findStaleWindows(store)).stale).toEqual([]);

  await store.put(late, held);
  // Replaced: the same key written again (a later modification time).
  const replaced = keys.aggregatesPart(W2, 0);
  await store.put(replaced, await store.get(replaced));
  const future = new Date(Date.now() + 5_000);
  await utimes(join(dir, replaced), future, future);
  await store.delete(keys.aggregatesPart(W3, 1));

  const report = await findStaleWindows(store);
  expect(report.checked).toBe(3);
  expect(report.stale.map((s) => [s.window, s.added, s.replaced, s.removed])).toEqual([
    [W1, [late], [], []],
    [W2, [], [replaced], []],
    [W3, [], [], [keys.aggregatesPart(W3, 1)]],
  ]);
  expect(report.stale[0]).toMatchObject({ runId: manifest.runId, committedAt: manifest.committedAt });
  const range = await findStaleWindows(store, { fromMs: Date.UTC(2026, 10, 21, 10), toMs: Date.UTC(2026, 10, 21, 11) });
  expect(range.stale.map((s) => s.window)).toEqual([W2]);
});

test('an ETag tells a replaced part where there is one; the time where there is none', () => {
  const part = { key: 'a', size: 1, lastModified: '2026-11-21T00:00:00.000Z' };
  expect(compareInput([{ ...part, etag: '"1"' }], [{ ...part, etag: '"2"' }]).replaced).toEqual(['a']);
  expect(compareInput([{ ...part, etag: '"1"' }], [{ ...part, etag: '"1"', lastModified: 'x' }]).replaced).toEqual([]);
  expect(compareInput([part], [{ ...part, lastModified: 'x' }]).replaced).toEqual(['a']);
});

test('a scheduled run names the windows of its length within its horizon, and only committed ones are checked', async () => {
  const startOf = (h: number) => Date.UTC(2026, 10, 21, h);
  expect(windowsBefore(startOf(6), startOf(12), 1)).toEqual([
    '2026-11-21T11',
    '2026-11-21T10',
    '2026-11-21T09',
    '2026-11-21T08',
    '2026-11-21T07',
    '2026-11-21T06',
  ]);
  expect(windowsBefore(startOf(5), startOf(12), 2)).toEqual([
    '2026-11-21T10_2h',
    '2026-11-21T08_2h',
    '2026-11-21T06_2h',
  ]);
  expect(windowsBefore(startOf(12), startOf(12), 1)).toEqual([]);
  // Of the named windows only the committed ones count; W1..W3 are committed by the test above.
  const report = await checkWindows(store, ['2026-11-21T08', W1, W2]);
  expect(report.checked).toBe(2);
  expect(report.stale.map((s) => s.window)).toEqual([W1, W2]);
});

test('what changed since a commit: nothing; the models the index pins; its input; or an input it does not record', async () => {
  const ownDir = await mkdtemp(join(tmpdir(), 'fleetscore-changes-'));
  const own = new LocalStore(ownDir);
  try {
    await seedDemoFleet(own, {
      devices: 3,
      sensors: 2,
      hours: 1,
      endMs: Date.UTC(2026, 10, 21, 12),
      devicesPerPart: 2,
    });
    const { manifest } = await runWindow(own, W3, { shardSize: 10 });
    const index = await readIndex(own);
    expect(await changesSinceCommit(own, manifest, index)).toEqual([]);

    const { 'dev-00002': removed, ...kept } = index.devices;
    const models = {
      ...index,
      devices: { ...kept, 'dev-00001': { ...kept['dev-00001']!, version: 'v0099' }, 'dev-09999': removed! },
    };
    const changedModels = 'its models changed since (1 device at another version, 1 device added, 1 device removed)';
    expect(await changesSinceCommit(own, manifest, models)).toEqual([changedModels]);

    const part = keys.aggregatesPart(W3, 1);
    const later = new Date(Date.now() + 5_000);
    await utimes(join(ownDir, part), later, later);
    await own.delete(keys.aggregatesPart(W3, 0));
    expect(await changesSinceCommit(own, manifest, models)).toEqual([
      'its input changed since (1 part replaced, 1 part removed)',
      changedModels,
    ]);
    const unrecorded = { ...manifest, input: undefined };
    expect(await changesSinceCommit(own, unrecorded, index)).toEqual([
      'its manifest does not record the input it read',
    ]);
  } finally {
    await rm(ownDir, { recursive: true, force: true });
  }
});
