/**
 * `fleetscore backfill --schedule ID --from T1 --to T2`: scores the windows in `[T1, T2)` with the Schedule
 * backfill API, so each one is an ordinary scheduled run (same workflow id pattern, same search attributes),
 * then waits for them and prints one row per window.
 */
import type { Client, ScheduleDescription, WorkflowExecutionInfo } from '@temporalio/client';
import { Command } from 'commander';
import { z } from 'zod';
import { SCHEDULED_BY_ID, SCHEDULED_START_TIME, SCORING_WORKFLOW } from '../../lib/shared/names';
import { RUN_DEFAULTS, type ScoringRunInput } from '../../lib/shared/run-types';
import { parseWindow, windowBefore, windowIdOf } from '../../lib/shared/window';
import { messageOf } from '../../lib/shared/errors';
import { backfillRange, type ScheduleTiming } from '../../schedules/backfill-range';
import { OVERLAP_FLAGS, type OverlapFlag, type OverlapPolicy } from '../../schedules/schedule-declaration';
import { parseOptions } from '../utils/parse-options';
import { createProgressBar, type ProgressBar } from '../utils/progress-bar';
import { formatTable, output } from '../utils/table';
import { withClient } from '../utils/with-client';

const HOUR_MS = 3_600_000;

/** A window time: `2026-11-21T12` or any ISO time on a whole UTC hour, as epoch milliseconds. */
const windowTime = z.string().transform((value, ctx) => {
  try {
    return parseWindow(value).startMs;
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: messageOf(err) });
    return z.NEVER;
  }
});

const optionsSchema = z
  .object({
    // Quotes would break the visibility query the wait builds, and no schedule id holds them.
    schedule: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a schedule id such as fleetscore-hourly'),
    from: windowTime,
    to: windowTime,
    overlap: z.enum(Object.keys(OVERLAP_FLAGS) as [OverlapFlag, ...OverlapFlag[]]),
    wait: z.boolean(),
    json: z.boolean().default(false),
    pollMs: z.number().int().positive().default(1_000),
  })
  .refine((o) => o.to > o.from, {
    path: ['to'],
    message: 'must be after --from: the range [--from, --to) holds no window',
  });

/** Options of a backfill, as validated from the command line. */
export type BackfillOptions = z.infer<typeof optionsSchema>;

/** How a window's backfilled run ended (or that it has not, with --no-wait). */
export type BackfillRunStatus =
  'requested' | 'running' | 'completed' | 'failed' | 'cancelled' | 'terminated' | 'timed-out' | 'skipped';

/** One window of a backfill and the run that scored it. */
export interface BackfillRun {
  window: string;
  scheduledAt: string;
  status: BackfillRunStatus;
  workflowId?: string;
  runId?: string;
}

/** What a backfill did. */
export interface BackfillResult {
  schedule: string;
  overlap: OverlapPolicy;
  waited: boolean;
  runs: BackfillRun[];
}

/** A schedule's window length and offset, read from the server: what it actually runs is what a backfill uses. */
export function scheduleTiming(d: ScheduleDescription): ScheduleTiming {
  const intervals = d.spec.intervals ?? [];
  const interval = intervals[0];
  if (d.action.workflowType !== SCORING_WORKFLOW) {
    throw new Error(
      `schedule ${d.scheduleId} starts ${d.action.workflowType}, not ${SCORING_WORKFLOW}: it scores no windows`,
    );
  }
  if (!interval || intervals.length !== 1 || (d.spec.calendars ?? []).length > 0) {
    throw new Error(
      `schedule ${d.scheduleId} is not one interval per window; backfill needs the spec that \`schedules apply\` writes`,
    );
  }
  const input = (d.action.args ?? [])[0] as Partial<ScoringRunInput> | undefined;
  const windowHours = input?.windowHours ?? RUN_DEFAULTS.windowHours;
  if (interval.every !== windowHours * HOUR_MS) {
    throw new Error(
      `schedule ${d.scheduleId} fires every ${interval.every / 60_000}m but scores ${windowHours}h windows; re-apply it`,
    );
  }
  return { windowHours, offsetMs: interval.offset ?? 0 };
}

/**
 * Requests the backfill and, with `wait`, follows the runs in visibility until each window's run has closed.
 * Runs that existed before the request (an earlier run of the same window) are told apart by run id.
 */
