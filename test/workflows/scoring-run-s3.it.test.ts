/**
 * scoringRun end to end against a real S3-compatible server (MinIO): the same workflow, pool workers and
 * onnxruntime-node CPU provider as production, with the store opened by URI and credentials taken only from
 * the environment, as a deployed worker does. Checks the committed manifest, predictions against the demo's
 * ground truth, and the durable shard logs in the bucket.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { decodePredictions, predictionRows } from '../../lib/arrow/predictions';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { readDemoTruth } from '../../lib/demo/demo-truth';
import { keys } from '../../lib/shared/keys';
import { SCORING_WORKFLOW } from '../../lib/shared/names';
import { readManifest } from '../../lib/scoring/manifest';
import type { RunSummary } from '../../lib/shared/run-types';
import { S3Store } from '../../lib/store/s3-store';
import { windowAt } from '../../lib/shared/window';
import { startS3Server, type S3TestServer } from '../support/s3-server';
import { runPoolWorkers, startTemporal, uniqueTaskQueue, type RunningPools } from '../support/temporal-env';

// The first start may build MinIO (see test/support/s3-server.ts); a run itself takes a few seconds.
jest.setTimeout(180_000);

const SEED = 11;
const DEVICES = 6;
const SENSORS = 3;
const END_MS = Date.UTC(2026, 10, 21, 12);
const WINDOW = windowAt(END_MS - 3_600_000).id; // 2026-11-21T11, the last seeded window

let server: S3TestServer;
let env: TestWorkflowEnvironment;
let store: S3Store;
let pools: RunningPools | undefined;
const savedEnv: Record<string, string | undefined> = {};
const taskQueues = { cpu: uniqueTaskQueue('cpu-s3'), gpu: uniqueTaskQueue('gpu-s3') };

beforeAll(async () => {
  [server, env] = await Promise.all([startS3Server(), startTemporal()]);
  // Workers open the store by URI through the SDK's credential chain, so the credentials go in the environment.
  for (const [name, value] of Object.entries(server.env)) {
    savedEnv[name] = process.env[name];
    process.env[name] = value;
  }
  store = S3Store.fromUri(server.storeUri);
  await seedDemoFleet(store, {
    devices: DEVICES,
    sensors: SENSORS,
    hours: 2,
    endMs: END_MS,
    seed: SEED,
    gpuEvery: 3,
    anomalyRate: 0.05,
  });

  pools = await runPoolWorkers(env, taskQueues);
});

afterAll(async () => {
  await pools?.stop();
  store?.destroy();
  await env?.teardown();
  await server?.stop();
  for (const [name, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

test('scores a window from an S3 bucket and commits predictions, manifest and shard logs to it', async () => {
  const summary: RunSummary = await env.client.workflow.execute(SCORING_WORKFLOW, {
    taskQueue: taskQueues.cpu,
    workflowId: `s3-run-${Date.now()}`,
    args: [{ store: server.storeUri, taskQueues, window: WINDOW, shardSize: 2, maxParallelShards: 2 }],
  });

  const truth = await readDemoTruth(store, WINDOW);
  expect(truth).toBeDefined();
  const anomalous = new Set(truth!.anomalies.map((a) => `${a.device}@${a.ts}`));
  expect(anomalous.size).toBeGreaterThan(0);
  const rows = DEVICES * 60;
  expect(summary).toMatchObject({
    window: WINDOW,
    devices: DEVICES,
    scored: DEVICES,
    noData: 0,
    failed: 0,
    failedShards: 0,
  });
  expect(summary.anomalies).toBe(anomalous.size);

  // The manifest is the commit marker: it must be in the bucket, with the counts of the run.
  expect(await store.list(keys.predictionsPrefix(WINDOW))).toContain(keys.manifest(WINDOW));
  const manifest = await readManifest(store, WINDOW);
  expect(manifest).toBeDefined();
  expect(manifest!.store).toBe(store.uri);
  expect(manifest!.counts).toEqual({
    devices: DEVICES,
    scored: DEVICES,
    noData: 0,
    failed: 0,
    rows,
    anomalies: anomalous.size,
  });
  expect(manifest!.shards).toHaveLength(DEVICES / 2);
  expect(manifest!.shards.every((s) => s.status === 'committed' && s.attempt === 1)).toBe(true);
  expect(new Set(manifest!.shards.map((s) => s.pool))).toEqual(new Set(['cpu', 'gpu']));

  // Every row scored once, flagged exactly where the demo injected an anomaly.
  const seen = new Set<string>();
  for (const shard of manifest!.shards) {
    expect(shard.predictions).toBe(keys.predictions(WINDOW, manifest!.runId, shard.shard));
    for (const row of predictionRows(decodePredictions(await store.get(shard.predictions!)))) {
      const id = `${row.device}@${row.ts}`;
      expect(seen.has(id)).toBe(false);
      seen.add(id);
      expect(row.isAnomaly).toBe(anomalous.has(id));
    }
  }
  expect(seen.size).toBe(rows);

  // One log object per shard attempt and one for the commit, JSON lines from attempt-started to attempt-completed.
  const logKeys = manifest!.shards.map((s) => keys.attemptLog(WINDOW, manifest!.runId, s.shard, 1));
  expect(logKeys[0]).toMatch(new RegExp(`^logs/window=${WINDOW}/run=[0-9a-f-]{36}/shard-\\d{5}/attempt-001\\.jsonl$`));
  const commitLog = keys.attemptLog(WINDOW, manifest!.runId, 'commit', 1);
  expect(await store.list(keys.logsPrefix(WINDOW))).toEqual([...logKeys, commitLog].sort());
  const commitEvents = Buffer.from(await store.get(commitLog))
    .toString('utf8')
    .trimEnd()
    .split('\n');
  expect(JSON.parse(commitEvents.at(-1)!)).toMatchObject({
    event: 'attempt-completed',
    unit: 'commit',
    scored: DEVICES,
  });
  let scoredInLogs = 0;
  for (const [i, key] of logKeys.entries()) {
    const text = Buffer.from(await store.get(key)).toString('utf8');
    const events = text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events[0]).toMatchObject({
      event: 'attempt-started',
      window: WINDOW,
      shard: manifest!.shards[i]!.shard,
      attempt: 1,
    });
    expect(events.at(-1)).toMatchObject({ event: 'attempt-completed', level: 'info', failed: 0 });
    scoredInLogs += Number(events.at(-1)!.scored);
  }
  expect(scoredInLogs).toBe(DEVICES);
});
