/**
 * What a schedule declaration is and when it is valid: the FleetSchedule type that schedules modules (like
 * fleet-schedules.ts) return, the scope that names whose schedules they are, and the validation that reports every
 * bad schedule and field before anything touches a server.
 */
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { z } from 'zod';
import {
  AGGREGATES_LAYOUTS,
  POOLS,
  PREDICTIONS_FORMATS,
  type AggregatesLayout,
  type Pool,
  type PredictionsFormat,
} from '../lib/shared/names';
import { MAX_SHARD_SIZE } from '../lib/shared/run-types';
import { InvalidScheduleDeclaration, type ScheduleIssue } from '../lib/shared/errors';
import { durationMs } from '../lib/shared/duration';

/** An overlap policy a declaration may name (the SDK's constants, without the deprecated UNSPECIFIED). */
export type OverlapPolicy = Exclude<ScheduleOverlapPolicy, undefined>;

/** One declared schedule: when it fires and the scoring run it starts. */
export interface FleetSchedule {
  /** Schedule id, also the prefix of every run's workflow id (Temporal appends the scheduled time). */
  id: string;
  /** One line for humans: what the schedule scores and why. */
  description: string;
  /**
   * When it fires: exactly one interval whose `every` is the window length. The offset delays each run past the
   * window's end so late data lands: with `every: '1h', offset: '5m'` the run at 13:05 scores `[12:00, 13:00)`.
   */
  spec: { intervals: [{ every: Duration; offset?: Duration }] };
  /** IANA time zone of the spec. Intervals count from the Unix epoch, so windows stay UTC-aligned whatever it is. */
  timezone: string;
  /** What happens when a run is due while the previous one still runs (default BUFFER_ONE: run next, drop older). */
  overlap?: OverlapPolicy;
  /** How late a missed run may still start after a server outage; older misses need `fleetscore backfill`. */
  catchupWindow: Duration;
  /** A random delay of up to this much per run, to spread load; the window still comes from the nominal time. */
  jitter?: Duration;
  /** Declared pause state, applied when the schedule is created or its declaration changes. */
  paused?: boolean;
  /** Hours in one window; must match `spec.intervals[0].every`. */
  windowHours: number;
  /** The run each firing starts. */
  run: {
    /** The store URI the runs read and write. */
    store: string;
    /** Devices per shard, the unit of retry. */
    shardSize: number;
    /** Shards in flight at once per run. */
    maxParallelShards: number;
    /** Score every device on this pool, whatever its model.json says. */
    pool?: Pool;
    /** Where the producer puts each device's rows; see `AGGREGATES_LAYOUTS` (default `any`). */
    aggregatesLayout?: AggregatesLayout;
    /** The format of the runs' prediction files; see `PREDICTIONS_FORMATS` (default `arrow`). */
    predictionsFormat?: PredictionsFormat;
    /** Task queues of the pools when not the standard ones; `cpu` also runs the workflow. */
    taskQueues?: Partial<Record<Pool, string>>;
    /**
     * How long after a window's end it may be scored (default: the interval's offset, which must be at least
     * this): `backfill` refuses windows not complete by it, and so does the run.
     */
    settle?: Duration;
    /** How long a run waits for its window's input before it fails with `InputMissing` (default 15m). */
    inputWait?: Duration;
    /** Wait for the producer's `_SUCCESS` marker in every hourly input folder instead of the first part. */
    inputMarker?: boolean;
    /**
     * After each commit, score again the windows within this horizon before it whose input changed since they were
     * committed (late data), e.g. `'6h'`. Off when absent.
     */
    rescoreLateWithin?: Duration;
  };
}

/**
 * The scope of the default schedules file, and of schedules created before scopes existed. Every schedules module
 * names its scope (`export const scope = 'eu-fleet'`); `schedules apply` creates, updates and deletes only the
 * schedules of the scope it applies, so two fleets (two files) in one namespace never touch each other's schedules.
 */
export const DEFAULT_SCOPE = 'default';

/** A scope: lowercase letters, digits, `.`, `_` or `-`, like a schedule id. */
export const SCOPE_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** The overlap policy when a declaration names none. */
export const DEFAULT_OVERLAP: OverlapPolicy = ScheduleOverlapPolicy.BUFFER_ONE;

