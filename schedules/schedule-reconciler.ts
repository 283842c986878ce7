/**
 * Makes the Temporal server's schedules match the declarations in fleet-schedules.ts: creates the missing ones,
 * updates the changed ones, deletes the ones fleetscore manages that are no longer declared, and never touches a
 * schedule it does not manage.
 */
import { createHash } from 'node:crypto';
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  type Client,
  type ScheduleDescription,
  type ScheduleOptions,
  type ScheduleOptionsStartWorkflowAction,
  type ScheduleUpdateOptions,
} from '@temporalio/client';
import type { Duration, Workflow } from '@temporalio/common';
import { SCORING_WORKFLOW, TASK_QUEUES } from '../lib/shared/names';
import type { ScoringRunInput } from '../lib/shared/run-types';
import { durationMs } from '../lib/shared/duration';
import { DEFAULT_OVERLAP, validateSchedules, type FleetSchedule } from './fleet-schedules';

/** The memo value that marks a schedule as fleetscore's: only marked schedules are ever updated or deleted. */
export const MANAGED_BY = 'fleetscore';

/**
 * The key of fleetscore's record in the action's memo. A schedule's own memo is fixed at creation (UpdateSchedule
 * cannot change it), so the declaration hash lives in the action's memo, which updates replace; every run it
 * starts carries the record too, so a run says which declaration started it.
 */
export const ACTION_MEMO_KEY = 'fleetscoreSchedule';

/** Bump when the compiled form changes, so the next apply rewrites every schedule once. */
const COMPILE_VERSION = 1;

/** What apply did (or, with dryRun, would do) to one schedule. */
export interface ScheduleChange {
  id: string;
  action: 'created' | 'updated' | 'deleted' | 'unchanged';
  reason: string;
}

/** Options of `applySchedules`. */
export interface ApplyOptions {
  /** Compute the changes without making them. */
  dryRun?: boolean;
}

/** fleetscore's record in a schedule's action memo. */
export interface ScheduleRecord {
  managedBy: typeof MANAGED_BY;
  declarationHash: string;
  description: string;
}

type StartAction = ScheduleOptionsStartWorkflowAction<Workflow>;

/** A declaration compiled to what the server stores, with durations in milliseconds. */
export interface CompiledSchedule {
  options: ScheduleOptions<StartAction> & { action: StartAction & { args: [ScoringRunInput] } };
  hash: string;
}

/** The run input a schedule's action passes: scheduleId set, no window (the run derives it from the nominal time). */
export function scheduledRunInput(decl: FleetSchedule): ScoringRunInput {
  const input: ScoringRunInput = {
    store: decl.run.store,
    scheduleId: decl.id,
    windowHours: decl.windowHours,
    shardSize: decl.run.shardSize,
    maxParallelShards: decl.run.maxParallelShards,
  };
  if (decl.run.pool) input.pool = decl.run.pool;
  if (decl.run.aggregatesLayout) input.aggregatesLayout = decl.run.aggregatesLayout;
  if (decl.run.predictionsFormat) input.predictionsFormat = decl.run.predictionsFormat;
  if (decl.run.taskQueues && Object.keys(decl.run.taskQueues).length > 0) input.taskQueues = { ...decl.run.taskQueues };
  return input;
}

/**
 * Compiles a declaration into ScheduleOptions and the hash of everything apply controls. Durations are hashed in
 * milliseconds, so rewriting `'60m'` as `'1h'` changes nothing on the server.
 */
export function compileSchedule(decl: FleetSchedule): CompiledSchedule {
  const interval = decl.spec.intervals[0];
  const spec = {
    intervals: [{ every: ms(interval.every), offset: ms(interval.offset ?? 0) }],
    timezone: decl.timezone,
    jitter: ms(decl.jitter ?? 0),
  };
  const policies = { overlap: decl.overlap ?? DEFAULT_OVERLAP, catchupWindow: ms(decl.catchupWindow) };
  const args: [ScoringRunInput] = [scheduledRunInput(decl)];
  const action = {
    type: 'startWorkflow' as const,
    workflowType: SCORING_WORKFLOW,
    // The cpu pool runs the workflow; a fleet with its own task queues runs it on its own cpu queue.
    taskQueue: decl.run.taskQueues?.cpu ?? TASK_QUEUES.cpu,
    // Temporal appends the scheduled time: `fleetscore-hourly-2026-11-21T13:05:00Z`, one id per window.
    workflowId: decl.id,
    args,
  };
  const paused = decl.paused ?? false;
  const hash = sha256(
    canonicalJson({ v: COMPILE_VERSION, spec, policies, action, paused, description: decl.description }),
  );
  const record: ScheduleRecord = { managedBy: MANAGED_BY, declarationHash: hash, description: decl.description };
  return {
    hash,
    options: {
      scheduleId: decl.id,
      spec,
      action: { ...action, memo: { [ACTION_MEMO_KEY]: record } },
      policies,
      memo: { managedBy: MANAGED_BY },
      state: { paused, note: paused ? 'paused by its declaration' : '' },
    },
  };
}

