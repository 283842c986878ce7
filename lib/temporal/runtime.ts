/**
 * Installs the Temporal worker runtime once per process, before any worker or native connection is made: the
 * log level and format of every SDK, workflow and activity log line, and the Prometheus exporter that serves
 * the SDK's worker metrics and fleetscore's own (lib/metrics) on one port.
 *
 * Environment: `FLEETSCORE_LOG_LEVEL` (TRACE … ERROR), `FLEETSCORE_LOG_FORMAT` (`text` or `json`),
 * `FLEETSCORE_METRICS_PORT` (a port; served on 0.0.0.0) or `FLEETSCORE_METRICS_ADDRESS` (`host:port`).
 */
import { DefaultLogger, Runtime, type LogEntry, type LogLevel } from '@temporalio/worker';

const LEVELS: readonly LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];

/** How log lines are written: `text` for people, `json` (one object per line) for log pipelines. */
export type LogFormat = 'text' | 'json';

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

/** The log format from an option or `FLEETSCORE_LOG_FORMAT`; unknown values are an error, not a silent default. */
export function logFormatFrom(value: string | undefined): LogFormat {
  const format = (value ?? 'text').toLowerCase();
  if (format !== 'text' && format !== 'json') throw new Error(`log format must be text or json, got "${value}"`);
  return format;
}

/** The Prometheus bind address from a port or address option, else the environment; undefined for none. */
export function metricsAddressFrom(port: number | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (port !== undefined) return `0.0.0.0:${port}`;
  if (env.FLEETSCORE_METRICS_ADDRESS) return env.FLEETSCORE_METRICS_ADDRESS;
  if (env.FLEETSCORE_METRICS_PORT) {
    const n = Number(env.FLEETSCORE_METRICS_PORT);
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      throw new Error(`FLEETSCORE_METRICS_PORT must be a port number, got "${env.FLEETSCORE_METRICS_PORT}"`);
    }
    return `0.0.0.0:${n}`;
  }
  return undefined;
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
  const wanted = process.env.FLEETSCORE_LOG_LEVEL?.toUpperCase();
  const level = LEVELS.find((l) => l === wanted) ?? (settings.quiet ? 'WARN' : 'INFO');
  const format = settings.logFormat ?? logFormatFrom(process.env.FLEETSCORE_LOG_FORMAT);
  const write = settings.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const logger =
    format === 'json'
      ? new DefaultLogger(level, (entry) => write(formatJsonLogEntry(entry)))
      : settings.write
        ? new DefaultLogger(level, (entry) =>
            write(`${entry.level} ${entry.message} ${JSON.stringify(entry.meta ?? {})}`),
          )
        : new DefaultLogger(level);
  const metricsAddress = settings.metricsAddress ?? metricsAddressFrom(undefined);
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
