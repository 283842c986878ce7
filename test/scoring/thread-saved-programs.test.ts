/**
 * Saved programs through shard threads, as the cpu pool scores: a forest compiled on one worker's thread is read by
 * the next worker's thread from the same folder, with the same predictions, and each shard's log says where its
 * programs came from; a folder that cannot be written reaches the worker's observer as a warning from the thread,
 * and the shard is scored all the same. A thread whose shard is done saves nothing while another thread of its worker
 * still scores one.
 */
import { execFileSync } from 'node:child_process';
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
let forest: Uint8Array;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-thread-programs-'));
  store = new LocalStore(join(dir, 'store'));
  const rand = random(8);
  const draw = () => FEATURES.map(() => rand() * 2 - 1);
  forest = buildIsolationForestOnnx(fitIsolationForest(Array.from({ length: 256 }, draw), 20, 3));
  // Large enough to be saved (64 KiB and more).
  expect(forest.length).toBeGreaterThanOrEqual(64 * 1024);
  await registerForest(store, 'forest-1', forest);
  await store.put(keys.aggregatesPart(WINDOW, 0), windowPart(['forest-1'], draw));
});

/** Registers `onnx` as the device's isolation forest (features a, b, c; anomalous below 0). */
function registerForest(to: LocalStore, device: string, onnx: Uint8Array) {
  const meta = { features: FEATURES, input: { name: 'X' }, output: { name: 'scores' }, threshold: 0 };
  return registerModel(to, { device, onnx, meta: { ...meta, pool: 'cpu', anomalyWhen: 'below' } });
}

/** An aggregates part of WINDOW with 60 rows of `draw()` for each device. */
function windowPart(devices: readonly string[], draw: () => number[]): Uint8Array {
  const types = { a: 'float', b: 'float', c: 'float' } as const;
  return aggregatesPart(
    parseWindow(WINDOW),
    devices.map((device) => {
      const x = Array.from({ length: 60 }, draw);
      const values = Object.fromEntries(FEATURES.map((f, j) => [f, x.map((r) => r[j]!)]));
      return { device, minutes: x.map((_, i) => i), values };
    }),
    types,
  );
}

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

test("a thread whose shard is done saves nothing while the worker's other thread still scores a shard", async () => {
  // Two shards of one forest each; shard 0's model.onnx is a named pipe, so its thread blocks opening it until the
  // test writes the bytes: shard 1 runs on the other thread and ends meanwhile.
  const busy = new LocalStore(join(dir, 'busy-store'));
  const rand = random(9);
  const draw = () => FEATURES.map(() => rand() * 2 - 1);
  const blockedForest = buildIsolationForestOnnx(fitIsolationForest(Array.from({ length: 256 }, draw), 20, 4));
  const blocked = await registerForest(busy, 'blocked-1', blockedForest);
  await registerForest(busy, 'forest-1', forest);
  await busy.put(keys.aggregatesPart(WINDOW, 0), windowPart(['blocked-1', 'forest-1'], draw));
  const pipe = join(dir, 'busy-store', keys.modelOnnx('blocked-1', blocked.version));
  await rm(pipe);
  execFileSync('mkfifo', [pipe]);
  let unblocked: Promise<void> | undefined;
  const unblock = () => (unblocked ??= writeFile(pipe, blockedForest));

  const programs = join(dir, 'busy-programs');
  // Program files, in the folder of this compiler's fingerprint.
  const saved = async () =>
    (await readdir(programs, { recursive: true }).catch(() => [])).filter((f) => f.endsWith('.prog')).length;
  const threads = new ShardThreads({ threads: 2, cache: { programsDir: programs } });
  try {
    const runId = 'busy';
    const plan = await planRun(busy, { store: busy.uri, window: WINDOW, shardSize: 1, pool: 'cpu', runId });
    expect(plan.shards.map((s) => s.devices)).toEqual([1, 1]);
    const req = { store: busy.uri, window: WINDOW, windowHours: 1, runId };
    const first = threads.score({ ...req, shard: 0 }, ctx);
    const second = await threads.score({ ...req, shard: 1 }, ctx);
    expect(second).toMatchObject({ scored: 1, failed: 0 });
    // Idle itself for more than its second of grace, the thread that scored shard 1 waits for the worker.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(await saved()).toBe(0);

    await unblock();
    expect(await first).toMatchObject({ scored: 1, failed: 0 });
    // The worker is idle now: both threads save their programs.
    for (let waited = 0; (await saved()) < 2; waited += 50) {
      if (waited > 20_000) throw new Error(`the idle threads saved ${await saved()} of 2 programs in 20 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    // A failed expectation leaves no thread blocked on the pipe.
    await unblock();
    await threads.close();
  }
});
