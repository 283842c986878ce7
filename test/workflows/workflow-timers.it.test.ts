/**
 * The scoring run's timer logic under Temporal's time-skipping test server, at the real defaults, in seconds of
 * wall time: the input wait (durable timer up to `inputWait`) of the real scoringRun with mocked activities, and
 * the pool wait (notice every 5 minutes, limit 45 minutes) in a probe workflow whose mocked activity times out the
 * way an activity no worker picks up does (see fixtures/pool-wait-probe.ts for why). Real workers and servers prove
 * the wiring elsewhere (test/workers/pool-observability.it.test.ts, test/workflows/scoring-run.it.test.ts).
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { createActivities } from '../../activities';
import { SCORING_WORKFLOW, type RunProgress } from '../../lib/shared/names';
import { progressQuery } from '../../lib/shared/queries';
import type {
  CommitRequest,
  InputCheck,
  RunSummary,
  ScoringRunInput,
  ShardRequest,
  ShardSummary,
} from '../../lib/shared/run-types';
import { SHARD_TIMEOUTS } from '../../lib/shared/run-types';
import { startTimeSkipping } from '../support/time-skipping';
import { poolWaitProbe, waitingQuery, type PoolWaitProbeInput } from './fixtures/pool-wait-probe';
import { uniqueTaskQueue } from '../support/temporal-env';

jest.setTimeout(180_000);

type Activities = ReturnType<typeof createActivities>;

const WINDOW = '2026-11-21T11';
const MISSING = 's3://fleet/aggregates/window=2026-11-21T11/';
const MINUTE = 60_000;

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await startTimeSkipping();
});

afterAll(async () => {
  await env?.teardown();
});

/** What the mocked activities were called with. */
interface Calls {
  checks: number;
  planned: number;
  scored: { shard: number; pool: string }[];
  commits: CommitRequest[];
}

/**
 * Mocked activities of a fleet of two shards, shard 0 on the cpu pool and shard 1 on the gpu pool. The input is
 * there from the `readyAtCheck`-th look on.
 */
function mockActivities(
  calls: Calls,
  readyAtCheck = 1,
): Pick<Activities, 'checkInput' | 'planRun' | 'scoreShard' | 'commitRun'> {
  return {
    checkInput: async (): Promise<InputCheck> => {
      calls.checks += 1;
      const ready = calls.checks >= readyAtCheck;
      return ready ? { ready, parts: 1, missing: [] } : { ready, parts: 0, missing: [MISSING] };
    },
    planRun: async (req) => {
      calls.planned += 1;
      return {
        window: req.window,
        runId: req.runId ?? 'run',
        devices: 4,
        parts: 1,
        shards: [
          { shard: 0, pool: 'cpu', devices: 2 },
          { shard: 1, pool: 'gpu', devices: 2 },
        ],
      };
    },
    scoreShard: async (req: ShardRequest): Promise<ShardSummary> => {
      const pool = req.shard === 0 ? 'cpu' : 'gpu';
      calls.scored.push({ shard: req.shard, pool });
      return {
        shard: req.shard,
        pool,
        attempt: 1,
        devices: 2,
        scored: 2,
        noData: 0,
        failed: 0,
        rows: 120,
        anomalies: 0,
        failures: [],
        durationMs: 1,
      };
    },
    commitRun: async (req) => {
      calls.commits.push(req);
      const failed = req.failedShards.length * 2;
      return {
        devices: 4,
        scored: 4 - failed,
        noData: 0,
        failed,
        rows: (4 - failed) * 60,
        anomalies: 0,
        manifest: 'predictions/window=2026-11-21T11/_manifest.json',
        unknownDevices: 0,
        outcome: 'committed',
      };
    },
  };
}

/** A worker of one pool's task queue with the mocked activities; the cpu one also runs the workflow. */
async function poolWorker(taskQueue: string, calls: Calls, withWorkflows: boolean, readyAtCheck?: number) {
  return Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    ...(withWorkflows ? { workflowsPath: require.resolve('../../workflows') } : {}),
    activities: mockActivities(calls, readyAtCheck),
  });
}

function newCalls(): Calls {
  return { checks: 0, planned: 0, scored: [], commits: [] };
}

function start(queues: { cpu: string; gpu: string }, input: Partial<ScoringRunInput> = {}): Promise<WorkflowHandle> {
  return env.client.workflow.start(SCORING_WORKFLOW, {
    taskQueue: queues.cpu,
    workflowId: uniqueTaskQueue('timers'),
    args: [{ store: 's3://fleet', window: WINDOW, taskQueues: queues, ...input } satisfies ScoringRunInput],
  });
}

/** The durations of the timers the run started, in milliseconds, from its history. */
async function timers(handle: WorkflowHandle): Promise<number[]> {
  const { events } = await handle.fetchHistory();
  return (events ?? []).flatMap((e) => {
    const timeout = e.timerStartedEventAttributes?.startToFireTimeout;
    return timeout ? [Number(timeout.seconds ?? 0) * 1000 + Math.round((timeout.nanos ?? 0) / 1e6)] : [];
  });
}

async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const err = await handle.result().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

