/**
 * Installs the Temporal worker runtime once per process, before any worker or native connection is made: the
 * log level and format of every SDK, workflow and activity log line, and the Prometheus exporter that serves
 * the SDK's worker metrics and fleetscore's own (lib/metrics) on one port.
 * Unset settings come from lib/config (`FLEETSCORE_LOG_LEVEL`, `FLEETSCORE_LOG_FORMAT`, `FLEETSCORE_METRICS_*`).
 */
import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';
import { config, type LogFormat } from '../config';
import { formatTextLogEntry, isDeliberateSdkWarning } from './log-lines';

/** Options of {@link installRuntime}; unset fields come from the environment. */
export interface RuntimeSettings {
  /** Default level WARN instead of INFO (commands whose output is a summary, tests). */
  quiet?: boolean;
  logFormat?: LogFormat;
  /** `host:port` the Prometheus exporter binds; none when unset. */
  metricsAddress?: string;
  /** Where log lines go (default: stderr). */
  write?: (line: string) => void;
}

/** The log format a `--log-format` option names; unknown values are an error, not a silent default. */
export function logFormatFrom(value: string): LogFormat {
  const format = value.toLowerCase();
  if (format !== 'text' && format !== 'json') throw new Error(`log format must be text or json, got "${value}"`);
  return format;
}

/**
 * One JSON object per log line: time, level, message, then the entry's attributes (the SDK adds namespace,
 * taskQueue, workflowId, workflowRunId, activityType and attempt to activity lines; fleetscore adds window and
 * shard). Errors become `{ name, message }` and bigints strings, so every line parses.
 */
export function formatJsonLogEntry(entry: LogEntry): string {
  const time = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  const meta = entry.meta ?? {};
  return JSON.stringify({ time, level: entry.level.toLowerCase(), message: entry.message, ...meta }, (_key, v) => {
    if (typeof v === 'bigint') return v.toString();
    if (v instanceof Error) return { name: v.name, message: v.message };
    return v as unknown;
  });
}

/** Installs the runtime; the default level is INFO for workers and WARN where `quiet` is set. */
export function installRuntime(settings: RuntimeSettings = {}): void {
  const env = config();
  const level = env.logLevel ?? (settings.quiet ? 'WARN' : 'INFO');
  const format = settings.logFormat ?? env.logFormat;
  const write = settings.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const logger = new DefaultLogger(level, (entry) => {
    if (isDeliberateSdkWarning(entry, level)) return;
    write(format === 'json' ? formatJsonLogEntry(entry) : formatTextLogEntry(entry));
  });
  const metricsAddress = settings.metricsAddress ?? env.metricsAddress;
  Runtime.install({
    logger,
    ...(metricsAddress
      ? {
          telemetryOptions: {
            metrics: {
              // Prometheus conventions: counters end in _total, durations are in seconds.
              prometheus: { bindAddress: metricsAddress, countersTotalSuffix: true, useSecondsForDurations: true },
            },
          },
        }
      : {}),
  });
}
