/**
 * Saved programs through shard threads, as the cpu pool scores: a forest compiled on one worker's thread is read by
 * the next worker's thread from the same folder, with the same predictions, and each shard's log says where its
 * programs came from; a folder that cannot be written reaches the worker's observer as a warning from the thread,
 * and the shard is scored all the same.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerModel } from '../../lib/models/model-registry';
import { planRun } from '../../lib/scoring/plan-run';
import type { ShardContext } from '../../lib/scoring/score-shard';
import { ShardThreads } from '../../lib/scoring/shard-threads';
import { keys } from '../../lib/shared/keys';
import { parseWindow } from '../../lib/shared/window';
import { LocalStore } from '../../lib/store/local-store';
import { aggregatesPart } from '../support/aggregates-part';
import { buildIsolationForestOnnx, fitIsolationForest } from '../support/isolation-forest';
import { random } from '../support/random';

jest.setTimeout(60_000);

const WINDOW = '2026-11-21T11';
const FEATURES = ['a', 'b', 'c'];

let dir: string;
let store: LocalStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-thread-programs-'));
  store = new LocalStore(join(dir, 'store'));
  const rand = random(8);
  const draw = () => FEATURES.map(() => rand() * 2 - 1);
  const onnx = buildIsolationForestOnnx(fitIsolationForest(Array.from({ length: 256 }, draw), 20, 3));
  // Large enough to be saved (64 KiB and more).
  expect(onnx.length).toBeGreaterThanOrEqual(64 * 1024);
  await registerModel(store, {
    device: 'forest-1',
    onnx,
    meta: {
      pool: 'cpu',
      features: FEATURES,
      input: { name: 'X' },
      output: { name: 'scores' },
      anomalyWhen: 'below',
      threshold: 0,
    },
  });
  const x = Array.from({ length: 60 }, draw);
  const values = Object.fromEntries(FEATURES.map((f, j) => [f, x.map((r) => r[j]!)]));
  const part = aggregatesPart(parseWindow(WINDOW), [{ device: 'forest-1', minutes: x.map((_, i) => i), values }], {
    a: 'float',
    b: 'float',
    c: 'float',
  });
  await store.put(keys.aggregatesPart(WINDOW, 0), part);
});

afterAll(() => rm(dir, { recursive: true, force: true }));

const ctx: ShardContext = {
  attempt: 1,
  taskQueue: 'q',
  workflowId: 'wf',
  workflowRunId: 'r',
  heartbeat: () => undefined,
  log: { info: () => undefined, warn: () => undefined },
};

/**
 * Scores the window's one shard on a new one-thread worker over `programsDir`, then runs `beforeClose` and closes
 * the worker; the shard's predictions and programs.
 */
async function scoreOnNewWorker(
  runId: string,
  programsDir: string,
  warnings: string[] = [],
  beforeClose: () => Promise<void> = () => Promise.resolve(),
) {
  const origins: string[] = [];
  const threads = new ShardThreads({
    threads: 1,
    cache: { programsDir },
    observer: { warning: (m) => warnings.push(m), program: (origin) => origins.push(origin) },
  });
  try {
    await planRun(store, { store: store.uri, window: WINDOW, shardSize: 10, pool: 'cpu', runId });
    const summary = await threads.score({ store: store.uri, window: WINDOW, windowHours: 1, runId, shard: 0 }, ctx);
    expect(summary).toMatchObject({ scored: 1, failed: 0, rows: 60 });
    const log = Buffer.from(await store.get(keys.attemptLog(WINDOW, runId, 0, 1))).toString();
    const event = log
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { event: string; programs?: Record<string, number> })
      .find((e) => e.event === 'fast-paths');
    const predictions = Buffer.from(await store.get(keys.predictions(WINDOW, runId, 0)));
    await beforeClose();
    return { programs: event?.programs, predictions, origins };
  } finally {
    await threads.close();
  }
}

test("a forest compiled on one worker's thread is read by the next worker's, with the same predictions", async () => {
  const programs = join(dir, 'programs');
  const first = await scoreOnNewWorker('first', programs);
  expect(first.programs).toEqual({ compiled: 1 });
  // The worker's metrics hear the same from the thread (fleetscore_model_programs_total{origin}).
  expect(first.origins).toEqual(['compiled']);
  expect(await readdir(programs)).toHaveLength(1);
  const warnings: string[] = [];
  const next = await scoreOnNewWorker('next', programs, warnings);
  expect(next.programs).toEqual({ saved: 1 });
  expect(next.origins).toEqual(['saved']);
  expect(next.predictions.equals(first.predictions)).toBe(true);
  expect(warnings).toEqual([]);
});

test('a thread saves the programs it compiled once idle, without waiting for the worker to close', async () => {
  const programs = join(dir, 'idle');
  const saved = async () => (await readdir(programs).catch(() => [])).length > 0;
  await scoreOnNewWorker('idle', programs, [], async () => {
    // Not in the shard's way: the program is saved after it.
    for (let waited = 0; !(await saved()); waited += 50) {
      if (waited > 20_000) throw new Error('the idle thread saved nothing in 20 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });
});

test('a folder that cannot be written is a warning from the thread, and the shard is scored', async () => {
  const notAFolder = join(dir, 'not-a-folder');
  await writeFile(notAFolder, '');
  const warnings: string[] = [];
  const scored = await scoreOnNewWorker('unwritable', notAFolder, warnings);
  expect(scored.programs).toEqual({ compiled: 1 });
  expect(warnings).toEqual([expect.stringMatching(/saved program could not be written to .*not-a-folder/)]);
});
