import { keys, type LogUnit } from '../shared/keys';
import type { ObjectStore } from '../store/object-store';
import { messageOf } from '../shared/errors';

/** One line of an attempt log. */
export interface AttemptLogEvent {
  event: string;
  level: 'info' | 'warn' | 'error';
  [field: string]: unknown;
}

/** Structured logger (the Temporal activity logger in a worker). */
export interface WorkerLogger {
  info(message: string, attrs?: Record<string, unknown>): void;
  warn(message: string, attrs?: Record<string, unknown>): void;
}

/** How often a long attempt rewrites its log object, so a killed attempt leaves its progress behind. */
const CHECKPOINT_EVERY_MS = 5_000;

/**
 * The durable log of one activity attempt of a run (a shard's scoring, or the commit): JSON lines kept in memory
 * and written as one object per attempt (`logs/window=W/run=P/<shard-N|commit>/attempt-A.jsonl`), because object
 * stores cannot append. The object is written when the attempt starts, rewritten whole at checkpoints while it
 * runs and when it ends, so every attempt, a killed one included, leaves a log: one whose last line is neither
 * `attempt-completed` nor `attempt-failed` was cut off, and the next attempt says so.
 */
export class AttemptLog {
  private readonly lines: string[] = [];
  private writing: Promise<void> | undefined;
  private lastWriteMs = 0;

  constructor(
    private readonly store: ObjectStore,
    private readonly window: string,
    private readonly runId: string,
    private readonly unit: LogUnit,
    /** The attempt's number in the unit's logs: 1 for the first log written, and so on. */
    readonly attempt: number,
  ) {}

  /**
   * The log of the next attempt of `unit`, numbered after the logs already in the store, so no attempt overwrites
   * an earlier one's log whatever rescheduled it: a local activity (the commit) whose worker died runs again from
   * attempt 1 on another worker, and a shard scheduled again after a pool wait starts again at attempt 1.
   */
  static async next(store: ObjectStore, window: string, runId: string, unit: LogUnit): Promise<AttemptLog> {
    const written = await store.list(keys.unitLogsPrefix(window, runId, unit));
    const last = Math.max(0, ...written.map((k) => Number(/attempt-(\d+)\.jsonl$/.exec(k)?.[1] ?? 0)));
    return new AttemptLog(store, window, runId, unit, last + 1);
  }

  /** The log's store key. */
  get key(): string {
    return keys.attemptLog(this.window, this.runId, this.unit, this.attempt);
  }

  /** Records one event with a timestamp and the run's ids. */
  add(event: AttemptLogEvent): void {
    this.lines.push(
      JSON.stringify({
        ts: new Date().toISOString(),
        window: this.window,
        runId: this.runId,
        ...(typeof this.unit === 'number' ? { shard: this.unit } : { unit: this.unit }),
        attempt: this.attempt,
        ...event,
      }),
    );
  }

  /**
   * Rewrites the log object with `event` added when the last write is older than the checkpoint interval and
   * none is under way; otherwise does nothing. For progress lines of long attempts.
   */
  async checkpoint(event: AttemptLogEvent): Promise<void> {
    if (this.writing || Date.now() - this.lastWriteMs < CHECKPOINT_EVERY_MS) return;
    this.add(event);
    await this.flush();
  }

  /** Writes the log as it stands (after any write under way), and returns its key. */
  async flush(): Promise<string> {
    while (this.writing) await this.writing;
    const body = `${this.lines.join('\n')}\n`;
    this.lastWriteMs = Date.now();
    this.writing = this.store.put(this.key, body).finally(() => {
      this.writing = undefined;
    });
    await this.writing;
    return this.key;
  }

  /**
   * Records `attempt-failed` with `err` and writes the log. The store may be what failed, so a failure to write
   * is reported to `logger` instead of replacing `err`, which the caller rethrows for Temporal to see.
   */
  async failed(err: unknown, logger: WorkerLogger): Promise<void> {
    this.add({
      event: 'attempt-failed',
      level: 'error',
      error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
    });
    await this.flush().catch((flushErr: unknown) => {
      logger.warn('could not write the log of a failed attempt', { log: this.key, error: String(flushErr) });
    });
  }

  /**
   * When this is a retry, looks at the previous attempt's log and records `previous-attempt-cut-off` if that
   * attempt never reached its end (its worker was killed, lost or timed out), with its last event.
   */
  async notePreviousAttempt(): Promise<void> {
    if (this.attempt <= 1) return;
    const previous = keys.attemptLog(this.window, this.runId, this.unit, this.attempt - 1);
    const bytes = await this.store.tryGet(previous);
    const lines = bytes === undefined ? [] : Buffer.from(bytes).toString('utf8').trimEnd().split('\n');
    const last = parseLine(lines.at(-1));
    if (last?.event === 'attempt-completed' || last?.event === 'attempt-failed') return;
    this.add({
      event: 'previous-attempt-cut-off',
      level: 'warn',
      previousAttempt: this.attempt - 1,
      log: bytes === undefined ? null : previous,
      lastEvent: last ? { ts: last.ts, event: last.event, devicesDone: last.devicesDone } : null,
    });
  }
}

function parseLine(line: string | undefined): Record<string, unknown> | undefined {
  if (!line) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    // A line cut off mid-write is what a killed attempt may leave: it just has no last event to report.
    return undefined;
  }
}

/** One parsed line of an attempt log, with the key of the object it came from. */
export interface LoggedEvent {
  ts: string;
  level: 'info' | 'warn' | 'error';
  event: string;
  attempt: number;
  shard?: number;
  unit?: string;
  device?: string;
  log: string;
  [field: string]: unknown;
}

/**
 * Every event of one run's attempt logs (`logs/window=W/run=P/`), shard by shard, attempt by attempt, the commit
 * last; only `shard`'s when given. Throws naming the object and line when a line is not JSON.
 */
export async function readRunLogs(
  store: ObjectStore,
  window: string,
  runId: string,
  { shard }: { shard?: number } = {},
): Promise<LoggedEvent[]> {
  const prefix = shard === undefined ? keys.runLogsPrefix(window, runId) : keys.unitLogsPrefix(window, runId, shard);
  const commit = keys.unitLogsPrefix(window, runId, 'commit');
  const objects = (await store.list(prefix))
    .filter((k) => k.endsWith('.jsonl'))
    .sort((a, b) => Number(a.startsWith(commit)) - Number(b.startsWith(commit)) || (a < b ? -1 : a > b ? 1 : 0));
  const events: LoggedEvent[] = [];
  for (const key of objects) {
    const lines = Buffer.from(await store.get(key))
      .toString('utf8')
      .split('\n');
    for (const [i, line] of lines.entries()) {
      if (line.trim() === '') continue;
      try {
        events.push({ ...(JSON.parse(line) as LoggedEvent), log: key });
      } catch (err) {
        throw new Error(`${key} line ${i + 1} is not JSON: ${messageOf(err)}`);
      }
    }
  }
  return events;
}
