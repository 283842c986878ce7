/**
 * How a worker's log entries read as text: one line each (time, level, message, then `key=value` attributes), with
 * an error as its name and message rather than a multi-line stack, so a failed device is one line on a console. And
 * the SDK notices that describe a configuration fleetscore chose on purpose, which a user cannot act on, kept out
 * of view below DEBUG.
 */
import type { LogEntry, LogLevel } from '@temporalio/worker';

/**
 * SDK warnings about deliberate setups: the gpu pool worker runs only activities, so it registers no workflows.
 * Shown at DEBUG and TRACE.
 */
const DELIBERATE_SDK_WARNINGS = new Set(['No workflows registered, not polling for workflow tasks']);

/** Attributes the SDK adds to every line that text leaves out (JSON keeps them all): ids of ids, a task token. */
const TEXT_HIDDEN = new Set([
  'namespace',
  'workflowRunId',
  'activityId',
  'sdkComponent',
  'isLocal',
  'workflowType',
  'taskToken',
]);

/** The SDK's context on activity and workflow lines, shown after the entry's own attributes. */
const CONTEXT = new Set(['workflowId', 'activityType', 'taskQueue', 'attempt']);

/** Whether `entry` is one of the SDK warnings about a deliberate setup, to be shown only at `level` DEBUG or below. */
export function isDeliberateSdkWarning(entry: LogEntry, level: LogLevel): boolean {
  return entry.level === 'WARN' && DELIBERATE_SDK_WARNINGS.has(entry.message) && level !== 'DEBUG' && level !== 'TRACE';
}

/** `2026-11-21T12:05:00.123Z WARN device failed device=dev-00017 error=BadRows reason="…" shard=3 attempt=1` */
export function formatTextLogEntry(entry: LogEntry): string {
  const time = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  const shown = Object.entries(entry.meta ?? {}).filter(([key, value]) => !TEXT_HIDDEN.has(key) && value !== undefined);
  const attributes = [...shown.filter(([key]) => !CONTEXT.has(key)), ...shown.filter(([key]) => CONTEXT.has(key))].map(
    ([key, value]) => `${key}=${textValue(value)}`,
  );
  return [time, entry.level, oneLine(entry.message), ...attributes].join(' ');
}

function textValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(errorText(value));
  if (typeof value === 'string') return /^[\w.:/@+-]+$/.test(value) ? value : JSON.stringify(oneLine(value));
  if (typeof value === 'bigint') return value.toString();
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'bigint' ? v.toString() : v instanceof Error ? errorText(v) : v,
  );
}

/**
 * An error on one line: its name, the failure type an ApplicationFailure carries (the class of the error it
 * stands for, e.g. `S3RequestFailed`), its message, and its cause's name and message where they add something.
 */
function errorText(err: Error): string {
  const type = (err as { type?: unknown }).type;
  let text = `${err.name}${typeof type === 'string' && type !== err.name ? ` [${type}]` : ''}: ${oneLine(err.message)}`;
  const cause: unknown = err.cause;
  if (cause instanceof Error && !text.includes(cause.message))
    text += ` (cause ${cause.name}: ${oneLine(cause.message)})`;
  return text;
}

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, ' ');
