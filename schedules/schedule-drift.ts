/**
 * How a schedule on the server differs from its declaration, field by field, whatever edited it (the Web UI,
 * `temporal schedule update`, an older declaration): the spec, policies and action that `schedules apply` controls,
 * each difference with the server's value and the declared one. Values are normalised the way the server returns
 * them (an omitted zero offset or jitter, an empty time zone meaning UTC), so only real differences show.
 */
import type { ScheduleDescription } from '@temporalio/client';
import type { CompiledSchedule } from './schedule-reconciler';

/** One field that differs: its path as `temporal schedule describe` shows it, and both values. */
export interface FieldChange {
  field: string;
  server: unknown;
  declared: unknown;
}

/** Paths whose values are durations in milliseconds, shown as `1h`, `5m`, `30s`. */
const DURATION_FIELD = /^(spec\.intervals\[\d+\]\.(every|offset)|spec\.jitter|policies\.catchupWindow)$/;

/** The fields apply controls, in the same shape for the server's description and for a compiled declaration. */
function controlled(source: {
  intervals: { every: number; offset?: number }[];
  calendars: number;
  timezone: string | undefined;
  jitter: number | undefined;
  overlap: string | undefined;
  catchupWindow: number | undefined;
  workflowType: string;
  taskQueue: string;
  workflowId: string | undefined;
  args: unknown[];
}): Record<string, unknown> {
  return {
    spec: {
      intervals: source.intervals.map((i) => ({ every: i.every, offset: i.offset ?? 0 })),
      ...(source.calendars > 0 ? { calendars: source.calendars } : {}),
      timezone: source.timezone || 'UTC',
      jitter: source.jitter ?? 0,
    },
    policies: { overlap: source.overlap, catchupWindow: source.catchupWindow },
    action: {
      workflowType: source.workflowType,
      taskQueue: source.taskQueue,
      workflowId: source.workflowId,
      args: source.args,
    },
  };
}

/** Every field apply controls whose server value differs from the declared one; empty when they match. */
export function scheduleDiff(current: ScheduleDescription, compiled: CompiledSchedule): FieldChange[] {
  const want = compiled.options;
  const server = controlled({
    intervals: current.spec.intervals ?? [],
    calendars: (current.spec.calendars ?? []).length,
    timezone: current.spec.timezone,
    jitter: current.spec.jitter,
    overlap: current.policies.overlap,
    catchupWindow: current.policies.catchupWindow,
    workflowType: current.action.type === 'startWorkflow' ? current.action.workflowType : '',
    taskQueue: current.action.type === 'startWorkflow' ? current.action.taskQueue : '',
    workflowId: current.action.type === 'startWorkflow' ? current.action.workflowId : undefined,
    args: [...((current.action.args ?? []) as unknown[])],
  });
  const declared = controlled({
    intervals: want.spec.intervals as { every: number; offset?: number }[],
    calendars: 0,
    timezone: want.spec.timezone,
    jitter: want.spec.jitter as number | undefined,
    overlap: want.policies?.overlap,
    catchupWindow: want.policies?.catchupWindow as number | undefined,
    workflowType: want.action.workflowType as string,
    taskQueue: want.action.taskQueue,
    workflowId: want.action.workflowId,
    args: want.action.args,
  });
  const changes: FieldChange[] = [];
  diff(server, declared, '', changes);
  return changes;
}

/** Collects the leaves where `a` (the server) and `b` (the declaration) differ, under `path`. */
function diff(a: unknown, b: unknown, path: string, out: FieldChange[]): void {
  if (isRecord(a) && isRecord(b)) {
    for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort())
      diff(a[key], b[key], path ? `${path}.${key}` : key, out);
  } else if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) diff(a[i], b[i], `${path}[${i}]`, out);
  } else if (JSON.stringify(a) !== JSON.stringify(b)) {
    out.push({ field: path, server: a, declared: b });
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `spec.intervals[0].every 2h -> 1h, action.taskQueue "other" -> "fleetscore-cpu"`: changes in one line. */
export function formatFieldChanges(changes: readonly FieldChange[]): string {
  const show = (field: string, value: unknown) =>
    value === undefined
      ? 'unset'
      : DURATION_FIELD.test(field) && typeof value === 'number'
        ? formatDuration(value)
        : JSON.stringify(value);
  return changes.map((c) => `${c.field} ${show(c.field, c.server)} -> ${show(c.field, c.declared)}`).join(', ');
}

/** Milliseconds as a short duration: `1h`, `5m`, `1h30m`, `45s`, `0s`. */
export function formatDuration(ms: number): string {
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
