/**
 * Late data, end to end on a real dev server and pool worker: a part that lands after its window was committed is
 * found by `fleetscore runs stale` and scored by `fleetscore runs rescore --stale` through the same workflow; a run
 * with `rescoreLateWithin` scores an earlier window with late data on its own. Each new commit holds every row and
 * names the run it superseded.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { readManifest } from '../../lib/scoring/manifest';
import type { StaleReport } from '../../lib/scoring/stale-windows';
import { keys } from '../../lib/shared/keys';
import type { RunSummary, ScoringRunInput } from '../../lib/shared/run-types';
import { LocalStore } from '../../lib/store/local-store';
import { runWorkflowId, startRun } from '../../lib/temporal/runs';
import { fleetscore } from '../support/fleetscore-cli';
import { runCpuWorker, startTemporal, type RunningPools } from '../support/temporal-env';

jest.setTimeout(240_000);

const DEVICES = 4;
const [W1, W2, W3] = ['2026-11-21T09', '2026-11-21T10', '2026-11-21T11'];

let env: TestWorkflowEnvironment;
let dir: string;
let store: LocalStore;
let pools: RunningPools | undefined;
/** The parts held back from W1 and W2 until after their first commit. */
const late = new Map<string, Uint8Array>();

beforeAll(async () => {
  env = await startTemporal();
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-late-'));
  store = new LocalStore(join(dir, 'store'));
  await seedDemoFleet(store, {
    devices: DEVICES,
    sensors: 2,
    hours: 3,
    endMs: Date.UTC(2026, 10, 21, 12),
    devicesPerPart: 2,
  });
  for (const w of [W1, W2]) {
    const key = keys.aggregatesPart(w, 1);
    late.set(key, await store.get(key));
    await store.delete(key);
  }
  // The CLI starts runs on the standard cpu queue: this worker polls it on the test server.
  pools = await runCpuWorker(env);
});

afterAll(async () => {
  await pools?.stop();
  await env?.teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const cli = (...args: string[]) => fleetscore([...args, '--store', store.uri], { TEMPORAL_ADDRESS: env.address });

/** Commits `window` with what its input holds now; returns the run's id. */
async function commitNow(window: string, extra: Pick<ScoringRunInput, 'rescoreLateWithin'> = {}): Promise<RunSummary> {
  const handle = await startRun(env.client, { store: store.uri, window, pool: 'cpu', settle: 0, ...extra });
  return handle.result();
}

async function landLatePart(window: string): Promise<void> {
  const key = keys.aggregatesPart(window, 1);
  await store.put(key, late.get(key)!);
}

test('runs stale finds the window a late part landed in, and runs rescore --stale scores it whole', async () => {
  const first = await commitNow(W1);
  expect(first).toMatchObject({ scored: DEVICES / 2, noData: DEVICES / 2 });
  const firstRun = (await readManifest(store, W1))!.runId;
  await landLatePart(W1);

  const stale = await cli('runs', 'stale', '--from', W1, '--to', W2, '--json');
  expect(stale.code).toBe(1);
  const report = JSON.parse(stale.stdout) as StaleReport;
  expect(report.stale).toEqual([
    expect.objectContaining({ window: W1, runId: firstRun, added: [keys.aggregatesPart(W1, 1)] }),
  ]);

  const rescored = await cli('runs', 'rescore', '--stale', '--from', W1, '--to', W2);
  expect(rescored.stderr).toBe('');
  expect(rescored.code).toBe(0);
  expect(rescored.stdout).toMatch(new RegExp(`${W1}\\s+completed\\s+${DEVICES}\\s+0\\s+${firstRun}`));
  const manifest = (await readManifest(store, W1))!;
  expect(manifest.counts).toMatchObject({ scored: DEVICES, noData: 0, rows: DEVICES * 60 });
  expect(manifest.supersedes?.runId).toBe(firstRun);
  expect(manifest.input?.parts).toHaveLength(2);
  expect((await cli('runs', 'stale', '--from', W1, '--to', W2)).code).toBe(0);
});

test('a run with rescoreLateWithin scores an earlier window with late data on its own', async () => {
  await commitNow(W2);
  const firstRun = (await readManifest(store, W2))!.runId;
  await landLatePart(W2);
  const summary = await commitNow(W3, { rescoreLateWithin: '2h' });
  expect(summary.rescored).toEqual([W2]);
  const child = await env.client.workflow.getHandle(runWorkflowId(store.uri, W2)).result();
  expect(child).toMatchObject({ window: W2, scored: DEVICES, noData: 0 });
  const manifest = (await readManifest(store, W2))!;
  expect(manifest.supersedes?.runId).toBe(firstRun);
  expect(manifest.counts.rows).toBe(DEVICES * 60);
});
