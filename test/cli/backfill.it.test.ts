/**
 * `fleetscore backfill` through the command's own code path, on a real dev server with a real cpu pool worker and
 * a seeded local store: every window of the range is checked before anything starts, each backfilled window is a
 * run of its own that commits a manifest, and a backfill of the latest windows never takes or blocks the
 * schedule's own action: the schedule fires while the backfill runs and its run starts and commits. A past window
 * without input fails at once instead of waiting the schedule's whole input wait. Not told which schedule, it takes
 * the one on the server, and names them when there are several.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowExecutionInfo } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { backfillCommand } from '../../cli/commands/backfill';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { readManifest } from '../../lib/scoring/manifest';
import { keys } from '../../lib/shared/keys';
import { SCHEDULED_BY_ID, SCORING_WORKFLOW, SEARCH_ATTRIBUTES } from '../../lib/shared/names';
import { windowAt, windowBefore } from '../../lib/shared/window';
import { LocalStore } from '../../lib/store/local-store';
import { runWorkflowId } from '../../lib/temporal/runs';
import type { BackfillResult } from '../../schedules/schedule-backfill';
import { applySchedules } from '../../schedules/schedule-reconciler';
import { createPoolWorker, type PoolWorker } from '../../workers/pool-worker';
import { startTemporal, uniqueTaskQueue } from '../support/temporal-env';
import { firingAt, testSchedule } from '../support/test-schedule';

jest.setTimeout(240_000);

const HOUR_MS = 3_600_000;
const SCHEDULE_ID = 'backfill-hourly';

let env: TestWorkflowEnvironment;
let dir: string;
let store: LocalStore;
let cpu: PoolWorker;
let running: Promise<unknown>;
const taskQueues = { cpu: uniqueTaskQueue('backfill-cpu'), gpu: uniqueTaskQueue('backfill-gpu') };
const savedAddress = process.env.TEMPORAL_ADDRESS;

/** The schedule's next firing, about 25 s from now: an hourly interval whose offset is the time of day it fires. */
let fireAt: number;

beforeAll(async () => {
  // Not within two minutes of an hour: the window the schedule scores must be complete when the backfill starts.
  while (Date.now() % HOUR_MS > HOUR_MS - 120_000) await sleep(1_000);
  env = await startTemporal();
  // The CLI connects the one way everything does (connectClient, from the environment): point it at this server.
  process.env.TEMPORAL_ADDRESS = env.address;
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-backfill-'));
  store = new LocalStore(join(dir, 'store'));
  fireAt = Math.ceil((Date.now() + 25_000) / 1000) * 1000;
  await seedDemoFleet(store, { devices: 6, sensors: 3, hours: 3, endMs: windowBefore(fireAt).endMs, seed: 3 });
  cpu = await createPoolWorker({
    pool: 'cpu',
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue: taskQueues.cpu,
    maxConcurrentShards: 1,
    identity: `backfill-test-${process.pid}`,
  });
  running = cpu.worker.run();
  // Fires once an hour, at the time of day `fireAt` falls on: the next firing comes during the test.
  const schedule = testSchedule(SCHEDULE_ID, {
    ...firingAt(fireAt),
    run: {
      store: store.uri,
      shardSize: 4,
      maxParallelShards: 2,
      pool: 'cpu',
      taskQueues,
      settle: '0s',
      inputWait: '0s',
    },
  });
  await applySchedules(env.client, [schedule]);
});

afterAll(async () => {
  if (savedAddress === undefined) delete process.env.TEMPORAL_ADDRESS;
  else process.env.TEMPORAL_ADDRESS = savedAddress;
  await env?.client.schedule
    .getHandle(SCHEDULE_ID)
    .delete()
    .catch(() => undefined);
  cpu?.worker.shutdown();
  await running;
  await cpu?.close();
  await env?.teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs `fleetscore backfill ARGS --json` in this process and returns its result, or throws what it threw. */
async function backfill(args: string[]): Promise<BackfillResult> {
  const { result, error } = await backfillOutput(args);
  if (error) throw error;
  return result!;
}

/** Runs `fleetscore backfill ARGS --json` in this process: the result it printed, and what it threw after. */
async function backfillOutput(args: string[]): Promise<{ result?: BackfillResult; error?: Error }> {
  const stdout: string[] = [];
  let error: Error | undefined;
  const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout.push(String(chunk));
    return true;
  });
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    await backfillCommand.parseAsync([...args, '--json'], { from: 'user' });
  } catch (err) {
    error = err as Error;
  } finally {
    write.mockRestore();
    stderr.mockRestore();
  }
  return { ...(stdout.length > 0 ? { result: JSON.parse(stdout.join('')) as BackfillResult } : {}), error };
}

async function list(query: string): Promise<WorkflowExecutionInfo[]> {
  const out: WorkflowExecutionInfo[] = [];
  for await (const info of env.client.workflow.list({ query })) out.push(info);
  return out;
}

it('refuses a range that reaches a window not complete yet, and starts nothing', async () => {
  const current = windowAt(windowBefore(Date.now()).endMs);
  await expect(
    backfill([
      '--schedule',
      SCHEDULE_ID,
      '--from',
      windowAt(current.startMs - HOUR_MS).id,
      '--to',
      windowAt(current.endMs).id,
    ]),
  ).rejects.toThrow(`backfill refused, nothing was started: window ${current.id} is not complete`);
  expect(await list(`${SEARCH_ATTRIBUTES.schedule.name} = '${SCHEDULE_ID}'`)).toEqual([]);
});

