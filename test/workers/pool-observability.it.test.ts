/**
 * Observability and pool routing on a real dev server with real pool workers: Prometheus metrics (the SDK's and
 * fleetscore's) on the runtime's exporter, JSON log lines carrying run, window, shard and attempt, and a run
 * whose gpu shards have no worker: it lists them as waiting (progress query, `runs watch`), finishes when a gpu
 * worker arrives, and fails those devices with PoolUnavailable when none comes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { keys } from '../../lib/shared/keys';
import { SCORING_WORKFLOW, type RunProgress } from '../../lib/shared/names';
import { progressQuery } from '../../lib/shared/queries';
import { readManifest } from '../../lib/scoring/manifest';
import type { RunSummary, ScoringRunInput } from '../../lib/shared/run-types';
import { LocalStore } from '../../lib/store/local-store';
import { progressStatus, watchRun, type RunSnapshot } from '../../lib/temporal/run-watch';
import { windowAt } from '../../lib/shared/window';
import { READ_AHEAD_MESSAGE } from '../../activities';
import { createPoolWorker, type PoolWorker } from '../../workers/pool-worker';
import { startTemporal, uniqueTaskQueue } from '../support/temporal-env';
import { freePort } from '../support/free-port';
import { metricSamples } from '../support/prometheus-text';

jest.setTimeout(180_000);

const DEVICES = 12;
const END_MS = Date.UTC(2026, 10, 21, 12);
const WINDOW = windowAt(END_MS - 3_600_000).id;

let env: TestWorkflowEnvironment;
let dir: string;
let store: LocalStore;
let metricsPort: number;
const logs: string[] = [];
const workers: PoolWorker[] = [];
const running: Promise<unknown>[] = [];
const taskQueues = { cpu: uniqueTaskQueue('obs-cpu'), gpu: uniqueTaskQueue('obs-gpu') };

async function startWorker(pool: 'cpu' | 'gpu', taskQueue: string): Promise<PoolWorker> {
  const w = await createPoolWorker({
    pool,
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue,
    gpuFallback: 'cpu',
    maxConcurrentShards: 2,
  });
  workers.push(w);
  running.push(w.worker.run());
  return w;
}

beforeAll(async () => {
  metricsPort = await freePort();
  env = await startTemporal({
    logFormat: 'json',
    metricsAddress: `127.0.0.1:${metricsPort}`,
    write: (line) => logs.push(line),
  });
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-obs-'));
  store = new LocalStore(join(dir, 'store'));
  await seedDemoFleet(store, { devices: DEVICES, sensors: 4, hours: 1, endMs: END_MS, seed: 3, gpuEvery: 3 });
  await startWorker('cpu', taskQueues.cpu);
  await startWorker('gpu', taskQueues.gpu);
});

afterAll(async () => {
  for (const w of workers) w.worker.shutdown();
  await Promise.all(running);
  await Promise.all(workers.map((w) => w.close()));
  await env?.teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function start(input: Partial<ScoringRunInput>, id: string) {
  return env.client.workflow.start(SCORING_WORKFLOW, {
    taskQueue: taskQueues.cpu,
    workflowId: `${id}-${Date.now()}`,
    args: [{ store: store.uri, window: WINDOW, shardSize: 2, taskQueues, ...input }],
  });
}

/** Sums the samples of a Prometheus metric whose labels include `labels`. */
function sample(metrics: string, name: string, labels: string): number {
  return metricSamples(metrics, name)
    .filter((s) => s.labels.includes(labels))
    .reduce((sum, s) => sum + s.value, 0);
}

