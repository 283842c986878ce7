/**
 * `fleetscore schedules apply|list|describe|pause|unpause|trigger`: the declared schedules (schedules/) on the
 * Temporal server, and the day-to-day controls of a running schedule.
 */
import { ScheduleNotFoundError, type Client, type ScheduleDescription, type ScheduleHandle } from '@temporalio/client';
import { Command } from 'commander';
import { z } from 'zod';
import { connectClient } from '../../lib/temporal/connection';
import { fleetSchedules, OVERLAP_FLAGS, type OverlapFlag } from '../../schedules/fleet-schedules';
import {
  applySchedules,
  compileSchedule,
  isManaged,
  scheduleRecord,
  type ScheduleChange,
} from '../../schedules/schedule-reconciler';
import { DEFAULT_SCHEDULES_FILE, loadSchedules } from '../../schedules/schedule-file';
import { formatTable, output } from '../utils/table';

const scheduleId = z.string().trim().min(1, 'a schedule id is required');
const overlapFlag = z.enum(Object.keys(OVERLAP_FLAGS) as [OverlapFlag, ...OverlapFlag[]]);

/** Runs `work` with a client, closing the connection whatever happens. */
async function withClient<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const { client, connection } = await connectClient();
  try {
    return await work(client);
  } finally {
    await connection.close();
  }
}

/** Describes a schedule, turning "not found" into a message that names it. */
async function describeSchedule(handle: ScheduleHandle): Promise<ScheduleDescription> {
  try {
    return await handle.describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) {
      throw new Error(
        `no schedule "${handle.scheduleId}" on the server; \`fleetscore schedules list --all\` shows what exists`,
      );
    }
    throw err;
  }
}

const iso = (d: Date | undefined) => (d ? d.toISOString().replace('.000Z', 'Z') : '');

const apply = new Command('apply')
  .description('make the server match the schedules declared in schedules/fleet-schedules.ts (or --file)')
  .option('--file <path>', `a module exporting fleetSchedules(env) to apply instead of ${DEFAULT_SCHEDULES_FILE}`)
  .option('--dry-run', 'show the changes without making them')
  .option('--json', 'print the changes as JSON')
  .action(async (raw: Record<string, unknown>) => {
    const opts = z
      .object({
        file: z.string().trim().min(1, 'must name a file').optional(),
        dryRun: z.boolean().default(false),
        json: z.boolean().default(false),
      })
      .parse(raw);
    // Loaded and validated before connecting: an invalid file changes nothing on the server.
    const declared = loadSchedules(opts.file);
    const changes = await withClient((client) => applySchedules(client, declared, { dryRun: opts.dryRun }));
    output(opts.json, { dryRun: opts.dryRun, changes }, (r) => renderChanges(r.changes, r.dryRun));
  });

/** The apply result as a table; a dry run says what would happen. */
function renderChanges(changes: readonly ScheduleChange[], dryRun: boolean): string {
  const verb = (a: ScheduleChange['action']) => (dryRun && a !== 'unchanged' ? `would be ${a}` : a);
  const table = formatTable(
    ['SCHEDULE', 'CHANGE', 'REASON'],
    changes.map((c) => [c.id, verb(c.action), c.reason]),
  );
  return dryRun ? `${table}\n(dry run: nothing was changed)` : table;
}

/** One row of `schedules list`. */
export interface ScheduleListRow {
  id: string;
  managed: boolean;
  declared: boolean;
  paused: boolean;
  note: string;
  nextRun: string;
  lastRun: string;
}

