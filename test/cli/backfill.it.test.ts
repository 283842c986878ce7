/**
 * `fleetscore backfill` through the command's own code path, on a real dev server with a real cpu pool worker
 * and an empty local store: each backfilled window becomes an ordinary scheduled run that commits a manifest.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { backfillCommand, type BackfillResult } from '../../cli/commands/backfill';
import { keys } from '../../lib/shared/keys';
import { SCHEDULED_BY_ID, SCHEDULED_START_TIME, SCORING_WORKFLOW, SEARCH_ATTRIBUTES } from '../../lib/shared/names';
import type { FleetSchedule } from '../../schedules/schedule-declaration';
import { applySchedules } from '../../schedules/schedule-reconciler';
import { createPoolWorker, type PoolWorker } from '../../workers/pool-worker';
import { startTemporal, uniqueTaskQueue } from '../support/temporal-env';

jest.setTimeout(180_000);

const SCHEDULE_ID = 'backfill-hourly';
const WINDOWS = ['2026-11-20T09', '2026-11-20T10', '2026-11-20T11'];

let env: TestWorkflowEnvironment;
let dir: string;
let cpu: PoolWorker;
let running: Promise<unknown>;
const taskQueues = { cpu: uniqueTaskQueue('backfill-cpu'), gpu: uniqueTaskQueue('backfill-gpu') };
const savedAddress = process.env.TEMPORAL_ADDRESS;

beforeAll(async () => {
  env = await startTemporal();
  // The CLI connects the one way everything does (connectClient, from the environment): point it at this server.
  process.env.TEMPORAL_ADDRESS = env.address;
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-backfill-'));
  cpu = await createPoolWorker({
    pool: 'cpu',
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue: taskQueues.cpu,
    maxConcurrentShards: 1,
    identity: `backfill-test-${process.pid}`,
  });
  running = cpu.worker.run();
  const schedule: FleetSchedule = {
    id: SCHEDULE_ID,
    description: 'backfill test',
    spec: { intervals: [{ every: '1h', offset: '5m' }] },
    timezone: 'UTC',
    overlap: ScheduleOverlapPolicy.BUFFER_ONE,
    catchupWindow: '1h',
    jitter: '30s',
    // Paused, so only the backfill starts runs; backfills are manual actions and run while paused.
    paused: true,
    windowHours: 1,
    run: { store: join(dir, 'store'), shardSize: 100, maxParallelShards: 2, taskQueues },
  };
  await applySchedules(env.client, [schedule]);
});

afterAll(async () => {
  if (savedAddress === undefined) delete process.env.TEMPORAL_ADDRESS;
  else process.env.TEMPORAL_ADDRESS = savedAddress;
  cpu?.worker.shutdown();
  await running;
  await cpu?.close();
  await env?.teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('backfills three windows as ordinary scheduled runs that each commit a manifest', async () => {
  const stdout: string[] = [];
  const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout.push(String(chunk));
    return true;
  });
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    await backfillCommand.parseAsync(
      ['--schedule', SCHEDULE_ID, '--from', '2026-11-20T09', '--to', '2026-11-20T12:00:00Z', '--json'],
      {
        from: 'user',
      },
    );
  } finally {
    write.mockRestore();
    stderr.mockRestore();
  }

  const result = JSON.parse(stdout.join('')) as BackfillResult;
  expect(result).toMatchObject({ schedule: SCHEDULE_ID, overlap: 'BUFFER_ALL', waited: true });
  expect(result.runs.map((r) => [r.window, r.status])).toEqual(WINDOWS.map((w) => [w, 'completed']));
  expect(result.runs.map((r) => r.scheduledAt)).toEqual([
    '2026-11-20T10:05:00.000Z',
    '2026-11-20T11:05:00.000Z',
    '2026-11-20T12:05:00.000Z',
  ]);

  // Ordinary scheduled runs: the schedule's workflow id pattern and Temporal's scheduled-by search attributes.
  const runs = [];
  for await (const info of env.client.workflow.list({ query: `${SCHEDULED_BY_ID.name} = '${SCHEDULE_ID}'` }))
    runs.push(info);
  expect(runs).toHaveLength(3);
  for (const info of runs) {
    expect(info.type).toBe(SCORING_WORKFLOW);
    expect(info.status.name).toBe('COMPLETED');
    expect(info.taskQueue).toBe(taskQueues.cpu);
    expect(info.workflowId.startsWith(`${SCHEDULE_ID}-`)).toBe(true);
    expect(info.typedSearchAttributes.get(SCHEDULED_BY_ID)).toBe(SCHEDULE_ID);
    expect(info.typedSearchAttributes.get(SEARCH_ATTRIBUTES.schedule)).toBe(SCHEDULE_ID);
    expect(info.typedSearchAttributes.get(SCHEDULED_START_TIME)).toBeInstanceOf(Date);
  }
  const windows = runs.map((info) => info.typedSearchAttributes.get(SEARCH_ATTRIBUTES.window)).sort();
  expect(windows).toEqual(WINDOWS);
  expect(result.runs.map((r) => r.workflowId).sort()).toEqual(runs.map((r) => r.workflowId).sort());

  // Each run committed its window: an empty store plans no shards and writes a manifest with zero devices.
  for (const window of WINDOWS) {
    const manifest = JSON.parse(await readFile(join(dir, 'store', keys.manifest(window)), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(keys.manifest(window)).toBe(`predictions/window=${window}/_manifest.json`);
    expect(manifest).toMatchObject({ window, scheduleId: SCHEDULE_ID, counts: { devices: 0, failed: 0 } });
    expect(String(manifest.workflowId).startsWith(`${SCHEDULE_ID}-`)).toBe(true);
  }
});