/** Overlap policies as the CLI spells them (`--overlap buffer-all`), mapped to the SDK's constants. */
export const OVERLAP_FLAGS = {
  'allow-all': ScheduleOverlapPolicy.ALLOW_ALL,
  'buffer-all': ScheduleOverlapPolicy.BUFFER_ALL,
  'buffer-one': ScheduleOverlapPolicy.BUFFER_ONE,
  skip: ScheduleOverlapPolicy.SKIP,
  'cancel-other': ScheduleOverlapPolicy.CANCEL_OTHER,
  'terminate-other': ScheduleOverlapPolicy.TERMINATE_OTHER,
} as const satisfies Record<string, OverlapPolicy>;

/** A CLI spelling of an overlap policy. */
export type OverlapFlag = keyof typeof OVERLAP_FLAGS;

const OVERLAP_POLICIES = Object.values(OVERLAP_FLAGS) as [OverlapPolicy, ...OverlapPolicy[]];
const HOUR_MS = 3_600_000;
const SCHEDULE_ID = /^[a-z0-9][a-z0-9._-]{0,99}$/;

const duration = (what: string, { min }: { min: 'zero' | 'positive' }) =>
  z.union([z.string(), z.number()]).superRefine((value, ctx) => {
    const ms = durationMs(value as Duration);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `${what} must be a duration like '1h', '5m' or '90s', got ${JSON.stringify(value)}`,
      });
    } else if (min === 'positive' ? ms <= 0 : ms < 0) {
      ctx.addIssue({
        code: 'custom',
        message: `${what} must be ${min === 'positive' ? 'greater than' : 'at least'} 0, got ${JSON.stringify(value)}`,
      });
    } else if (ms % 1000 !== 0) {
      ctx.addIssue({
        code: 'custom',
        message: `${what} must be whole seconds (Temporal rounds it), got ${JSON.stringify(value)}`,
      });
    }
  });

const timeZone = z.string().refine(
  (tz) => {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      return true;
    } catch {
      // Intl throws RangeError for a name it does not know: that is the answer.
      return false;
    }
  },
  { message: 'must be an IANA time zone such as UTC or Europe/Berlin' },
);

/** A whole number in `[1, max]`; a missing one is left to the "is required" of `validateSchedules`. */
const positiveInt = (max: number) => {
  const error = (issue: { input?: unknown }) =>
    issue.input === undefined
      ? undefined
      : `must be a whole number from 1 to ${max}, got ${JSON.stringify(issue.input)}`;
  return z.number({ error }).int({ error }).min(1, { error }).max(max, { error });
};

const pool = z.enum(POOLS as [Pool, ...Pool[]], {
  error: (issue) => `unknown pool ${JSON.stringify(issue.input)}; use one of ${POOLS.join(', ')}`,
});

/**
 * An object that rejects fields it does not know, so a typo (`shardsize`) or an unsupported option (`cron`) is an
 * error rather than silently ignored; `note` says why a field the user might expect is missing.
 */
