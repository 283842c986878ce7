/**
 * `fleetscore predictions prune` through the real entry point in a child process, on a local store whose run
 * folders are aged by their files' modification times: what it prints, what it deletes, and what it keeps.
 */
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keys } from '../../lib/shared/keys';
import type { Manifest } from '../../lib/scoring/manifest';
import type { RunFolder } from '../../lib/scoring/prune-runs';
import { LocalStore } from '../../lib/store/local-store';
import type { PruneReport } from '../../cli/commands/predictions';
import { fleetscore, STACK_TRACE } from '../support/fleetscore-cli';

jest.setTimeout(60_000);

const WINDOW = '2026-11-21T12';
const OTHER_WINDOW = '2026-11-21T13';
/** A daily window: its own id and folders, pruned like any other and found by its start. */
const DAY_WINDOW = '2026-11-21T00_24h';

let dir: string;
let store: LocalStore;

/** Writes a run's files (one shard and its log), with modification times `ageMs` in the past. */
async function writeRun(window: string, runId: string, ageMs: number): Promise<void> {
  const written = [
    keys.shardPlan(window, runId, 0),
    keys.predictions(window, runId, 0),
    keys.shardStatus(window, runId, 0),
    keys.attemptLog(window, runId, 0, 1),
  ];
  const when = new Date(Date.now() - ageMs);
  for (const key of written) {
    await store.put(key, `${key}\n`);
    await utimes(join(dir, key), when, when);
  }
}

async function commit(window: string, runId: string, ageMs: number): Promise<void> {
  const manifest: Pick<Manifest, 'schema' | 'window' | 'runId'> = { schema: 'fleetscore.manifest/v1', window, runId };
  await store.put(keys.manifest(window), JSON.stringify(manifest));
  const when = new Date(Date.now() - ageMs);
  await utimes(join(dir, keys.manifest(window)), when, when);
}

const DAY = 24 * 3_600_000;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-prune-cli-'));
  store = new LocalStore(dir);
  // WINDOW: run-old committed two days ago, re-run as run-new a day and a half ago; run-live is running now.
  await writeRun(WINDOW, 'run-old', 2 * DAY);
  await writeRun(WINDOW, 'run-new', 1.5 * DAY);
  await commit(WINDOW, 'run-new', 1.5 * DAY);
  await writeRun(WINDOW, 'run-live', 60_000);
  // OTHER_WINDOW: a run that failed three days ago; nothing committed.
  await writeRun(OTHER_WINDOW, 'run-failed', 3 * DAY);
  await writeRun(DAY_WINDOW, 'run-daily', 3 * DAY);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const prune = (...args: string[]) => fleetscore(['predictions', 'prune', '--store', dir, ...args]);

it('prints what a dry run would delete and deletes nothing', async () => {
  const { code, stdout, stderr } = await prune('--dry-run');
  expect(stderr).toBe('');
  expect(code).toBe(0);
  const lines = stdout.split('\n');
  expect(lines[0]).toMatch(/^window\s+run\s+committed\s+objects\s+bytes\s+newest object\s+action\s+why$/);
  expect(lines.find((l) => l.includes('run-old'))).toMatch(/would delete\s+not the committed run/);
  expect(lines.find((l) => l.includes('run-new'))).toMatch(/yes\s.*kept\s+the committed run/);
  expect(lines.find((l) => l.includes('run-live'))).toMatch(/kept\s+written 1m\d+s ago, within the grace period/);
  expect(lines.find((l) => l.includes('run-failed'))).toMatch(/would delete\s+the window has no manifest/);
  expect(lines.find((l) => l.includes('run-daily'))).toMatch(/^2026-11-21T00_24h .*would delete/);
  expect(stdout).toContain('would delete 3 run folder(s), 12 object(s); kept 2; grace period 24h (dry run');
  expect(await store.list(keys.runPrefix(WINDOW, 'run-old'))).toHaveLength(3);
});

it('deletes the old folders of runs the manifest does not name, in one window or all, and reports them as JSON', async () => {
  const one = await prune('--window', OTHER_WINDOW, '--json');
  expect(one.code).toBe(0);
  const report = JSON.parse(one.stdout) as PruneReport;
  expect(report).toMatchObject({ store: store.uri, dryRun: false, olderThan: '24h', keepLogs: false });
  expect(report.folders).toEqual([
    expect.objectContaining<Partial<RunFolder>>({
      window: OTHER_WINDOW,
      runId: 'run-failed',
      action: 'delete',
      deleted: 4,
    }),
  ]);
  expect(await store.list(keys.runPrefix(OTHER_WINDOW, 'run-failed'))).toEqual([]);
  expect(await store.list(keys.runPrefix(WINDOW, 'run-old'))).toHaveLength(3);

  // A grace period of two days keeps run-old (written two days ago, to the minute) one more prune.
  const all = await prune('--from', WINDOW, '--to', '2026-11-21T14', '--older-than', '49h');
  expect(all.code).toBe(0);
  expect(all.stdout).toContain('deleted 0 run folder(s), 0 object(s); kept 3; grace period 49h');

  // A range takes in the windows of any length that start in it: the day starts at 00.
  const day = await prune('--from', '2026-11-21T00', '--to', '2026-11-21T01');
  expect(day.stdout).toMatch(/2026-11-21T00_24h\s+run-daily .*deleted/);
  expect(day.stdout).toContain('deleted 1 run folder(s), 4 object(s); kept 0');

  const logsKept = await prune('--keep-logs');
  expect(logsKept.code).toBe(0);
  expect(logsKept.stdout).toMatch(/run-old .*deleted/);
  expect(logsKept.stdout).toContain('deleted 1 run folder(s), 3 object(s) (logs kept); kept 2');
  expect(await store.list(keys.runPrefix(WINDOW, 'run-old'))).toEqual([]);
  expect(await store.list(keys.runLogsPrefix(WINDOW, 'run-old'))).toHaveLength(1);
  // What a reader needs is all there: the manifest and the run it names.
  expect(await store.list(keys.runPrefix(WINDOW, 'run-new'))).toHaveLength(3);
  expect(await store.tryGet(keys.manifest(WINDOW))).toBeDefined();
  expect(await store.list(keys.runPrefix(WINDOW, 'run-live'))).toHaveLength(3);
});

it.each([
  [['--older-than', '24'], /^fleetscore: --older-than: must be a duration of at least 1h, like 24h or 7d, got "24"\n/],
  [['--older-than', 'forever'], /^fleetscore: --older-than: must be a duration/],
  [
    ['--window', WINDOW, '--from', WINDOW, '--to', OTHER_WINDOW],
    /^fleetscore: --window: give either a window or --from\/--to, not both\n/,
  ],
  [[WINDOW, '--from', WINDOW, '--to', OTHER_WINDOW], /^fleetscore: WINDOW: give either a window or --from\/--to/],
  [['--from', WINDOW], /^fleetscore: --to: pass --from and --to together/],
  [['--from', OTHER_WINDOW, '--to', WINDOW], /^fleetscore: --to: must be after --from/],
  [['--window', '2026-11-21T12:30:00Z'], /does not fall on a whole UTC hour/],
])('refuses %j with a message, exit 1 and nothing deleted', async (args, message) => {
  const { code, stdout, stderr } = await prune(...args);
  expect(code).toBe(1);
  expect(stdout).toBe('');
  expect(stderr).toMatch(message);
  expect(stderr).not.toMatch(STACK_TRACE);
  expect(await store.list(keys.runPrefix(OTHER_WINDOW, 'run-failed'))).toHaveLength(3);
});