/** The schedules on the server (fleetscore's, or all with `all`), with whether the code declares them. */
export async function gatherScheduleList(
  client: Client,
  declaredIds: ReadonlySet<string>,
  all: boolean,
): Promise<ScheduleListRow[]> {
  const rows: ScheduleListRow[] = [];
  for await (const s of client.schedule.list()) {
    const managed = isManaged(s);
    if (!managed && !all) continue;
    const last = s.info.recentActions[s.info.recentActions.length - 1];
    rows.push({
      id: s.scheduleId,
      managed,
      declared: declaredIds.has(s.scheduleId),
      paused: s.state.paused,
      note: s.state.note ?? '',
      nextRun: iso(s.info.nextActionTimes[0]),
      lastRun: last ? last.action.workflow.workflowId : '',
    });
  }
  return rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

const list = new Command('list')
  .description("fleetscore's schedules on the server: paused or not, next run, last run")
  .option('--all', 'include schedules fleetscore does not manage')
  .option('--json', 'print the list as JSON')
  .action(async (raw: Record<string, unknown>) => {
    const opts = z.object({ all: z.boolean().default(false), json: z.boolean().default(false) }).parse(raw);
    const declared = new Set(fleetSchedules().map((s) => s.id));
    const rows = await withClient((client) => gatherScheduleList(client, declared, opts.all));
    output(opts.json, rows, (r) =>
      r.length === 0
        ? 'no schedules on the server; run `fleetscore schedules apply`'
        : formatTable(
            ['SCHEDULE', 'MANAGED', 'DECLARED', 'STATE', 'NEXT RUN', 'LAST RUN'],
            r.map((s) => [
              s.id,
              s.managed ? 'yes' : 'no',
              s.declared ? 'yes' : 'no',
              s.paused ? `paused${s.note ? ` (${s.note})` : ''}` : 'active',
              s.nextRun,
              s.lastRun,
            ]),
          ),
    );
  });

/** What `schedules describe` shows. */
export interface ScheduleDetails {
  id: string;
  managed: boolean;
  /** Whether the declaration in code matches what the server runs (undefined when not declared). */
  matchesDeclaration: boolean | undefined;
  description: string;
  spec: { every: string; offset: string; timezone: string; jitter: string };
  overlap: string;
  catchupWindow: string;
  paused: boolean;
  note: string;
  workflowType: string;
  taskQueue: string;
  args: unknown[];
  nextActionTimes: string[];
  recentActions: { scheduledAt: string; takenAt: string; workflowId: string }[];
  runningWorkflowIds: string[];
  actionsTaken: number;
  skippedOverlap: number;
  missedCatchupWindow: number;
}

/** A schedule's spec, state, next five action times and recent actions with their workflow ids. */
export async function gatherScheduleDetails(client: Client, id: string): Promise<ScheduleDetails> {
  const d = await describeSchedule(client.schedule.getHandle(id));
  const decl = fleetSchedules().find((s) => s.id === id);
  const interval = d.spec.intervals?.[0];
  return {
    id,
    managed: isManaged(d),
    matchesDeclaration: decl ? scheduleRecord(d)?.declarationHash === compileSchedule(decl).hash : undefined,
    description: scheduleRecord(d)?.description ?? '',
    spec: {
      every: interval ? duration(interval.every) : d.spec.calendars?.length ? 'calendar' : '',
      offset: interval ? duration(interval.offset ?? 0) : '',
      timezone: d.spec.timezone || 'UTC',
      jitter: duration(d.spec.jitter ?? 0),
    },
    overlap: d.policies.overlap ?? 'SKIP',
    catchupWindow: duration(d.policies.catchupWindow),
    paused: d.state.paused,
    note: d.state.note ?? '',
    workflowType: d.action.workflowType,
    taskQueue: d.action.taskQueue,
    args: [...((d.action.args ?? []) as unknown[])],
    nextActionTimes: d.info.nextActionTimes.slice(0, 5).map((t) => iso(t)),
    recentActions: d.info.recentActions.map((a) => ({
      scheduledAt: iso(a.scheduledAt),
      takenAt: iso(a.takenAt),
      workflowId: a.action.workflow.workflowId,
    })),
    runningWorkflowIds: d.info.runningActions.map((a) => a.workflow.workflowId),
    actionsTaken: d.info.numActionsTaken,
    skippedOverlap: d.info.numActionsSkippedOverlap,
    missedCatchupWindow: d.info.numActionsMissedCatchupWindow,
  };
}

/** Milliseconds as a short duration: `1h`, `5m`, `1h30m`, `45s`, `0s`. */
function duration(ms: number): string {
  const parts: string[] = [];
  let rest = Math.round(ms / 1000);
  for (const [unit, secs] of [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= secs) {
      parts.push(`${Math.floor(rest / secs)}${unit}`);
      rest %= secs;
    }
  }
  return parts.join('') || '0s';
}

function renderDetails(d: ScheduleDetails): string {
  const declared =
    d.matchesDeclaration === undefined
      ? 'not declared in code'
      : d.matchesDeclaration
        ? 'matches its declaration'
        : 'differs from its declaration (run `schedules apply`)';
  return [
    `schedule   ${d.id}${d.description ? ` — ${d.description}` : ''}`,
    `managed    ${d.managed ? 'by fleetscore' : 'no (fleetscore will not change it)'}; ${declared}`,
    `spec       every ${d.spec.every}, offset ${d.spec.offset}, jitter ${d.spec.jitter}, ${d.spec.timezone}`,
    `policies   overlap ${d.overlap}, catch-up window ${d.catchupWindow}`,
    `state      ${d.paused ? 'paused' : 'active'}${d.note ? ` (${d.note})` : ''}`,
    `action     ${d.workflowType} on ${d.taskQueue} with ${JSON.stringify(d.args)}`,
    `actions    ${d.actionsTaken} taken, ${d.skippedOverlap} skipped by overlap, ${d.missedCatchupWindow} missed the catch-up window`,
    `running    ${d.runningWorkflowIds.join(', ') || 'none'}`,
    '',
    'next action times',
    ...(d.nextActionTimes.length ? d.nextActionTimes.map((t) => `  ${t}`) : ['  none (paused or ended)']),
    '',
    d.recentActions.length
      ? formatTable(
          ['SCHEDULED', 'TAKEN', 'WORKFLOW ID'],
          d.recentActions.map((a) => [a.scheduledAt, a.takenAt, a.workflowId]),
        )
      : 'no recent actions',
  ].join('\n');
}

const describe = new Command('describe')
  .description('a schedule: spec, policies, paused or not, next 5 action times, recent actions and their workflow ids')
  .argument('<id>', 'schedule id, e.g. fleetscore-hourly')
  .option('--json', 'print the description as JSON')
  .action(async (id: string, raw: Record<string, unknown>) => {
    const opts = z.object({ id: scheduleId, json: z.boolean().default(false) }).parse({ ...raw, id });
    const details = await withClient((client) => gatherScheduleDetails(client, opts.id));
    output(opts.json, details, renderDetails);
  });

const pause = new Command('pause')
  .description('stop a schedule from starting runs; `schedules apply` keeps it paused until its declaration changes')
  .argument('<id>', 'schedule id')
  .option('--note <text>', 'why it is paused (shown by list and describe)')
  .action(async (id: string, raw: Record<string, unknown>) => {
    const opts = z.object({ id: scheduleId, note: z.string().trim().min(1).optional() }).parse({ ...raw, id });
    await withClient(async (client) => {
      const handle = client.schedule.getHandle(opts.id);
      await describeSchedule(handle);
      await handle.pause(opts.note ?? 'paused with fleetscore schedules pause');
    });
    process.stdout.write(`paused ${opts.id}\n`);
  });

const unpause = new Command('unpause')
  .description('let a paused schedule start runs again (missed runs are not made up: use `fleetscore backfill`)')
  .argument('<id>', 'schedule id')
  .option('--note <text>', 'why it is resumed')
  .action(async (id: string, raw: Record<string, unknown>) => {
    const opts = z.object({ id: scheduleId, note: z.string().trim().min(1).optional() }).parse({ ...raw, id });
    await withClient(async (client) => {
      const handle = client.schedule.getHandle(opts.id);
      await describeSchedule(handle);
      await handle.unpause(opts.note ?? 'unpaused with fleetscore schedules unpause');
    });
    process.stdout.write(`unpaused ${opts.id}\n`);
  });

const trigger = new Command('trigger')
  .description('start one run now, scoring the last complete window (as if the schedule fired now)')
  .argument('<id>', 'schedule id')
  .option(
    '--overlap <policy>',
    `if a run is in progress: ${Object.keys(OVERLAP_FLAGS).join('|')} (default: the schedule's own policy)`,
  )
  .action(async (id: string, raw: Record<string, unknown>) => {
    const opts = z.object({ id: scheduleId, overlap: overlapFlag.optional() }).parse({ ...raw, id });
    const policy = await withClient(async (client) => {
      const handle = client.schedule.getHandle(opts.id);
      const current = await describeSchedule(handle);
      const overlap = opts.overlap ? OVERLAP_FLAGS[opts.overlap] : current.policies.overlap;
      await handle.trigger(overlap);
      return overlap;
    });
    process.stdout.write(
      `triggered ${opts.id} (overlap ${policy}); \`fleetscore schedules describe ${opts.id}\` shows the run\n`,
    );
  });

/** `fleetscore schedules`: apply the declared schedules and control them on the server. */
export const schedulesCommand = new Command('schedules')
  .description('schedules as code: apply the declarations, list, describe, pause, unpause, trigger')
  .addCommand(apply)
  .addCommand(list)
  .addCommand(describe)
  .addCommand(pause)
  .addCommand(unpause)
  .addCommand(trigger);