function strictObject<T extends z.core.$ZodLooseShape>(shape: T, note = '') {
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown field; the known ones are ${Object.keys(shape).join(', ')}${note}`
        : undefined,
  });
}

const scheduleSchema = strictObject({
  id: z
    .string()
    .regex(SCHEDULE_ID, 'must be lowercase letters, digits, ".", "_" or "-" (at most 100), e.g. fleetscore-hourly'),
  description: z.string().trim().min(1, 'must say what the schedule scores'),
  spec: strictObject(
    {
      intervals: z
        .array(
          strictObject({
            every: duration('every', { min: 'positive' }),
            offset: duration('offset', { min: 'zero' }).optional(),
          }),
        )
        .length(1, 'must hold exactly one interval: a window is scored once per interval'),
    },
    ' (no cron expressions or calendars: each firing must score exactly one window, so a schedule is one interval)',
  ),
  timezone: timeZone,
  overlap: z
    .enum(OVERLAP_POLICIES, {
      error: (issue) =>
        `unknown overlap policy ${JSON.stringify(issue.input)}; use one of ${OVERLAP_POLICIES.join(', ')}`,
    })
    .optional(),
  catchupWindow: duration('catchupWindow', { min: 'positive' }),
  jitter: duration('jitter', { min: 'zero' }).optional(),
  paused: z.boolean().optional(),
  windowHours: positiveInt(24 * 31),
  run: strictObject({
    store: z.string().trim().min(1, 'must name a store URI or folder'),
    shardSize: positiveInt(MAX_SHARD_SIZE),
    maxParallelShards: positiveInt(10_000),
    pool: pool.optional(),
    aggregatesLayout: z.enum(AGGREGATES_LAYOUTS).optional(),
    predictionsFormat: z.enum(PREDICTIONS_FORMATS).optional(),
    taskQueues: z.partialRecord(pool, z.string().trim().min(1)).optional(),
    settle: duration('run.settle', { min: 'zero' }).optional(),
    inputWait: duration('run.inputWait', { min: 'zero' }).optional(),
    inputMarker: z.boolean().optional(),
    rescoreLateWithin: duration('run.rescoreLateWithin', { min: 'positive' }).optional(),
  }),
}).superRefine((s, ctx) => {
  const interval = s.spec.intervals[0];
  if (!interval) return;
  const windowMs = s.windowHours * HOUR_MS;
  const every = durationMs(interval.every as Duration);
  const offset = durationMs(interval.offset as Duration | undefined) ?? 0;
  const jitter = durationMs(s.jitter as Duration | undefined) ?? 0;
  if (every !== undefined && every !== windowMs) {
    ctx.addIssue({
      code: 'custom',
      path: ['spec', 'intervals', 0, 'every'],
      message: `must equal the window length (windowHours ${s.windowHours} = ${s.windowHours}h), got ${JSON.stringify(interval.every)}: each firing scores exactly one window`,
    });
  }
  if (offset >= windowMs) {
    ctx.addIssue({
      code: 'custom',
      path: ['spec', 'intervals', 0, 'offset'],
      message: `must be shorter than the window (${s.windowHours}h), got ${JSON.stringify(interval.offset)}: a run at window end + offset scores the window before it`,
    });
  }
  const settle = durationMs(s.run.settle as Duration | undefined);
  if (settle !== undefined && settle > offset) {
    ctx.addIssue({
      code: 'custom',
      path: ['run', 'settle'],
      message: `must be at most the offset (${JSON.stringify(interval.offset ?? 0)}), got ${JSON.stringify(s.run.settle)}: every run the schedule starts would be refused as not complete`,
    });
  }
  if (jitter * 2 >= windowMs) {
    ctx.addIssue({
      code: 'custom',
      path: ['jitter'],
      message: `must be less than half the window (${s.windowHours * 30}m), got ${JSON.stringify(s.jitter)}, so a backfill's time range names its windows unambiguously`,
    });
  }
});

/**
 * Validates declarations and returns them unchanged, or throws InvalidScheduleDeclaration naming every bad
 * schedule and field (a bad duration, an unknown overlap policy or pool, a field it does not know, a duplicate
 * id, an offset not inside the window). `file` names where they were declared, for the message.
 */
export function validateSchedules(declared: readonly FleetSchedule[], file?: string): FleetSchedule[] {
  const issues: ScheduleIssue[] = [];
  const seen = new Set<string>();
  declared.forEach((schedule, index) => {
    const scheduleId = typeof schedule?.id === 'string' && schedule.id ? schedule.id : `#${index}`;
    const result = scheduleSchema.safeParse(schedule, {
      error: (issue) => (issue.input === undefined ? 'is required' : undefined),
    });
    for (const issue of result.error?.issues ?? []) {
      // One finding per unknown field, named by its own path (`run.shardsize`), not by the object holding it.
      const paths = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k]) : [issue.path];
      for (const path of paths) issues.push({ scheduleId, field: fieldPath(path), message: issue.message });
    }
    if (seen.has(scheduleId))
      issues.push({ scheduleId, field: 'id', message: 'is declared more than once; ids must be unique' });
    seen.add(scheduleId);
  });
  if (issues.length > 0) throw new InvalidScheduleDeclaration(issues, file);
  return [...declared];
}

/** `spec.intervals[0].offset` as written by zod paths (`['spec', 'intervals', 0, 'offset']`). */
function fieldPath(path: readonly PropertyKey[]): string {
  return (
    path.reduce<string>(
      (out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)),
      '',
    ) || '(schedule)'
  );
}
