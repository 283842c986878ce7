/**
 * scoringRun end to end on a real Temporal dev server, real pool workers (onnxruntime-node CPU provider) and
 * a local store seeded with a demo fleet: every committed prediction is checked against an independent
 * computation and the demo's ground truth.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { decodePredictions, predictionRows } from '../../lib/arrow/predictions';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { demoFeatureNames } from '../../lib/demo/demo-ids';
import { trainDemoModel } from '../../lib/demo/demo-model';
import { readDemoTruth } from '../../lib/demo/demo-truth';
import { keys } from '../../lib/shared/keys';
import { buildMahalanobisModel } from '../../lib/models/onnx-builder';
import { registerModel } from '../../lib/models/model-registry';
import { SCORING_WORKFLOW } from '../../lib/shared/names';
import { readManifest } from '../../lib/scoring/manifest';
import { MAX_SHARD_SIZE, type RunSummary, type ScoringRunInput } from '../../lib/shared/run-types';
import { LocalStore } from '../../lib/store/local-store';
import { windowAt } from '../../lib/shared/window';
import { runWorkflowId, startRun } from '../../lib/temporal/runs';
import { close, referenceMahalanobis } from '../support/expected-scores';
import { runPoolWorkers, startTemporal, uniqueTaskQueue, type RunningPools } from '../support/temporal-env';

jest.setTimeout(180_000);

const SEED = 7;
const DEVICES = 10;
const SENSORS = 4;
const END_MS = Date.UTC(2026, 10, 21, 12);
const WINDOW = windowAt(END_MS - 3_600_000).id; // 2026-11-21T11, the last seeded window
const BAD = 'dev-00002';

let env: TestWorkflowEnvironment;
let dir: string;
let store: LocalStore;
let pools: RunningPools | undefined;
const taskQueues = { cpu: uniqueTaskQueue('cpu'), gpu: uniqueTaskQueue('gpu') };

beforeAll(async () => {
  env = await startTemporal();
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-run-'));
  store = new LocalStore(join(dir, 'store'));
  await seedDemoFleet(store, {
    devices: DEVICES,
    sensors: SENSORS,
    hours: 2,
    endMs: END_MS,
    seed: SEED,
    gpuEvery: 3,
    anomalyRate: 0.05,
  });
  // A device whose new model version needs a column the aggregates lack, and one with a model but no rows.
  const model = trainDemoModel(SEED, 1, SENSORS);
  const onnx = buildMahalanobisModel({ mean: [...model.mean32], precision: rows(model.precision32, SENSORS) });
  const meta = {
    pool: 'cpu' as const,
    input: { name: 'X' },
    output: { name: 'score' },
    anomalyWhen: 'above' as const,
    threshold: model.threshold,
  };
  await registerModel(store, {
    device: BAD,
    onnx,
    meta: { ...meta, features: [...demoFeatureNames(SENSORS - 1), 'humidity'] },
  });
  await registerModel(store, { device: 'dev-silent', onnx, meta: { ...meta, features: demoFeatureNames(SENSORS) } });

  pools = await runPoolWorkers(env, taskQueues);
});

afterAll(async () => {
  await pools?.stop();
  await env?.teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function rows(flat: ArrayLike<number>, k: number): number[][] {
  return Array.from({ length: k }, (_, i) => Array.from({ length: k }, (_, j) => Number(flat[i * k + j])));
}

function run(input: Partial<ScoringRunInput>, id: string): Promise<RunSummary> {
  return env.client.workflow.execute(SCORING_WORKFLOW, {
    taskQueue: taskQueues.cpu,
    workflowId: `${id}-${Date.now()}`,
    args: [{ store: store.uri, taskQueues, ...input }],
  });
}

test('scores every device of a window on both pools and commits predictions that match the ground truth', async () => {
  const summary = await run({ window: WINDOW, shardSize: 4, maxParallelShards: 2 }, 'full');
  expect(summary).toMatchObject({
    window: WINDOW,
    devices: DEVICES + 1,
    scored: DEVICES - 1,
    noData: 1,
    failed: 1,
    failedShards: 0,
  });
  expect(summary.failures).toEqual([{ device: BAD, reason: expect.stringContaining('humidity') }]);

  const manifest = await readManifest(store, WINDOW);
  expect(manifest).toBeDefined();
  expect(manifest!.counts).toMatchObject({
    devices: DEVICES + 1,
    scored: DEVICES - 1,
    noData: 1,
    failed: 1,
    rows: (DEVICES - 1) * 60,
  });
  expect(manifest!.devices['dev-silent']).toEqual({ status: 'no-data', version: 'v0001' });
  expect(manifest!.devices[BAD]).toMatchObject({
    status: 'failed',
    version: 'v0002',
    field: 'humidity',
    file: expect.stringContaining(`window=${WINDOW}`),
  });
  // Both pools scored shards: every third demo device is labelled gpu.
  expect(new Set(manifest!.shards.map((s) => s.pool))).toEqual(new Set(['cpu', 'gpu']));

  const truth = await readDemoTruth(store, WINDOW);
  const anomalous = new Set(truth!.anomalies.filter((a) => a.device !== BAD).map((a) => `${a.device}@${a.ts}`));
  expect(anomalous.size).toBeGreaterThan(0);
  const seen = new Set<string>();
  let anomalies = 0;
  for (const shard of manifest!.shards) {
    if (!shard.predictions) continue;
    for (const row of predictionRows(decodePredictions(await store.get(shard.predictions)))) {
      const id = `${row.device}@${row.ts}`;
      expect(seen.has(id)).toBe(false);
      seen.add(id);
      const index = Number(row.device.slice(4));
      const model = trainDemoModel(SEED, index, SENSORS);
      const x = await inputRow(row.device, row.ts);
      expect(close(row.score, referenceMahalanobis(x, model.mean32, model.precision32))).toBe(true);
      expect(row.isAnomaly).toBe(anomalous.has(id));
      if (row.isAnomaly) anomalies++;
    }
  }
  expect(seen.size).toBe((DEVICES - 1) * 60);
  expect(anomalies).toBe(anomalous.size);
  expect(summary.anomalies).toBe(anomalous.size);
});

/** The feature values of one input row, read back from the seeded aggregates with a plain Arrow read. */
const aggregateCache = new Map<string, Map<string, number[]>>();
async function inputRow(device: string, ts: number): Promise<number[]> {
  let table = aggregateCache.get(WINDOW);
  if (!table) {
    const { tableFromIPC } = await import('apache-arrow');
    table = new Map();
    for (const key of await store.list(keys.aggregatesPrefix(WINDOW))) {
      for (const r of tableFromIPC(await store.get(key))) {
        const row = r.toJSON() as Record<string, unknown>;
        table.set(
          `${String(row.device_id)}@${Number(row.ts)}`,
          demoFeatureNames(SENSORS).map((f) => Number(row[f])),
        );
      }
    }
    aggregateCache.set(WINDOW, table);
  }
  const x = table.get(`${device}@${ts}`);
  if (!x) throw new Error(`no input row for ${device} at ${ts}`);
  return x;
}