/** Whether a schedule (from list or describe) carries fleetscore's mark. */
export function isManaged(schedule: { memo?: Record<string, unknown> | undefined }): boolean {
  return schedule.memo?.managedBy === MANAGED_BY;
}

/** fleetscore's record in a described schedule's action memo, if any. */
export function scheduleRecord(description: ScheduleDescription): Partial<ScheduleRecord> | undefined {
  const record = description.action.memo?.[ACTION_MEMO_KEY];
  return record && typeof record === 'object' ? record : undefined;
}

/**
 * Makes the server's schedules match `declared` and returns one change per schedule involved.
 *
 * How it compares: each declared schedule is described (strongly consistent) and the declaration hash stored in
 * its action memo is compared with the hash of the compiled declaration; a different hash means "updated". With
 * an equal hash, the fields apply controls (spec, policies, workflow type, task queue, workflow id, args) are
 * still compared with the server, so an edit made in the Web UI or the CLI is reverted ("drifted"). Deletions
 * come from listing schedules (visibility, eventually consistent: a schedule created seconds ago may show up only
 * on the next apply) and only ever touch schedules whose memo says `managedBy: 'fleetscore'`.
 *
 * Pausing: the declared `paused` is applied only when a schedule is created or its declaration changes. A
 * schedule paused or unpaused by hand (`fleetscore schedules pause`) keeps that state across applies until
 * someone edits its declaration; then the declared state wins. Reverting drift keeps the current pause state.
 *
 * Concurrency: apply is an upsert meant for one writer at a time (a deploy step, an operator). `create` throws
 * ScheduleAlreadyRunning when another writer created the schedule first (apply then updates it), and updates are
 * last-writer-wins, so two applies of different code race and the later one is what the server keeps.
 *
 * All changes are planned before any is made: a declared id held by a schedule fleetscore does not manage stops
 * apply with an error before it changes anything.
 */
export async function applySchedules(
  client: Client,
  declared: readonly FleetSchedule[],
  options: ApplyOptions = {},
): Promise<ScheduleChange[]> {
  const schedules = validateSchedules(declared);
  const planned: { change: ScheduleChange; run: () => Promise<void> }[] = [];
  const conflicts: string[] = [];

  for (const decl of schedules) {
    const compiled = compileSchedule(decl);
    const handle = client.schedule.getHandle(decl.id);
    const current = await describeOrUndefined(client, decl.id);
    if (!current) {
      planned.push({
        change: { id: decl.id, action: 'created', reason: 'declared but not on the server' },
        run: () => createOrUpdate(client, compiled),
      });
      continue;
    }
    if (!isManaged(current)) {
      conflicts.push(decl.id);
      continue;
    }
    const stored = scheduleRecord(current)?.declarationHash;
    if (stored !== compiled.hash) {
      planned.push({
        change: {
          id: decl.id,
          action: 'updated',
          reason: stored
            ? `declaration changed (${stored.slice(0, 8)} -> ${compiled.hash.slice(0, 8)})`
            : 'no declaration hash on the server',
        },
        run: () =>
          handle.update(() =>
            updateOptions(compiled, { paused: decl.paused ?? false, note: compiled.options.state?.note }),
          ),
      });
      continue;
    }
    const drift = driftOf(current, compiled);
    if (drift.length > 0) {
      planned.push({
        change: { id: decl.id, action: 'updated', reason: `changed on the server, reverted: ${drift.join(', ')}` },
        run: () =>
          handle.update((prev) => updateOptions(compiled, { paused: prev.state.paused, note: prev.state.note })),
      });
      continue;
    }
    planned.push({
      change: { id: decl.id, action: 'unchanged', reason: `matches declaration ${compiled.hash.slice(0, 8)}` },
      run: async () => {},
    });
  }

  if (conflicts.length > 0) {
    throw new Error(
      `schedule ${conflicts.map((id) => `"${id}"`).join(', ')} exists on the server but is not managed by fleetscore ` +
        `(its memo lacks managedBy: '${MANAGED_BY}'); nothing was changed. Delete or rename it, or rename the declaration.`,
    );
  }

  const declaredIds = new Set(schedules.map((s) => s.id));
  for await (const summary of client.schedule.list()) {
    if (declaredIds.has(summary.scheduleId) || !isManaged(summary)) continue;
    planned.push({
      change: { id: summary.scheduleId, action: 'deleted', reason: 'managed by fleetscore but no longer declared' },
      run: () => client.schedule.getHandle(summary.scheduleId).delete(),
    });
  }

  if (!options.dryRun) {
    for (const { run } of planned) await run();
  }
  return planned.map((p) => p.change);
}

