/**
 * Backfilling a schedule's windows: each window of the range is started as its own run, with the schedule's run
 * settings and the id every run with an explicit window has (`runWorkflowId`), never through Temporal's schedule
 * backfill API. That API gives a backfilled run the very workflow id the schedule's own action at that nominal
 * time uses, and counts it among the schedule's running workflows for the overlap policy, so a backfill could
 * make the schedule refuse (duplicate id) or drop (buffer) a real action. Runs started here share neither: the
 * schedule fires exactly as if no backfill had happened.
 */
import type { Client, ScheduleDescription } from '@temporalio/client';
import { durationMs } from '../lib/shared/duration';
import { forEachLimited } from '../lib/shared/concurrency';
import { messageOf, WindowNotComplete } from '../lib/shared/errors';
import { SCORING_WORKFLOW } from '../lib/shared/names';
import { RUN_DEFAULTS, type RunSummary, type ScoringRunInput } from '../lib/shared/run-types';
import { assertComplete, scoreableAt, windowAt } from '../lib/shared/window';
import { backfillRange, type ScheduleTiming } from './backfill-range';
import { startRun } from '../lib/temporal/runs';
import { isManaged } from './schedule-reconciler';

const HOUR_MS = 3_600_000;

/** What to backfill. */
export interface BackfillRequest {
  schedule: string;
  /** Start of the first window and end of the range (exclusive), epoch ms. */
  from: number;
  to: number;
  /** Windows scored at once (each run's shards still queue for the pools' slots). */
  parallel: number;
  /** Wait for every run to close. */
  wait: boolean;
  /**
   * How long each run waits for its window's input, ms. Default: until the schedule's own run of the window would
   * have stopped waiting (the window's end, plus settle, plus the schedule's `inputWait`), so a window long past
   * whose input is missing fails at once instead of holding a slot of the backfill for the whole wait.
   */
  inputWait?: number;
  /** The clock, for the completeness check (tests). */
  now?: number;
}

/** How a window's run ended, or `started` without waiting. */
export type BackfillRunStatus = 'started' | 'completed' | 'failed' | 'cancelled' | 'terminated' | 'timed-out';

/** One window of a backfill and the run that scored it. */
export interface BackfillRun {
  window: string;
  status: BackfillRunStatus;
  workflowId: string;
  runId: string;
  /** The run's counts, when it completed. */
  summary?: RunSummary;
  /** Why it did not complete. */
  failure?: string;
}

/** What a backfill did. */
export interface BackfillResult {
  schedule: string;
  waited: boolean;
  runs: BackfillRun[];
}

/** A schedule's timing, run input and task queue, read from the server: what it actually runs is what a backfill uses. */
export interface ScheduleRun {
  timing: ScheduleTiming;
  input: ScoringRunInput;
  taskQueue: string;
  /** How long after a window's end its runs may score it: the declared `settle`, else the schedule's offset. */
  settleMs: number;
  /** How long its runs wait for their input once they start (`run.inputWait`, else the default). */
  inputWaitMs: number;
}

/** Reads what a schedule runs from its description; throws when it is not a fleetscore scoring schedule. */
export function scheduleRun(d: ScheduleDescription): ScheduleRun {
  const intervals = d.spec.intervals ?? [];
  const interval = intervals[0];
  if (d.action.type !== 'startWorkflow' || d.action.workflowType !== SCORING_WORKFLOW) {
    throw new Error(`schedule ${d.scheduleId} does not start ${SCORING_WORKFLOW}: it scores no windows`);
  }
  if (!interval || intervals.length !== 1 || (d.spec.calendars ?? []).length > 0) {
    throw new Error(
      `schedule ${d.scheduleId} is not one interval per window; backfill needs the spec that \`schedules apply\` writes`,
    );
  }
  const input = ((d.action.args ?? [])[0] ?? {}) as ScoringRunInput;
  const windowHours = input.windowHours ?? RUN_DEFAULTS.windowHours;
  if (interval.every !== windowHours * HOUR_MS) {
    throw new Error(
      `schedule ${d.scheduleId} fires every ${interval.every / 60_000}m but scores ${windowHours}h windows; re-apply it`,
    );
  }
  const offsetMs = interval.offset ?? 0;
  const settleMs = input.settle === undefined ? offsetMs : durationMs(input.settle);
  if (settleMs === undefined) throw new Error(`schedule ${d.scheduleId} has a settle that is not a duration`);
  const inputWaitMs = durationMs(input.inputWait ?? RUN_DEFAULTS.inputWait);
  if (inputWaitMs === undefined) throw new Error(`schedule ${d.scheduleId} has an inputWait that is not a duration`);
  return { timing: { windowHours, offsetMs }, input, taskQueue: d.action.taskQueue, settleMs, inputWaitMs };
}

