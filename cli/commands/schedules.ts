/**
 * `fleetscore schedules apply|list|describe|pause|unpause|trigger`: the schedules a schedules module declares
 * (schedules/fleet-schedules.ts, or `--file` anywhere on disk) on the Temporal server, compared field by field,
 * and the day-to-day controls of a running schedule.
 */
import type { Client } from '@temporalio/client';
import { Command } from 'commander';
import { z } from 'zod';
import { OVERLAP_FLAGS, type OverlapFlag } from '../../schedules/schedule-declaration';
import { formatDuration, formatFieldChanges, scheduleDiff, type FieldChange } from '../../schedules/schedule-drift';
import { DEFAULT_SCHEDULES_FILE, loadSchedules, type DeclaredSchedules } from '../../schedules/schedule-file';
import {
  applySchedules,
  compileSchedule,
  isManaged,
  scheduleRecord,
  scopeOf,
  type ScheduleChange,
} from '../../schedules/schedule-reconciler';
import { notice } from '../utils/notice';
import { parseOptions } from '../utils/parse-options';
import { formatTable, output } from '../utils/table';
import { withClient } from '../utils/with-client';

const scheduleId = z.string().trim().min(1, 'a schedule id is required');
const overlapFlag = z.enum(Object.keys(OVERLAP_FLAGS) as [OverlapFlag, ...OverlapFlag[]]);
const fileOption = z.string().trim().min(1, 'must name a file').optional();
const FILE_HELP = `a schedules module exporting fleetSchedules(env) and scope, anywhere on disk (default ${DEFAULT_SCHEDULES_FILE})`;

const iso = (d: Date | undefined) => (d ? d.toISOString().replace('.000Z', 'Z') : '');

/** What `schedules apply` prints as JSON. */
export interface ApplyReport {
  dryRun: boolean;
  file: string;
  scope: string;
  changes: ScheduleChange[];
}

const apply = new Command('apply')
  .description("make the server's schedules of the file's scope match its declarations; other scopes are untouched")
  .option('--file <path>', FILE_HELP)
  .option('--dry-run', 'say what would change, change nothing')
  .option('--json', 'print the changes as JSON')
  .action(async (raw: Record<string, unknown>, command: Command) => {
    const opts = parseOptions(
      command,
      z.object({ file: fileOption, dryRun: z.boolean().default(false), json: z.boolean().default(false) }),
      raw,
    );
    // Loaded and validated before connecting: an invalid file changes nothing on the server.
    const declared = loadSchedules(opts.file);
    const changes = await withClient((client) =>
      applySchedules(client, declared.schedules, { dryRun: opts.dryRun, scope: declared.scope }),
    );
    const report: ApplyReport = { dryRun: opts.dryRun, file: declared.file, scope: declared.scope, changes };
    for (const c of changes) if (c.notice) notice(c.notice);
    output(opts.json, report, renderChanges);
  });

const VERBS: Record<ScheduleChange['action'], string> = {
  created: 'create',
  updated: 'update',
  deleted: 'delete',
  unchanged: 'unchanged',
};

/** The apply result as a table; a dry run says what it would do. */
export function renderChanges(r: ApplyReport): string {
  const verb = (a: ScheduleChange['action']) => (a === 'unchanged' ? a : r.dryRun ? `would ${VERBS[a]}` : a);
  return [
    `scope ${r.scope} (${r.file})`,
    formatTable(
      ['SCHEDULE', 'CHANGE', 'REASON'],
      r.changes.map((c) => [c.id, verb(c.action), c.reason]),
    ),
    ...(r.dryRun ? ['(dry run: nothing was changed)'] : []),
  ].join('\n');
}

/** One row of `schedules list`. */
export interface ScheduleListRow {
  id: string;
  managed: boolean;
  /** The scope of a managed schedule. */
  scope?: string;
  /** Whether the file compared with declares it; undefined for another scope's schedules and unmanaged ones. */
  declared?: boolean;
  paused: boolean;
  note: string;
  nextRun: string;
  lastRun: string;
}