it('backfills the latest windows while the schedule fires; the scheduled action is neither refused nor dropped', async () => {
  const latest = windowBefore(fireAt);
  const windows = [windowAt(latest.startMs - HOUR_MS), latest];
  const result = await backfill([
    '--schedule',
    SCHEDULE_ID,
    '--from',
    windows[0]!.id,
    '--to',
    windowAt(latest.endMs).id,
  ]);
  expect(result.runs.map((r) => [r.window, r.status, r.summary?.scored])).toEqual(
    windows.map((w) => [w.id, 'completed', 6]),
  );
  // One id scheme: the window and the store, never the schedule's `<id>-<nominal time>`.
  expect(result.runs.map((r) => r.workflowId)).toEqual(windows.map((w) => runWorkflowId(store.uri, w.id)));

  // The schedule fires at `fireAt` whatever the backfill did: its action starts a run of the latest window.
  while (Date.now() < fireAt + 2_000) await sleep(500);
  let scheduled: WorkflowExecutionInfo[] = [];
  for (let i = 0; i < 120 && scheduled.every((r) => r.status.name === 'RUNNING'); i++) {
    scheduled = await list(`${SCHEDULED_BY_ID.name} = '${SCHEDULE_ID}'`);
    await sleep(500);
  }
  expect(scheduled).toHaveLength(1);
  expect(scheduled[0]).toMatchObject({ type: SCORING_WORKFLOW, status: { name: 'COMPLETED' } });
  expect(scheduled[0]!.typedSearchAttributes.get(SEARCH_ATTRIBUTES.window)).toBe(latest.id);
  const described = await env.client.schedule.getHandle(SCHEDULE_ID).describe();
  expect(described.info.recentActions.map((a) => a.scheduledAt.getTime())).toEqual([fireAt]);
  expect(Number(described.raw.info?.overlapSkipped ?? 0) + Number(described.raw.info?.bufferDropped ?? 0)).toBe(0);

  // Every run carries the schedule; the backfilled ones are found by it beside the scheduled one.
  const all = await list(`${SEARCH_ATTRIBUTES.schedule.name} = '${SCHEDULE_ID}'`);
  expect(all).toHaveLength(3);
  const manifest = await readManifest(store, latest.id);
  expect(manifest).toMatchObject({ scheduleId: SCHEDULE_ID, counts: { devices: 6, scored: 6 } });
});

it('takes the one fleetscore schedule on the server when --schedule is not given', async () => {
  const current = windowAt(windowBefore(Date.now()).endMs);
  // Refused as with --schedule: the window is not complete by the schedule's settle time, which it read.
  await expect(backfill(['--from', current.id, '--to', windowAt(current.endMs).id])).rejects.toThrow(
    `backfill refused, nothing was started: window ${current.id} is not complete`,
  );
});

it("fails a past window without input at once, not after the schedule's input wait, unless --input-wait says", async () => {
  // Its own store and schedule (paused: it never fires): three hours long past, the middle one without input, and
  // an hour of input wait, which the schedule's own runs of these windows stopped waiting long ago.
  const past = new LocalStore(join(dir, 'past-store'));
  const endMs = Date.UTC(2026, 10, 21, 12);
  const [w1, w2, w3] = [3, 2, 1].map((h) => windowAt(endMs - h * HOUR_MS));
  await seedDemoFleet(past, { devices: 3, sensors: 2, hours: 3, endMs, seed: 5 });
  for (const key of await past.list(keys.aggregatesPrefix(w2!.id))) await past.delete(key);
  const id = 'backfill-past';
  const run = { store: past.uri, shardSize: 4, maxParallelShards: 2, pool: 'cpu', taskQueues, settle: '0s' } as const;
  const declared = testSchedule(id, { paused: true, run: { ...run, inputWait: '1h' } });
  await applySchedules(env.client, [declared]);
  const other = 'backfill-other';
  try {
    const started = Date.now();
    const { result, error } = await backfillOutput([
      '--schedule',
      id,
      '--from',
      w1!.id,
      '--to',
      windowAt(endMs).id,
      '--parallel',
      '3',
    ]);
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(error).toEqual(new Error(`1 of 3 window(s) were not scored: ${w2!.id} failed`));
    expect(result!.runs.map((r) => [r.window, r.status, r.summary?.scored])).toEqual([
      [w1!.id, 'completed', 3],
      [w2!.id, 'failed', undefined],
      [w3!.id, 'completed', 3],
    ]);
    expect(result!.runs[1]!.failure).toBe(
      `no input for window ${w2!.id} after waiting 0s: an aggregates part missing under ${past.uri}/aggregates/window=${w2!.id}/`,
    );

    // Told to wait, the run waits that long (and the input, still missing, fails it after).
    const told = await backfillOutput(['--schedule', id, '--from', w2!.id, '--to', w3!.id, '--input-wait', '2s']);
    expect(told.result!.runs[0]).toMatchObject({ window: w2!.id, status: 'failed' });
    expect(told.result!.runs[0]!.failure).toContain(`no input for window ${w2!.id} after waiting 2s`);

    // Not told which, with two schedules on the server: nothing starts, and both are named. (Applying a list keeps
    // only its schedules: backfill-hourly went when this test applied its own.)
    await applySchedules(env.client, [declared, testSchedule(other, { paused: true, run })]);
    // The server lists a schedule a moment after creating it.
    for (let i = 0; i < 50 && (await listed()) < 2; i++) await sleep(200);
    const unnamed = await backfillOutput(['--from', w1!.id, '--to', windowAt(endMs).id]);
    expect(unnamed.error).toEqual(
      new Error(`2 fleetscore schedules on the server (${other}, ${id}): name one with --schedule`),
    );
    expect(unnamed.result).toBeUndefined();
  } finally {
    await applySchedules(env.client, []);
  }
});

/** How many schedules the server lists. */
async function listed(): Promise<number> {
  let n = 0;
  for await (const _ of env.client.schedule.list()) n++;
  return n;
}
