/**
 * Installs the Temporal worker runtime with fleetscore's log level, once per process and before any worker or
 * native connection is made. `FLEETSCORE_LOG_LEVEL` (TRACE, DEBUG, INFO, WARN, ERROR) raises or lowers it.
 */
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';

const LEVELS: readonly LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];

/** Installs the runtime; the default level is INFO for workers and WARN where `quiet` is set. */
export function installRuntime({ quiet = false } = {}): void {
  const wanted = process.env.FLEETSCORE_LOG_LEVEL?.toUpperCase();
  const level = LEVELS.find((l) => l === wanted) ?? (quiet ? 'WARN' : 'INFO');
  Runtime.install({ logger: new DefaultLogger(level) });
}