/** Runs the pool-wait probe workflow with `input` on a worker of its own while `body` looks at it. */
async function withProbe(
  input: PoolWaitProbeInput,
  body: (handle: WorkflowHandle<typeof poolWaitProbe>) => Promise<void>,
): Promise<void> {
  const taskQueue = uniqueTaskQueue('probe');
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: require.resolve('./fixtures/pool-wait-probe'),
  });
  await worker.runUntil(async () =>
    body(await env.client.workflow.start(poolWaitProbe, { taskQueue, workflowId: taskQueue, args: [input] })),
  );
}

describe('pool wait', () => {
  it('lists a shard no worker starts as waiting at each notice, and fails it with PoolUnavailable at the limit', async () => {
    const input = { notice: SHARD_TIMEOUTS.poolWaitNotice, limit: SHARD_TIMEOUTS.poolWaitLimit, startsAfter: null };
    await withProbe(input, async (handle) => {
      await env.sleep('11 minutes');
      expect(await handle.query(waitingQuery)).toMatchObject({ shard: 1, pool: 'gpu', notices: 2 });
      const failure = await failureOf(handle);
      expect(failure).toMatchObject({ type: 'PoolUnavailable', nonRetryable: true });
      expect(failure.message).toBe('no worker of pool gpu (task queue probe-gpu) started shard 1 within 45 minutes');
      // Scheduled again at each 5-minute notice until 45 minutes had passed: nine tries.
      expect(await timers(handle)).toEqual(Array.from({ length: 9 }, () => 5 * MINUTE));
      expect(await handle.query(waitingQuery)).toBeNull();
    });
  });

  it('scores the shard once a worker comes, and stops listing it as waiting', async () => {
    await withProbe({ notice: '5 minutes', limit: '45 minutes', startsAfter: 3 }, async (handle) => {
      await env.sleep('12 minutes');
      expect(await handle.query(waitingQuery)).toMatchObject({ notices: 2 });
      expect(await handle.result()).toBe(4);
      expect(await timers(handle)).toEqual([5 * MINUTE, 5 * MINUTE, 5 * MINUTE]);
      expect(await handle.query(waitingQuery)).toBeNull();
    });
  });
});

describe('input wait', () => {
  it('waits on a durable timer while the input is missing, says so, and plans once it arrives', async () => {
    const queues = { cpu: uniqueTaskQueue('cpu'), gpu: uniqueTaskQueue('gpu') };
    const calls = newCalls();
    const cpu = await poolWorker(queues.cpu, calls, true, 4);
    const gpu = await poolWorker(queues.gpu, calls, false);
    await Promise.all([
      gpu.runUntil(
        cpu.runUntil(async () => {
          const handle = await start(queues, { inputWait: '30m' });
          await env.sleep('2 minutes');
          const progress: RunProgress = await handle.query(progressQuery);
          expect(progress).toMatchObject({ phase: 'waiting-for-input', input: { missing: [MISSING] } });
          expect(calls.planned).toBe(0);
          const summary = (await handle.result()) as RunSummary;
          expect(summary).toMatchObject({ scored: 4, failed: 0 });
          // Looked every minute (a tenth of the wait, at most a minute) on durable timers; planned after the fourth.
          expect(calls.checks).toBe(4);
          expect(await timers(handle)).toEqual([MINUTE, MINUTE, MINUTE]);
          expect(calls.planned).toBe(1);
          const done: RunProgress = await handle.query(progressQuery);
          expect(done.input).toBeUndefined();
        }),
      ),
    ]);
  });

  it('fails with InputMissing naming the store folder once the wait has passed, and plans nothing', async () => {
    const queues = { cpu: uniqueTaskQueue('cpu'), gpu: uniqueTaskQueue('gpu') };
    const calls = newCalls();
    const cpu = await poolWorker(queues.cpu, calls, true, Infinity);
    await cpu.runUntil(async () => {
      const handle = await start(queues);
      const failure = await failureOf(handle);
      expect(failure).toMatchObject({ type: 'InputMissing', nonRetryable: true });
      expect(failure.message).toBe(
        `no input for window ${WINDOW} after waiting 15m: an aggregates part missing under ${MISSING}`,
      );
      // The default wait of 15 minutes, looked at every minute: 16 looks, the last at the limit (the last timer
      // ends there, a little short of a minute: each look takes a moment of workflow time).
      expect(calls.checks).toBe(16);
      const waits = await timers(handle);
      expect(waits.slice(0, 14)).toEqual(Array.from({ length: 14 }, () => MINUTE));
      expect(waits[14]).toBeGreaterThan(0);
      expect(waits[14]).toBeLessThanOrEqual(MINUTE);
      const { events } = await handle.fetchHistory();
      const seconds = (i: number) => Number(events?.at(i)?.eventTime?.seconds ?? 0);
      expect(seconds(-1) - seconds(0)).toBeGreaterThanOrEqual(15 * 60);
      expect(calls.planned).toBe(0);
      expect(calls.commits).toEqual([]);
    });
  });

  it('looks once and fails at once with inputWait 0, naming the completion marker it waited for', async () => {
    const queues = { cpu: uniqueTaskQueue('cpu'), gpu: uniqueTaskQueue('gpu') };
    const calls = newCalls();
    const cpu = await poolWorker(queues.cpu, calls, true, Infinity);
    await cpu.runUntil(async () => {
      const failure = await failureOf(await start(queues, { inputWait: 0, inputMarker: true }));
      expect(failure.message).toContain('after waiting 0s: the completion marker _SUCCESS missing under');
      expect(calls.checks).toBe(1);
    });
  });
});