export async function runBackfill(
  client: Client,
  options: BackfillOptions,
  progress?: (done: number, total: number, status: string) => void,
): Promise<BackfillResult> {
  const handle = client.schedule.getHandle(options.schedule);
  // A schedule that does not exist throws ScheduleNotFoundError, which the CLI turns into one message.
  const described = await handle.describe();
  const timing = scheduleTiming(described);
  const range = backfillRange(timing, options.from, options.to);
  const overlap = OVERLAP_FLAGS[options.overlap];
  const query =
    `${SCHEDULED_BY_ID.name} = '${options.schedule}' AND ` +
    `${SCHEDULED_START_TIME.name} >= '${range.start.toISOString()}' AND ${SCHEDULED_START_TIME.name} < '${range.end.toISOString()}'`;
  // startedAt is bookkeeping of the wait loop, dropped from the result.
  const runs: (BackfillRun & { startedAt?: number })[] = range.windowStarts.map((w, i) => ({
    window: windowIdOf(w),
    scheduledAt: new Date(range.scheduledTimes[i] as number).toISOString(),
    status: 'requested',
  }));

  if (!options.wait) {
    await handle.backfill([{ start: range.start, end: range.end, overlap }]);
    return { schedule: options.schedule, overlap, waited: false, runs: runs.map(({ startedAt: _s, ...r }) => r) };
  }
  const before = new Set((await listRuns(client, query)).map((r) => r.runId));
  const counters = async () => skipCounters(await handle.describe());
  const skippedBefore = skipCounters(described);
  await handle.backfill([{ start: range.start, end: range.end, overlap }]);

  const byWindow = new Map(runs.map((r) => [r.window, r]));
  for (;;) {
    for (const info of await listRuns(client, query)) {
      if (before.has(info.runId)) continue;
      const nominal = info.typedSearchAttributes.get(SCHEDULED_START_TIME);
      const run = nominal ? byWindow.get(windowBefore(nominal.getTime(), timing.windowHours).id) : undefined;
      // Of two new runs for one window (two backfills at once), the later start is the one to report.
      if (!run || (run.runId && run.runId !== info.runId && (run.startedAt ?? 0) > info.startTime.getTime())) continue;
      Object.assign(run, {
        workflowId: info.workflowId,
        runId: info.runId,
        status: statusOf(info),
        startedAt: info.startTime.getTime(),
      });
    }
    const open = runs.filter((r) => r.status === 'running').length;
    let missing = runs.filter((r) => r.status === 'requested');
    if (open === 0 && missing.length > 0) {
      // Nothing runs and nothing is buffered: windows still without a run were dropped by the overlap policy.
      const now = await counters();
      if (now.buffered === 0 && now.skipped - skippedBefore.skipped >= missing.length) {
        for (const r of missing) r.status = 'skipped';
        missing = [];
      }
    }
    const failed = runs.filter((r) => !['completed', 'running', 'requested'].includes(r.status)).length;
    const status = [
      `${open} running`,
      ...(missing.length ? [`${missing.length} waiting`] : []),
      ...(failed ? [`${failed} not completed`] : []),
    ];
    progress?.(runs.length - open - missing.length, runs.length, status.join(', '));
    if (open === 0 && missing.length === 0) break;
    await new Promise((r) => setTimeout(r, options.pollMs));
  }
  return { schedule: options.schedule, overlap, waited: true, runs: runs.map(({ startedAt: _s, ...r }) => r) };
}

/** A run's status in visibility, in the words the table prints. */
function statusOf(info: WorkflowExecutionInfo): BackfillRunStatus {
  switch (info.status.name) {
    case 'RUNNING':
      return 'running';
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

/** Actions the schedule dropped (overlap skips and buffer overflows) and starts it holds in its buffer. */
function skipCounters(d: ScheduleDescription): { skipped: number; buffered: number } {
  const raw = d.raw.info;
  return {
    skipped: Number(raw?.overlapSkipped ?? 0) + Number(raw?.bufferDropped ?? 0),
    buffered: Number(raw?.bufferSize ?? 0),
  };
}

async function listRuns(client: Client, query: string): Promise<WorkflowExecutionInfo[]> {
  const out: WorkflowExecutionInfo[] = [];
  for await (const info of client.workflow.list({ query })) out.push(info);
  return out;
}

function renderResult(r: BackfillResult): string {
  if (!r.waited) {
    return [
      `requested ${r.runs.length} window(s) of ${r.schedule} (overlap ${r.overlap}); they run as ordinary scheduled runs`,
      formatTable(
        ['WINDOW', 'SCHEDULED AT'],
        r.runs.map((x) => [x.window, x.scheduledAt]),
      ),
      `follow them with \`fleetscore schedules describe ${r.schedule}\``,
    ].join('\n');
  }
  return formatTable(
    ['WINDOW', 'STATUS', 'WORKFLOW ID'],
    r.runs.map((x) => [x.window, x.status, x.workflowId ?? '']),
  );
}

/** `fleetscore backfill`: score past windows through the schedule, and wait for them. */
export const backfillCommand = new Command('backfill')
  .description('score the windows in [--from, --to) as ordinary scheduled runs of a schedule, and wait for them')
  .requiredOption('--schedule <id>', 'schedule id, e.g. fleetscore-hourly')
  .requiredOption('--from <window>', 'first window, e.g. 2026-11-21T12 (or an ISO time on a whole hour)')
  .requiredOption('--to <window>', 'end of the range, exclusive: the window after the last one scored')
  .option('--overlap <policy>', `when runs overlap: ${Object.keys(OVERLAP_FLAGS).join('|')}`, 'buffer-all')
  .option('--no-wait', 'return once the backfill is requested')
  .option('--json', 'print the runs as JSON')
  .action(async (raw: Record<string, unknown>, command: Command) => {
    const options = parseOptions(command, optionsSchema, raw);
    let bar: ProgressBar | undefined;
    let result: BackfillResult;
    try {
      result = await withClient((client) =>
        runBackfill(client, options, (done, total, status) => {
          bar ??= createProgressBar(`backfill ${options.schedule}`, total);
          bar.update(done, status);
        }),
      );
    } finally {
      bar?.stop();
    }
    output(options.json, result, renderResult);
    const bad = result.runs.filter((r) => r.status !== 'completed' && r.status !== 'requested');
    if (bad.length > 0) {
      throw new Error(
        `${bad.length} of ${result.runs.length} window(s) were not scored: ${bad.map((r) => `${r.window} ${r.status}`).join(', ')}`,
      );
    }
  });