test('a re-run of a committed window overwrites it: same predictions, one manifest', async () => {
  const first = await readManifest(store, WINDOW);
  const again = await run({ window: WINDOW, shardSize: 4 }, 'rerun');
  const second = await readManifest(store, WINDOW);
  expect(again.scored).toBe(DEVICES - 1);
  expect(second!.runId).not.toBe(first!.runId);
  expect(second!.counts).toEqual(first!.counts);
  const files = await store.list(keys.predictionsPrefix(WINDOW));
  expect(files.filter((f) => f.endsWith('_manifest.json'))).toHaveLength(1);
});

test('a plan with more shards than shardsPerChild is scored by child workflows and commits the same outcomes', async () => {
  const before = await readManifest(store, WINDOW);
  const workflowId = `fanout-${Date.now()}`;
  const summary = await env.client.workflow.execute(SCORING_WORKFLOW, {
    taskQueue: taskQueues.cpu,
    workflowId,
    args: [{ store: store.uri, taskQueues, window: WINDOW, shardSize: 1, shardsPerChild: 4, maxParallelShards: 2 }],
  });
  expect(summary).toMatchObject({ shards: DEVICES + 1, scored: DEVICES - 1, noData: 1, failed: 1, failedShards: 0 });
  expect(summary.failures).toEqual([{ device: BAD, reason: expect.stringContaining('humidity') }]);
  const after = await readManifest(store, WINDOW);
  expect(after!.workflowId).toBe(workflowId);
  expect(after!.counts).toEqual(before!.counts);
  expect(after!.devices).toEqual(before!.devices);
  expect(after!.shards).toHaveLength(DEVICES + 1);

  // The run's own history holds three child workflows and no shard activity; each child holds its slice.
  const { events } = await env.client.workflow.getHandle(workflowId).fetchHistory();
  const children = (events ?? []).filter((e) => e.childWorkflowExecutionCompletedEventAttributes);
  expect(children.map((e) => e.childWorkflowExecutionCompletedEventAttributes!.workflowExecution!.workflowId)).toEqual(
    [0, 4, 8].map((first) => expect.stringMatching(new RegExp(`^${workflowId}-shards-${first}-`))),
  );
  expect((events ?? []).some((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'scoreShard')).toBe(
    false,
  );
  const childId = children[2]!.childWorkflowExecutionCompletedEventAttributes!.workflowExecution!.workflowId!;
  const child = await env.client.workflow.getHandle(childId).fetchHistory();
  const scheduled = (child.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes);
  expect(scheduled).toHaveLength(3);
});

test('a run without a window that no schedule started fails with a non-retryable InvalidInput', async () => {
  const err = await run({}, 'nowindow').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  expect((cause as ApplicationFailure).type).toBe('InvalidInput');
  expect((cause as ApplicationFailure).nonRetryable).toBe(true);
});

test('runs of one window on two stores are two runs; one store, however spelt, is one run', async () => {
  const other = new LocalStore(join(dir, 'other-store'));
  await seedDemoFleet(other, { devices: 2, sensors: SENSORS, hours: 1, endMs: END_MS, seed: 1 });
  const input = { window: WINDOW, shardSize: 4, taskQueues, pool: 'cpu' as const };
  const a = await startRun(env.client, { ...input, store: store.uri }, taskQueues.cpu);
  const b = await startRun(env.client, { ...input, store: join(dir, 'other-store') }, taskQueues.cpu);
  // The same store as a path instead of a file URI: the same run, joined while it is open.
  const again = await startRun(env.client, { ...input, store: join(dir, 'store') }, taskQueues.cpu);
  expect(a.workflowId).toBe(runWorkflowId(store.uri, WINDOW));
  expect(b.workflowId).not.toBe(a.workflowId);
  expect(again.firstExecutionRunId).toBe(a.firstExecutionRunId);
  const [ra, rb] = await Promise.all([a.result(), b.result()]);
  expect(ra).toMatchObject({ window: WINDOW, devices: DEVICES + 1 });
  expect(rb).toMatchObject({ window: WINDOW, devices: 2, scored: 2 });
  expect((await readManifest(other, WINDOW))!.runId).toBe(b.firstExecutionRunId);
  expect((await readManifest(store, WINDOW))!.runId).toBe(a.firstExecutionRunId);
});

test('a window that is not complete yet is refused, non-retryably, naming when it becomes scoreable', async () => {
  const next = windowAt(Math.floor(Date.now() / 3_600_000) * 3_600_000);
  const err = await run({ window: next.id, settle: '10m' }, 'future').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause).toMatchObject({ type: 'WindowNotComplete', nonRetryable: true });
  expect(cause.message).toContain(
    `window ${next.id} is not complete: it ends at ${new Date(next.endMs).toISOString()} and, with a settle time of ` +
      `10m, becomes scoreable at ${new Date(next.endMs + 600_000).toISOString()}`,
  );
  expect(await readManifest(store, next.id)).toBeUndefined();
});

test('a shard size over the limit fails at once with a non-retryable InvalidInput naming it', async () => {
  const err = await run({ window: WINDOW, shardSize: MAX_SHARD_SIZE + 1 }, 'enormous').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
  expect(cause.message).toContain(`shardSize ${MAX_SHARD_SIZE + 1}`);
});

test('a window whose input never comes fails with InputMissing naming the folder, and is not committed', async () => {
  const empty = windowAt(END_MS + 5 * 3_600_000).id;
  const err = await run({ window: empty, inputWait: '2s' }, 'empty').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause).toMatchObject({ type: 'InputMissing', nonRetryable: true });
  expect(cause.message).toBe(
    `no input for window ${empty} after waiting 2s: an aggregates part missing under ${store.uri}/aggregates/window=${empty}/`,
  );
  expect(await readManifest(store, empty)).toBeUndefined();
});