/**
 * The id of the one fleetscore schedule on the server, for a backfill not told which; throws naming them when there
 * are several, or saying there is none. (The server lists a schedule a moment after it is created.)
 */
export async function soleSchedule(client: Client): Promise<string> {
  const ids: string[] = [];
  for await (const s of client.schedule.list()) if (isManaged(s)) ids.push(s.scheduleId);
  if (ids.length === 1) return ids[0]!;
  if (ids.length === 0) {
    throw new Error(
      'no fleetscore schedule on the server: apply one (`fleetscore schedules apply`), or name one with --schedule',
    );
  }
  throw new Error(
    `${ids.length} fleetscore schedules on the server (${ids.sort().join(', ')}): name one with --schedule`,
  );
}

/**
 * Checks the whole range first (whole windows of the schedule's length, every one complete by the schedule's
 * settle time), so a refused backfill starts nothing; then starts each window's run, `parallel` at a time, and
 * with `wait` waits for each before starting the next beyond `parallel`. `progress` hears of every run that ends.
 */
export async function runBackfill(
  client: Client,
  request: BackfillRequest,
  progress?: (done: number, total: number) => void,
): Promise<BackfillResult> {
  const { timing, input, taskQueue, settleMs, inputWaitMs } = scheduleRun(
    await client.schedule.getHandle(request.schedule).describe(),
  );
  const { windowStarts } = backfillRange(timing, request.from, request.to);
  const windows = windowStarts.map((start) => windowAt(start, timing.windowHours));
  const clock = () => request.now ?? Date.now();
  const now = clock();
  for (const window of windows) {
    try {
      assertComplete(window, settleMs, now);
    } catch (err) {
      if (!(err instanceof WindowNotComplete)) throw err;
      const later = windows.length - 1 - windows.indexOf(window);
      throw new Error(
        `backfill refused, nothing was started: ${err.message}${later > 0 ? ` (and ${later} later window(s) of the range)` : ''}`,
      );
    }
  }
  const runs: BackfillRun[] = [];
  let done = 0;
  const limit = request.wait ? request.parallel : windows.length;
  await forEachLimited(windows, Math.max(1, limit), async (window, i) => {
    // Whole seconds, so a failure says `after waiting 512s`, not a count of milliseconds.
    const inputWait =
      request.inputWait ?? Math.ceil(Math.max(0, scoreableAt(window, settleMs) + inputWaitMs - clock()) / 1000) * 1000;
    const handle = await startRun(
      client,
      { ...input, scheduleId: request.schedule, window: window.id, inputWait },
      taskQueue,
    );
    const run: BackfillRun = {
      window: window.id,
      status: 'started',
      workflowId: handle.workflowId,
      runId: handle.firstExecutionRunId,
    };
    runs[i] = run;
    if (!request.wait) return;
    try {
      run.summary = await handle.result();
      run.status = 'completed';
    } catch (err) {
      run.status = closedStatus((await handle.describe()).status.name);
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
      run.failure = messageOf(cause);
    }
    progress?.(++done, windows.length);
  });
  return { schedule: request.schedule, waited: request.wait, runs };
}

/** A closed run's status in the words the table prints. */
function closedStatus(name: string): BackfillRunStatus {
  switch (name) {
    case 'COMPLETED':
      return 'completed';
    case 'CANCELLED':
      return 'cancelled';
    case 'TERMINATED':
      return 'terminated';
    case 'TIMED_OUT':
      return 'timed-out';
    default:
      return 'failed';
  }
}