/** The schedules on the server (fleetscore's, or all with `all`), with whether `declared` declares them. */
export async function gatherScheduleList(
  client: Client,
  declared: DeclaredSchedules,
  all: boolean,
): Promise<ScheduleListRow[]> {
  const ids = new Set(declared.schedules.map((s) => s.id));
  const rows: ScheduleListRow[] = [];
  for await (const s of client.schedule.list()) {
    const managed = isManaged(s);
    if (!managed && !all) continue;
    const last = s.info.recentActions[s.info.recentActions.length - 1];
    const scope = managed ? scopeOf(s) : undefined;
    rows.push({
      id: s.scheduleId,
      managed,
      ...(scope === undefined ? {} : { scope }),
      ...(scope === declared.scope ? { declared: ids.has(s.scheduleId) } : {}),
      paused: s.state.paused,
      note: s.state.note ?? '',
      nextRun: iso(s.info.nextActionTimes[0]),
      lastRun: last ? last.action.workflow.workflowId : '',
    });
  }
  return rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

const list = new Command('list')
  .description("fleetscore's schedules on the server: scope, declared or not, paused or not, next run, last run")
  .option('--file <path>', `${FILE_HELP}, to compare with`)
  .option('--all', 'include schedules fleetscore does not manage')
  .option('--json', 'print the list as JSON')
  .action(async (raw: Record<string, unknown>, command: Command) => {
    const opts = parseOptions(
      command,
      z.object({ file: fileOption, all: z.boolean().default(false), json: z.boolean().default(false) }),
      raw,
    );
    const declared = loadSchedules(opts.file);
    const rows = await withClient((client) => gatherScheduleList(client, declared, opts.all));
    const missing = declared.schedules.filter((s) => !rows.some((r) => r.id === s.id)).map((s) => s.id);
    if (missing.length) {
      notice(
        `declared in ${declared.file} but not on the server: ${missing.join(', ')}; ` +
          `\`fleetscore schedules apply${opts.file ? ` --file ${opts.file}` : ''}\` creates them`,
      );
    }
    for (const r of rows.filter((x) => x.paused && x.scope === declared.scope && x.declared)) {
      const decl = declared.schedules.find((s) => s.id === r.id);
      if (!decl?.paused) notice(`${r.id} is paused${r.note ? ` ("${r.note}")` : ''}: no runs start until unpaused`);
    }
    output(opts.json, rows, (r) =>
      r.length === 0
        ? 'no schedules on the server; run `fleetscore schedules apply`'
        : formatTable(
            ['SCHEDULE', 'SCOPE', 'DECLARED', 'STATE', 'NEXT RUN', 'LAST RUN'],
            r.map((s) => [
              s.id,
              s.scope ?? '(not managed)',
              s.declared === undefined ? '-' : s.declared ? 'yes' : 'no',
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
  scope?: string;
  /** Whether the file compared with declares it and the server matches (undefined when it does not declare it). */
  matchesDeclaration: boolean | undefined;
  /** The fields where the server differs from the declaration. */
  differences: FieldChange[];
  /** The declaration record is gone from the action memo (edited with `temporal schedule update`). */
  recordMissing: boolean;
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

/** A schedule's spec, state, next five action times, recent actions, and how it differs from its declaration. */
export async function gatherScheduleDetails(
  client: Client,
  id: string,
  declared: DeclaredSchedules,
): Promise<ScheduleDetails> {
  // A schedule that does not exist throws ScheduleNotFoundError, which the CLI turns into one message.
  const d = await client.schedule.getHandle(id).describe();
  const managed = isManaged(d);
  const scope = managed ? scopeOf(d) : undefined;
  const decl = scope === declared.scope ? declared.schedules.find((s) => s.id === id) : undefined;
  const compiled = decl ? compileSchedule(decl, declared.scope) : undefined;
  const record = scheduleRecord(d);
  const differences = compiled ? scheduleDiff(d, compiled) : [];
  const interval = d.spec.intervals?.[0];
  return {
    id,
    managed,
    ...(scope === undefined ? {} : { scope }),
    matchesDeclaration: compiled ? differences.length === 0 && record?.declarationHash === compiled.hash : undefined,
    differences,
    recordMissing: managed && record?.declarationHash === undefined,
    description: record?.description ?? '',
    spec: {
      every: interval ? formatDuration(interval.every) : d.spec.calendars?.length ? 'calendar' : '',
      offset: interval ? formatDuration(interval.offset ?? 0) : '',
      timezone: d.spec.timezone || 'UTC',
      jitter: formatDuration(d.spec.jitter ?? 0),
    },
    overlap: d.policies.overlap ?? 'SKIP',
    catchupWindow: formatDuration(d.policies.catchupWindow),
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

/** How the schedule stands against its declaration, in one line. */
function declarationLine(d: ScheduleDetails, file: string): string {
  if (!d.managed) return 'not managed by fleetscore (apply never changes it)';
  if (d.matchesDeclaration === undefined) return `scope ${d.scope}; not declared in ${file}`;
  if (d.matchesDeclaration) return `scope ${d.scope}; matches its declaration in ${file}`;
  const what = d.differences.length ? formatFieldChanges(d.differences) : 'the declaration changed';
  return (
    `scope ${d.scope}; differs from its declaration in ${file}${d.recordMissing ? ' (edited outside fleetscore)' : ''}: ` +
    `${what} (server -> declared; \`schedules apply\` sets them)`
  );
}

function renderDetails(d: ScheduleDetails, file: string): string {
  return [
    `schedule   ${d.id}${d.description ? ` — ${d.description}` : ''}`,
    `managed    ${declarationLine(d, file)}`,
    `spec       every ${d.spec.every}, offset ${d.spec.offset}, jitter ${d.spec.jitter}, ${d.spec.timezone}`,
    `policies   overlap ${d.overlap}, catch-up window ${d.catchupWindow}`,
    `state      ${d.paused ? 'paused: no runs start' : 'active'}${d.note ? ` (${d.note})` : ''}`,
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
  .description('a schedule: spec, policies, paused or not, how it differs from its declaration, next runs, recent runs')
  .argument('<id>', 'schedule id, e.g. fleetscore-hourly')
  .option('--file <path>', `${FILE_HELP}, to compare with`)
  .option('--json', 'print the description as JSON')
  .action(async (id: string, raw: Record<string, unknown>, command: Command) => {
    const opts = parseOptions(
      command,
      z.object({ id: scheduleId, file: fileOption, json: z.boolean().default(false) }),
      { ...raw, id },
    );
    const declared = loadSchedules(opts.file);
    const details = await withClient((client) => gatherScheduleDetails(client, opts.id, declared));
    output(opts.json, details, (d) => renderDetails(d, declared.file));
  });

const pause = new Command('pause')
  .description('stop a schedule from starting runs; `schedules apply` keeps it paused until its declaration changes')
  .argument('<id>', 'schedule id')
  .option('--note <text>', 'why it is paused (shown by list and describe)')
  .action(async (id: string, raw: Record<string, unknown>, command: Command) => {
    const opts = parseOptions(command, z.object({ id: scheduleId, note: z.string().trim().min(1).optional() }), {
      ...raw,
      id,
    });
    await withClient((client) =>
      client.schedule.getHandle(opts.id).pause(opts.note ?? 'paused with fleetscore schedules pause'),
    );
    process.stdout.write(`paused ${opts.id}; \`fleetscore schedules unpause ${opts.id}\` resumes it\n`);
  });

const unpause = new Command('unpause')
  .description('let a paused schedule start runs again (missed runs are not made up: use `fleetscore backfill`)')
  .argument('<id>', 'schedule id')
  .option('--note <text>', 'why it is resumed')
  .action(async (id: string, raw: Record<string, unknown>, command: Command) => {
    const opts = parseOptions(command, z.object({ id: scheduleId, note: z.string().trim().min(1).optional() }), {
      ...raw,
      id,
    });
    await withClient((client) =>
      client.schedule.getHandle(opts.id).unpause(opts.note ?? 'unpaused with fleetscore schedules unpause'),
    );
    process.stdout.write(`unpaused ${opts.id}; windows missed while paused: \`fleetscore backfill\`\n`);
  });

const trigger = new Command('trigger')
  .description('start one run now, scoring the last complete window (as if the schedule fired now)')
  .argument('<id>', 'schedule id')
  .option(
    '--overlap <policy>',
    `if a run is in progress: ${Object.keys(OVERLAP_FLAGS).join('|')} (default: the schedule's own policy)`,
  )
  .action(async (id: string, raw: Record<string, unknown>, command: Command) => {
    const opts = parseOptions(command, z.object({ id: scheduleId, overlap: overlapFlag.optional() }), { ...raw, id });
    const policy = await withClient(async (client) => {
      const handle = client.schedule.getHandle(opts.id);
      const current = await handle.describe();
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
