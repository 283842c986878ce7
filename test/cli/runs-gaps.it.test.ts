/**
 * Failures where people look, through the real `fleetscore` entry point against a real dev server and pool worker:
 * `runs start` lists the failed devices and exits 1 when any failed, `runs show` lists them with the manifest, and
 * `runs gaps` lists the windows that are due and not committed with why (input missing, missed, running and what
 * the run is doing), exiting 1; with `--schedule`, counting the windows a `runs start` scores into its store.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { GapsReport } from '../../cli/commands/runs-gaps';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { keys } from '../../lib/shared/keys';
import { readIndex } from '../../lib/models/model-index';
import { LocalStore } from '../../lib/store/local-store';
import { runWorkflowId, startRun } from '../../lib/temporal/runs';
import { applySchedules } from '../../schedules/schedule-reconciler';
import { fleetscore, STACK_TRACE } from '../support/fleetscore-cli';
import { runCpuWorker, startTemporal, type RunningPools } from '../support/temporal-env';
import { testSchedule } from '../support/test-schedule';

jest.setTimeout(240_000);

const END_MS = Date.UTC(2026, 10, 21, 12);
const [W1, W2, W3] = ['2026-11-21T09', '2026-11-21T10', '2026-11-21T11'];
const SCHEDULE_ID = 'gaps-hourly';

let env: TestWorkflowEnvironment;
let dir: string;
let store: LocalStore;
let pools: RunningPools | undefined;

beforeAll(async () => {
  env = await startTemporal();
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-gaps-'));
  store = new LocalStore(join(dir, 'store'));
  // Three hours of input, then W2's and W3's taken away: W2 is run and fails, W3 is never run.
  await seedDemoFleet(store, { devices: 4, sensors: 2, hours: 3, endMs: END_MS, seed: 4 });
  for (const w of [W2, W3]) for (const key of await store.list(keys.aggregatesPrefix(w))) await store.delete(key);
  // A model whose bytes no longer match the index: that device fails, the rest are scored.
  const { version } = (await readIndex(store)).devices['dev-00001']!;
  await store.put(keys.modelOnnx('dev-00001', version), 'not a model');
  // `runs start` runs on the standard cpu queue: this worker polls it on the test server.
  pools = await runCpuWorker(env);
});

afterAll(async () => {
  await pools?.stop();
  await env?.teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const cli = (...args: string[]) => fleetscore(args, { TEMPORAL_ADDRESS: env.address, FLEETSCORE_STORE: store.uri });

it('runs start lists the failed device and exits 1; runs show lists it from the manifest', async () => {
  const started = await cli('runs', 'start', '--window', W1, '--shard-size', '2', '--input-wait', '0');
  expect(started.stderr).not.toMatch(STACK_TRACE);
  expect(started.code).toBe(1);
  expect(started.stdout).toContain(`window ${W1}: 3 scored, 0 no data, 1 failed`);
  expect(started.stdout).toMatch(/ {2}dev-00001: ModelChecksumMismatch: .*model\.onnx/);

  const shown = await cli('runs', 'show', W1);
  expect(shown.code).toBe(0);
  expect(shown.stdout).toMatch(/dev-00001\s+failed\s+ModelChecksumMismatch/);
});

it('runs gaps lists the due windows without a commit and why, and exits 1', async () => {
  const failed = await cli('runs', 'start', '--window', W2, '--input-wait', '0');
  expect(failed.code).toBe(1);
  expect(failed.stderr).toContain(`no input for window ${W2} after waiting 0s`);

  const gaps = await cli('runs', 'gaps', '--from', W1, '--to', '2026-11-21T12', '--json');
  expect(gaps.code).toBe(1);
  const report = JSON.parse(gaps.stdout) as GapsReport;
  expect(report.gaps).toEqual([
    {
      window: W2,
      reason: 'input missing',
      detail: expect.stringContaining(`an aggregates part missing under ${store.uri}/aggregates/window=${W2}/`),
      workflowId: runWorkflowId(store.uri, W2),
      runId: expect.any(String),
    },
    { window: W3, reason: 'missed' },
  ]);

  const text = await cli('runs', 'gaps', '--from', W1, '--to', W2);
  expect(text.code).toBe(0);
  expect(text.stdout).toContain('no gaps: every due 1h window of');
});

it('runs gaps says what a running window waits for', async () => {
  const handle = await startRun(env.client, { store: store.uri, window: W3, inputWait: '1h' });
  try {
    const gaps = await cli('runs', 'gaps', '--from', W3, '--to', '2026-11-21T12', '--json');
    expect(gaps.code).toBe(1);
    expect((JSON.parse(gaps.stdout) as GapsReport).gaps).toEqual([
      {
        window: W3,
        reason: 'running',
        detail: expect.stringMatching(
          new RegExp(
            `^waiting for input until \\S+Z: 1 folder\\(s\\) empty, e\\.g\\. ${store.uri}/aggregates/window=${W3}/$`,
          ),
        ),
        workflowId: runWorkflowId(store.uri, W3),
        runId: handle.firstExecutionRunId,
      },
    ]);

    // A schedule's gaps count the windows any run scores into its store: W2's failed `runs start` and W3's running
    // one, so only W2 is left to backfill.
    await applySchedules(env.client, [
      testSchedule(SCHEDULE_ID, { paused: true, run: { store: store.uri, shardSize: 500, maxParallelShards: 8 } }),
    ]);
    const scheduled = await cli('runs', 'gaps', '--schedule', SCHEDULE_ID, '--from', W2, '--to', '2026-11-21T12');
    expect(scheduled.code).toBe(1);
    expect(scheduled.stdout).toMatch(new RegExp(`${W2}\\s+input missing`));
    expect(scheduled.stdout).toMatch(
      new RegExp(`${W3}\\s+running\\s+${runWorkflowId(store.uri, W3)}\\s+waiting for input`),
    );
    expect(scheduled.stdout).toContain(
      `2 window(s) of schedule ${SCHEDULE_ID} in [${W2}, 2026-11-21T12) not committed (1 still running: committed ` +
        `when its run ends); rescore the others with: fleetscore backfill --schedule ${SCHEDULE_ID} --from ${W2} ` +
        `--to ${W3}`,
    );
  } finally {
    await handle.cancel();
    await env.client.schedule
      .getHandle(SCHEDULE_ID)
      .delete()
      .catch(() => undefined);
  }
});