/** Creates the schedule; if another writer created it meanwhile, updates it instead (apply is an upsert). */
async function createOrUpdate(client: Client, compiled: CompiledSchedule): Promise<void> {
  try {
    await client.schedule.create(compiled.options);
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    const current = await client.schedule.getHandle(compiled.options.scheduleId).describe();
    if (!isManaged(current)) {
      throw new Error(
        `schedule "${compiled.options.scheduleId}" was just created by someone else and is not managed by fleetscore`,
      );
    }
    const paused = compiled.options.state?.paused ?? false;
    await client.schedule
      .getHandle(compiled.options.scheduleId)
      .update(() => updateOptions(compiled, { paused, note: compiled.options.state?.note }));
  }
}

/** The update that replaces spec, action and policies, with the given pause state. */
function updateOptions(
  compiled: CompiledSchedule,
  state: { paused: boolean; note?: string | undefined },
): ScheduleUpdateOptions<StartAction> {
  const { spec, action, policies } = compiled.options;
  return { spec, action, policies, state: { paused: state.paused, note: state.note ?? '' } };
}

async function describeOrUndefined(client: Client, id: string): Promise<ScheduleDescription | undefined> {
  try {
    return await client.schedule.getHandle(id).describe();
  } catch (err) {
    // Not found is the answer "create it", not a failure.
    if (err instanceof ScheduleNotFoundError) return undefined;
    throw err;
  }
}

/**
 * The fields apply controls that differ between the server and the compiled declaration. Values are normalised
 * the way the server returns them (omitted zero offset and jitter, an empty time zone meaning UTC).
 */
export function driftOf(current: ScheduleDescription, compiled: CompiledSchedule): string[] {
  const want = compiled.options;
  const drift: string[] = [];
  const intervals = (current.spec.intervals ?? []).map((i) => ({ every: i.every, offset: i.offset ?? 0 }));
  if (canonicalJson(intervals) !== canonicalJson(want.spec.intervals)) drift.push('spec.intervals');
  if ((current.spec.calendars ?? []).length > 0) drift.push('spec.calendars');
  if ((current.spec.timezone || 'UTC') !== (want.spec.timezone || 'UTC')) drift.push('spec.timezone');
  if ((current.spec.jitter ?? 0) !== (want.spec.jitter ?? 0)) drift.push('spec.jitter');
  if (current.policies.overlap !== want.policies?.overlap) drift.push('policies.overlap');
  if (current.policies.catchupWindow !== want.policies?.catchupWindow) drift.push('policies.catchupWindow');
  if (current.action.workflowType !== want.action.workflowType) drift.push('action.workflowType');
  if (current.action.taskQueue !== want.action.taskQueue) drift.push('action.taskQueue');
  if (current.action.workflowId !== want.action.workflowId) drift.push('action.workflowId');
  if (canonicalJson(current.action.args ?? []) !== canonicalJson(want.action.args)) drift.push('action.args');
  return drift;
}

function ms(value: Duration): number {
  const out = durationMs(value);
  if (out === undefined) throw new Error(`not a duration: ${JSON.stringify(value)}`);
  return out;
}

/** JSON with object keys sorted, so equal values hash equally whatever order they were written in. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
