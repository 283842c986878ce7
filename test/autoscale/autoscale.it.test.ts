/**
 * `fleetscore autoscale` on a real dev server with real worker processes: a run whose shards all go to a gpu pool
 * with minimum zero builds a backlog; the autoscaler starts `fleetscore worker --pool gpu` processes, the run
 * finishes on them, and the pool drains back to zero. Every decision is logged with the numbers behind it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Autoscaler, formatDecision, type DecisionRecord } from '../../lib/autoscale/autoscaler';
import { describeBacklog } from '../../lib/autoscale/backlog';
import { fleetscoreWorkerLauncher, WorkerProcesses, type WorkerEvent } from '../../lib/autoscale/worker-processes';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { SCORING_WORKFLOW } from '../../lib/shared/names';
import { readManifest } from '../../lib/scoring/manifest';
import type { RunSummary } from '../../lib/shared/run-types';
import { LocalStore } from '../../lib/store/local-store';
import { windowAt } from '../../lib/shared/window';
import { createPoolWorker, type PoolWorker } from '../../workers/pool-worker';
import { startTemporal, uniqueTaskQueue } from '../support/temporal-env';
import { waitUntil } from '../support/wait-until';

jest.setTimeout(240_000);

const DEVICES = 40;
const END_MS = Date.UTC(2026, 10, 21, 12);
const WINDOW = windowAt(END_MS - 3_600_000).id;

let env: TestWorkflowEnvironment;
let dir: string;
let store: LocalStore;
let cpu: PoolWorker;
let cpuRunning: Promise<unknown>;
const taskQueues = { cpu: uniqueTaskQueue('as-cpu'), gpu: uniqueTaskQueue('as-gpu') };

beforeAll(async () => {
  env = await startTemporal();
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-autoscale-'));
  store = new LocalStore(join(dir, 'store'));
  await seedDemoFleet(store, { devices: DEVICES, sensors: 4, hours: 1, endMs: END_MS, seed: 5 });
  // The cpu pool (workflows, plan, commit) runs in this process; the gpu pool is the one autoscaled.
  cpu = await createPoolWorker({
    pool: 'cpu',
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue: taskQueues.cpu,
  });
  cpuRunning = cpu.worker.run();
});

afterAll(async () => {
  cpu?.worker.shutdown();
  await cpuRunning;
  await cpu?.close();
  await env?.teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('the task queue reports its backlog (DescribeTaskQueue reportStats)', async () => {
  const stats = await describeBacklog(env.client, uniqueTaskQueue('empty'), ['workflow', 'activity']);
  expect(stats).toEqual({ backlog: 0, ageSeconds: 0, addRate: 0, dispatchRate: 0, pollers: 0 });
});

test('a backlog on a gpu pool with minimum zero scales it up, the run finishes, and the pool goes back to zero', async () => {
  const records: DecisionRecord[] = [];
  const events: WorkerEvent[] = [];
  const processes = new WorkerProcesses(
    fleetscoreWorkerLauncher(() => ['--gpu-fallback', 'cpu', '--task-queue', taskQueues.gpu, '--shards', '2'], {
      ...process.env,
      TEMPORAL_ADDRESS: env.address,
      TEMPORAL_NAMESPACE: env.namespace ?? 'default',
      FLEETSCORE_LOG_LEVEL: 'WARN',
    }),
    (e) => events.push(e),
  );
  const autoscaler = new Autoscaler({
    client: env.client,
    processes,
    taskQueues,
    intervalMs: 500,
    pools: [
      {
        pool: 'gpu',
        min: 0,
        max: 3,
        shardsPerWorker: 2,
        scaleUpCooldownMs: 3_000,
        scaleDownCooldownMs: 3_000,
        idleMs: 2_000,
        minBacklogAgeSeconds: 1,
        // No floor while runs are open, so the scale-up from zero comes from the backlog alone (the floor is
        // covered by the policy's unit tests).
        floorWhileRunsOpen: 0,
      },
    ],
    log: (r) => {
      records.push(r);
      process.stderr.write(`${formatDecision(r)}\n`);
    },
    warn: (m) => process.stderr.write(`${m}\n`),
  });
  const abort = new AbortController();
  const loop = autoscaler.run(abort.signal);
  try {
    await waitUntil('the first decision', () => records.length > 0, 10_000);
    expect(records[0]).toMatchObject({ action: 'hold', from: 0, reason: 'idle at zero' });

    // Every device to the gpu pool (the schedule-level override), 20 shards of 2 devices, all at once.
    const summary: RunSummary = await env.client.workflow.execute(SCORING_WORKFLOW, {
      taskQueue: taskQueues.cpu,
      workflowId: `autoscale-${Date.now()}`,
      args: [{ store: store.uri, window: WINDOW, pool: 'gpu', shardSize: 2, maxParallelShards: 20, taskQueues }],
    });
    expect(summary).toMatchObject({ devices: DEVICES, scored: DEVICES, failed: 0 });
    const manifest = await readManifest(store, WINDOW);
    expect(new Set(manifest!.shards.map((s) => s.pool))).toEqual(new Set(['gpu']));

    const ups = records.filter((r) => r.action === 'up');
    expect(ups.length).toBeGreaterThan(0);
    expect(ups[0]!.from).toBe(0);
    expect(Math.max(...ups.map((r) => r.to))).toBeGreaterThan(1);
    expect(ups.some((r) => r.stats.backlog > 0 && /backlog \d+ needs/.test(r.reason))).toBe(true);
    expect(Math.max(...ups.map((r) => r.to))).toBeLessThanOrEqual(3);

    await waitUntil(
      'the pool back at zero',
      () =>
        records.some((r) => r.action === 'down' && r.to === 0) &&
        processes.running('gpu') + processes.draining('gpu') === 0,
      120_000,
    );
    const down = records.find((r) => r.action === 'down' && r.to === 0)!;
    expect(down).toMatchObject({ stats: { backlog: 0, addRate: 0, dispatchRate: 0 } });
    expect(down.reason).toMatch(/idle for \d+s/);
    // Every worker it started was drained (SIGTERM), none died on its own.
    const started = events.filter((e) => e.event === 'started').length;
    expect(started).toBe(Math.max(...ups.map((r) => r.to)));
    expect(events.filter((e) => e.event === 'exited')).toHaveLength(started);
    expect(events.some((e) => e.unexpected)).toBe(false);
    expect(events.filter((e) => e.event === 'exited').every((e) => e.code === 0)).toBe(true);
  } finally {
    abort.abort();
    await loop;
  }
});