test('workers export the SDK metrics and fleetscore counters on the Prometheus port, and log JSON with ids', async () => {
  const handle = await start({}, 'metrics');
  const summary: RunSummary = await handle.result();
  expect(summary.scored).toBe(DEVICES);

  // The exporter is pull-based; counters appear once recorded.
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const scored =
    sample(metrics, 'fleetscore_devices_scored_total', 'pool="cpu"') +
    sample(metrics, 'fleetscore_devices_scored_total', 'pool="gpu"');
  expect(scored).toBe(DEVICES);
  expect(sample(metrics, 'fleetscore_devices_scored_total', 'pool="gpu"')).toBe(DEVICES / 3);
  expect(sample(metrics, 'fleetscore_rows_scored_total', 'pool=')).toBe(summary.rows);
  expect(sample(metrics, 'fleetscore_model_cache_misses_total', 'pool=')).toBe(DEVICES);
  // Demo models are stacked: one inference call per shard (each shard holds fewer than 256 devices).
  expect(sample(metrics, 'fleetscore_inference_seconds_count', 'pool=')).toBe(summary.shards);
  expect(metrics).toMatch(/^fleetscore_devices_failed_total\{/m);
  // Demo models are stacked, not compiled: the program counters are exported at 0.
  for (const origin of ['cached', 'saved', 'compiled'])
    expect(sample(metrics, 'fleetscore_model_programs_total', `origin="${origin}"`)).toBe(0);
  expect(metrics).toMatch(/^fleetscore_model_programs_total\{[^}]*origin="compiled"/m);
  // The gauge of watched model folders, from 0 (the devices a run read are watched once the worker is idle).
  expect(metrics).toMatch(/^fleetscore_watched_model_folders\{[^}]*pool="cpu"/m);
  // The window's parts: read by one shard thread each, and taken by the other (the plan's read ahead asks both).
  expect(sample(metrics, 'fleetscore_window_parts_total', 'how="read"')).toBeGreaterThan(0);
  expect(sample(metrics, 'fleetscore_window_parts_total', 'how="taken"')).toBeGreaterThan(0);
  // The SDK's own worker metrics on the same port.
  expect(metrics).toMatch(/^temporal_activity_execution_latency_count\{.*activity_type="scoreShard"/m);
  expect(metrics).toMatch(/^temporal_worker_task_slots_available\{/m);

  // Structured logs: every line is JSON; the shard's lines name the run, window, shard and attempt.
  const entries = logs.map((l) => JSON.parse(l) as Record<string, unknown>);
  const scoredLine = entries.find((e) => e.message === 'shard scored' && e.workflowId === handle.workflowId);
  expect(scoredLine).toMatchObject({
    level: 'info',
    window: WINDOW,
    shard: expect.any(Number),
    attempt: 1,
    workflowRunId: handle.firstExecutionRunId,
    activityType: 'scoreShard',
    taskQueue: expect.stringMatching(/^obs-/),
  });
  expect(entries.find((e) => String(e.message).startsWith('gpu pool:'))).toMatchObject({ pool: 'gpu', shards: 2 });
  // The planning worker's shard threads read the window ahead of its shards, and say when and for how long (the
  // bench counts that time as the worker's, not Temporal's).
  const readAhead = entries.find((e) => e.message === READ_AHEAD_MESSAGE && e.runId === handle.firstExecutionRunId);
  expect(readAhead).toMatchObject({ level: 'info', window: WINDOW, parts: 1, ms: expect.any(Number) });
  const startedAt = Date.parse(String(readAhead!.startedAt));
  expect(startedAt).toBeGreaterThan(Date.now() - 120_000);
  expect(startedAt).toBeLessThanOrEqual(Date.now());
});

test('gpu shards without a gpu worker are listed as waiting, then scored when a gpu worker arrives', async () => {
  const lateGpu = uniqueTaskQueue('late-gpu');
  const handle = await start(
    {
      pool: 'gpu',
      taskQueues: { ...taskQueues, gpu: lateGpu },
      timeouts: { poolWaitNotice: '1s', poolWaitLimit: '5 minutes' },
    },
    'late',
  );
  const snapshots: RunSnapshot[] = [];
  const watched = watchRun(env.client, handle.workflowId, (s) => snapshots.push(s), 250);

  let progress: RunProgress | undefined;
  for (let i = 0; i < 120 && !progress?.waiting?.length; i++) {
    await new Promise((r) => setTimeout(r, 250));
    progress = await handle.query(progressQuery);
  }
  expect(progress!.waiting!.length).toBeGreaterThan(0);
  expect(progress!.waiting![0]).toMatchObject({ pool: 'gpu', taskQueue: lateGpu, notices: expect.any(Number) });
  const described = await handle.describe();
  expect(described.status.name).toBe('RUNNING');

  await startWorker('gpu', lateGpu);
  const result = await watched;
  expect(result.summary).toMatchObject({ scored: DEVICES, failed: 0, failedShards: 0 });
  expect((await handle.query(progressQuery)).waiting).toEqual([]);
  // `runs watch` saw the waiting shards in its status line.
  const statuses = snapshots.filter((s) => s.progress).map((s) => progressStatus(s.progress!));
  expect(statuses.some((s) => /waiting for gpu: shard \d/.test(s))).toBe(true);
  const logged = logs.map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(logged.some((e) => e.level === 'warn' && /is waiting for pool gpu/.test(String(e.message)))).toBe(true);
});

test('gpu shards whose pool never comes fail with PoolUnavailable and the run still commits', async () => {
  // Without the earlier tests' commit of the window: a run whose every device failed would keep it (outcome `kept`).
  await store.delete(keys.manifest(WINDOW));
  const nobody = uniqueTaskQueue('no-gpu');
  const handle = await start(
    {
      pool: 'gpu',
      taskQueues: { ...taskQueues, gpu: nobody },
      timeouts: { poolWaitNotice: '1s', poolWaitLimit: '3s' },
    },
    'never',
  );
  const summary: RunSummary = await handle.result();
  expect(summary).toMatchObject({
    devices: DEVICES,
    scored: 0,
    failed: DEVICES,
    failedShards: DEVICES / 2,
    outcome: 'committed',
  });
  // The result names every failed device of the failed shards, and the shards with why: not only the manifest.
  expect(summary.failures).toHaveLength(Math.min(DEVICES, 20));
  expect(summary.failures[0]!.reason).toMatch(/^shard failed: no worker of pool gpu .* started shard \d+ within 3s/);
  expect(summary.shardFailures).toHaveLength(DEVICES / 2);
  const manifest = await readManifest(store, WINDOW);
  expect(manifest!.shards.every((s) => s.status === 'failed')).toBe(true);
  expect(manifest!.shards[0]!.reason).toMatch(
    new RegExp(`no worker of pool gpu \\(task queue ${nobody}\\) started shard`),
  );
});
