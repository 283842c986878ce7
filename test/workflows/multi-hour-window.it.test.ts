/**
 * Windows of several hours beside hourly ones, on a real dev server and real pool workers: a 2-hour and a 24-hour
 * window read every hourly input folder they span, commit under a window id of their own
 * (`2026-11-21T10_2h`, `2026-11-21T00_24h`) and leave the hourly windows' manifests as they were. The 2-hour
 * window's predictions are exactly its two hours' predictions.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { decodePredictions, predictionRows } from '../../lib/arrow/predictions';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { readDemoTruth } from '../../lib/demo/demo-truth';
import { readManifest, type Manifest } from '../../lib/scoring/manifest';
import { SCORING_WORKFLOW, SEARCH_ATTRIBUTES } from '../../lib/shared/names';
import type { RunSummary, ScoringRunInput } from '../../lib/shared/run-types';
import { hourlyIdsOf, parseWindow } from '../../lib/shared/window';
import { LocalStore } from '../../lib/store/local-store';
import { runPoolWorkers, startTemporal, uniqueTaskQueue, type RunningPools } from '../support/temporal-env';

jest.setTimeout(240_000);

const DEVICES = 5;
const DAY = '2026-11-21T00_24h';
const TWO = '2026-11-21T10_2h';

let env: TestWorkflowEnvironment;
let dir: string;
let store: LocalStore;
let pools: RunningPools | undefined;
const taskQueues = { cpu: uniqueTaskQueue('multi-cpu'), gpu: uniqueTaskQueue('multi-gpu') };

beforeAll(async () => {
  env = await startTemporal();
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-multi-'));
  store = new LocalStore(join(dir, 'store'));
  await seedDemoFleet(store, {
    devices: DEVICES,
    sensors: 3,
    hours: 24,
    endMs: parseWindow(DAY).endMs,
    seed: 11,
    anomalyRate: 0.02,
  });
  pools = await runPoolWorkers(env, taskQueues);
});

afterAll(async () => {
  await pools?.stop();
  await env?.teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function run(input: Partial<ScoringRunInput>): Promise<RunSummary> {
  return env.client.workflow.execute(SCORING_WORKFLOW, {
    taskQueue: taskQueues.cpu,
    workflowId: `multi-${input.window}-${Date.now()}`,
    args: [{ store: store.uri, taskQueues, shardSize: 2, ...input }],
  });
}

/** Every committed row of a window, `device@ts` to `score|anomaly`. */
async function rows(manifest: Manifest): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const shard of manifest.shards) {
    if (!shard.predictions) continue;
    for (const row of predictionRows(decodePredictions(await store.get(shard.predictions)))) {
      const key = `${row.device}@${row.ts}`;
      expect(out.has(key)).toBe(false);
      out.set(key, `${row.score}|${row.isAnomaly}`);
    }
  }
  return out;
}

test('a 2-hour window scores both hours under its own id and leaves the hourly manifests alone', async () => {
  const [first, second] = hourlyIdsOf(parseWindow(TWO)) as [string, string];
  await run({ window: first });
  await run({ window: second });
  const hourly = await Promise.all([first, second].map((w) => readManifest(store, w)));

  const summary = await run({ window: TWO });
  expect(summary).toMatchObject({ window: TWO, devices: DEVICES, scored: DEVICES, rows: DEVICES * 120 });
  const manifest = (await readManifest(store, TWO))!;
  expect(manifest).toMatchObject({
    window: TWO,
    windowStart: '2026-11-21T10:00:00.000Z',
    windowEnd: '2026-11-21T12:00:00.000Z',
  });
  expect(manifest.shards.every((s) => s.predictions?.startsWith(`predictions/window=${TWO}/`) ?? true)).toBe(true);
  // The hourly commits are untouched, and the 2-hour window's rows are exactly theirs.
  expect(await Promise.all([first, second].map((w) => readManifest(store, w)))).toEqual(hourly);
  const expected = new Map([...(await rows(hourly[0]!)), ...(await rows(hourly[1]!))]);
  expect(await rows(manifest)).toEqual(expected);

  const found = [];
  for await (const info of env.client.workflow.list({ query: `${SEARCH_ATTRIBUTES.window.name} = '${TWO}'` }))
    found.push(info);
  expect(found).toHaveLength(1);
});

test('a 24-hour window reads all 24 hourly folders: every row once, anomalies where they were injected', async () => {
  const summary = await run({ window: '2026-11-21T00', windowHours: 24 });
  expect(summary).toMatchObject({ window: DAY, devices: DEVICES, scored: DEVICES, rows: DEVICES * 60 * 24 });
  const committed = await rows((await readManifest(store, DAY))!);
  expect(committed.size).toBe(DEVICES * 60 * 24);
  const injected = new Set<string>();
  for (const hour of hourlyIdsOf(parseWindow(DAY))) {
    for (const a of (await readDemoTruth(store, hour))!.anomalies) injected.add(`${a.device}@${a.ts}`);
  }
  expect(injected.size).toBeGreaterThan(0);
  const flagged = [...committed].filter(([, v]) => v.endsWith('|true')).map(([k]) => k);
  expect(new Set(flagged)).toEqual(injected);
  expect(summary.anomalies).toBe(injected.size);
  // No hourly window of the day was committed by it.
  expect(await readManifest(store, '2026-11-21T00')).toBeUndefined();
});
