/**
 * The commit fence, without servers: real runs of one window (planRun, scoreShard, commitRun) against a local
 * store, committed in every order. A commit only moves the window forward (by run start time), a run's second
 * commit writes nothing, and of racing commits exactly one stands. The S3 store's conditional writes that the
 * fence rests on are in the store contract (test/store), run against MinIO too.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { readManifest } from '../../lib/scoring/manifest';
import { keys } from '../../lib/shared/keys';
import { LocalStore } from '../../lib/store/local-store';
import { commit, planAndScore } from '../support/run-window';

jest.setTimeout(60_000);

const WINDOW = '2026-11-21T11';
const at = (minute: number) => new Date(Date.UTC(2026, 10, 21, 12, minute));

let dir: string;
let store: LocalStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-fence-'));
  store = new LocalStore(dir);
  await seedDemoFleet(store, { devices: 12, sensors: 2, hours: 1, endMs: Date.UTC(2026, 10, 21, 12), seed: 5 });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const manifestText = async () => Buffer.from((await store.tryGet(keys.manifest(WINDOW)))!).toString();

test('an older run cannot replace a newer commit, and the same run commits once', async () => {
  const older = await planAndScore(store, WINDOW);
  const newer = await planAndScore(store, WINDOW);

  await expect(commit(store, newer, at(10))).resolves.toMatchObject({ outcome: 'committed', scored: 12 });
  const committed = await manifestText();

  // The older run finishes late (a stuck worker resumed): it writes nothing and says who stands.
  await expect(commit(store, older, at(5))).resolves.toMatchObject({
    outcome: 'superseded',
    supersededBy: newer.request.runId,
  });
  expect(await manifestText()).toBe(committed);
  const olderLog = await store.list(keys.unitLogsPrefix(WINDOW, older.request.runId, 'commit'));
  const logText = Buffer.from(await store.get(olderLog[0]!)).toString();
  expect(logText).toContain('"event":"superseded"');
  expect(logText).toContain(newer.request.runId);

  // A retried commit of the run that stands (its first reply lost) writes nothing the second time.
  await expect(commit(store, newer, at(10))).resolves.toMatchObject({ outcome: 'already-committed' });
  expect(await manifestText()).toBe(committed);

  // A run that started later replaces the window and names the commit it replaced.
  const rerun = await planAndScore(store, WINDOW);
  await expect(commit(store, rerun, at(20))).resolves.toMatchObject({ outcome: 'committed' });
  expect(await readManifest(store, WINDOW)).toMatchObject({
    runId: rerun.request.runId,
    runStartedAt: at(20).toISOString(),
    supersedes: { runId: newer.request.runId },
  });
});

test('of two racing commits exactly one stands, and it is the run that started later', async () => {
  for (let round = 0; round < 3; round++) {
    const first = await planAndScore(store, WINDOW);
    const second = await planAndScore(store, WINDOW);
    const startedFirst = at(30 + round * 10);
    const startedSecond = at(31 + round * 10);
    const results = await Promise.all([commit(store, first, startedFirst), commit(store, second, startedSecond)]);
    // The later run commits whatever the order; the earlier one is either superseded at once, or committed
    // first and then replaced (its manifest named by the winner's `supersedes`).
    expect(results[1].outcome).toBe('committed');
    expect(['superseded', 'committed']).toContain(results[0].outcome);
    const manifest = await readManifest(store, WINDOW);
    expect(manifest?.runId).toBe(second.request.runId);
    if (results[0].outcome === 'committed') expect(manifest?.supersedes?.runId).toBe(first.request.runId);
    expect((await store.list(keys.predictionsPrefix(WINDOW))).filter((k) => k.endsWith('_manifest.json'))).toEqual([
      keys.manifest(WINDOW),
    ]);
  }
});

test("a re-run whose every device fails keeps the window's earlier commit", async () => {
  const own = await mkdtemp(join(tmpdir(), 'fleetscore-fence-kept-'));
  const s = new LocalStore(own);
  try {
    await seedDemoFleet(s, { devices: 4, sensors: 2, hours: 1, endMs: Date.UTC(2026, 10, 21, 12), seed: 9 });
    const good = await planAndScore(s, WINDOW);
    await expect(commit(s, good, at(10))).resolves.toMatchObject({ outcome: 'committed', scored: 4 });
    const committed = Buffer.from((await s.tryGet(keys.manifest(WINDOW)))!).toString();

    // A part delivered twice: every row of every device is there two times, so every device fails.
    const [part] = (await s.list(keys.aggregatesPrefix(WINDOW))).filter((k) => k.endsWith('.arrow'));
    await s.put(part!.replace(/\.arrow$/, '-again.arrow'), await s.get(part!));
    const broken = await planAndScore(s, WINDOW);
    await expect(commit(s, broken, at(20))).resolves.toMatchObject({
      outcome: 'kept',
      supersededBy: good.request.runId,
      scored: 0,
      failed: 4,
    });
    expect(Buffer.from((await s.tryGet(keys.manifest(WINDOW)))!).toString()).toBe(committed);
    const log = await s.list(keys.unitLogsPrefix(WINDOW, broken.request.runId, 'commit'));
    expect(Buffer.from(await s.get(log[0]!)).toString()).toMatch(/"event":"kept".*every device of this run failed/);

    // Once a run scores devices again, it replaces the window as any later run does.
    await s.delete(part!.replace(/\.arrow$/, '-again.arrow'));
    const fixed = await planAndScore(s, WINDOW);
    await expect(commit(s, fixed, at(30))).resolves.toMatchObject({ outcome: 'committed', scored: 4 });
    expect(await readManifest(s, WINDOW)).toMatchObject({ supersedes: { runId: good.request.runId } });
  } finally {
    await rm(own, { recursive: true, force: true });
  }
});
