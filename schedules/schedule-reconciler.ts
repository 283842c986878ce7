/**
 * Makes the Temporal server's schedules of one scope match the declarations of a schedules module (fleet-schedules.ts
 * or a `--file`): creates the missing ones, updates the changed ones, deletes the ones of that scope that are no
 * longer declared, and never touches a schedule of another scope or one fleetscore does not manage.
 */
import { createHash } from 'node:crypto';
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  WorkflowNotFoundError,
  type Client,
  type ScheduleDescription,
  type ScheduleOptions,
  type ScheduleOptionsStartWorkflowAction,
  type ScheduleUpdateOptions,
} from '@temporalio/client';
import type { Duration, Workflow } from '@temporalio/common';
import { SCORING_WORKFLOW, SEARCH_ATTRIBUTES, TASK_QUEUES } from '../lib/shared/names';
import type { ScoringRunInput } from '../lib/shared/run-types';
import { durationMs } from '../lib/shared/duration';
import { canonicalStoreUri } from '../lib/store/store-uri';
import { runStartedWith } from '../lib/temporal/runs';
import { DEFAULT_OVERLAP, DEFAULT_SCOPE, validateSchedules, type FleetSchedule } from './schedule-declaration';
import { formatFieldChanges, scheduleDiff, type FieldChange } from './schedule-drift';

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
  /** Why, in words that read the same on a dry run: `edited on the server: spec.jitter 1m -> 30s`. */
  reason: string;
  /** The fields an update sets, with the server's value and the declared one. */
  fields?: FieldChange[];
  /** A state worth knowing that apply does not change: paused by hand though declared active, or the reverse. */
  notice?: string;
}

/** Options of `applySchedules`. */
export interface ApplyOptions {
  /** Compute the changes without making them. */
  dryRun?: boolean;
  /** Whose schedules these are (the module's `scope`): only this scope's schedules are updated or deleted. */
  scope?: string;
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
    // The offset is what the schedule waits after a window's end; the run and a backfill wait as long.
    settle: ms(decl.run.settle ?? decl.spec.intervals[0].offset ?? 0),
  };
  if (decl.run.inputWait !== undefined) input.inputWait = ms(decl.run.inputWait);
  if (decl.run.inputMarker) input.inputMarker = true;
  if (decl.run.rescoreLateWithin !== undefined) input.rescoreLateWithin = ms(decl.run.rescoreLateWithin);
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
export function compileSchedule(decl: FleetSchedule, scope: string = DEFAULT_SCOPE): CompiledSchedule {
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
    // The Web UI's one line above every run it starts; each run's window is in its current details.
    staticSummary: `fleetscore: schedule ${decl.id} · ${decl.windowHours}h windows · store ${decl.run.store} · pool ${decl.run.pool ?? 'per model'}`,
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
      // The schedule's own memo is fixed at creation: its owner and scope cannot be changed by an update.
      memo: { managedBy: MANAGED_BY, scope },
      state: { paused, note: pauseNote(decl) },
    },
  };
}

/** Whether a schedule (from list or describe) carries fleetscore's mark. */
export function isManaged(schedule: { memo?: Record<string, unknown> | undefined }): boolean {
  return schedule.memo?.managedBy === MANAGED_BY;
}

/** The scope a managed schedule belongs to; schedules created before scopes existed belong to the default one. */
export function scopeOf(schedule: { memo?: Record<string, unknown> | undefined }): string {
  const scope = schedule.memo?.scope;
  return typeof scope === 'string' ? scope : DEFAULT_SCOPE;
}

/** fleetscore's record in a described schedule's action memo, if any. */
export function scheduleRecord(description: ScheduleDescription): Partial<ScheduleRecord> | undefined {
  const record = description.action.memo?.[ACTION_MEMO_KEY];
  return record && typeof record === 'object' ? record : undefined;
}

/**
 * Makes the server's schedules of `options.scope` match `declared` and returns one change per schedule involved.
 *
 * How it compares: each declared schedule is described (strongly consistent) and the fields apply controls (spec,
 * policies, workflow type, task queue, workflow id, args) are compared with the compiled declaration one by one,
 * whatever edited them; the declaration hash in the action memo tells a changed declaration ("declaration changed")
 * from an edit on the server ("edited on the server"), and a schedule whose record is gone from its action memo
 * (`temporal schedule update` drops it) is rewritten with its differing fields named. Deletions come from listing
 * schedules (visibility, eventually consistent: a schedule created seconds ago may show up only on the next apply)
 * and only ever touch schedules whose memo says `managedBy: 'fleetscore'` and whose scope is `options.scope`.
 *
 * Pausing: the declared `paused` is applied only when a schedule is created or its declaration changes. A schedule
 * paused or unpaused by hand (`fleetscore schedules pause`) keeps that state across applies until someone edits its
 * declaration, and each apply reports it (`notice`). Reverting an edit keeps the current pause state.
 *
 * Concurrency: apply is an upsert meant for one writer per scope at a time (a deploy step, an operator). `create`
 * throws ScheduleAlreadyRunning when another writer created the schedule first (apply then updates it), and updates
 * are last-writer-wins.
 *
 * All changes are planned before any is made: a declared id held by a schedule fleetscore does not manage, or by
 * another scope, stops apply with an error before it changes anything.
 */
export async function applySchedules(
  client: Client,
  declared: readonly FleetSchedule[],
  options: ApplyOptions = {},
): Promise<ScheduleChange[]> {
  const schedules = validateSchedules(declared);
  const scope = options.scope ?? DEFAULT_SCOPE;
  const planned: { change: ScheduleChange; run: () => Promise<void> }[] = [];
  const conflicts: string[] = [];

  for (const decl of schedules) {
    const compiled = compileSchedule(decl, scope);
    const handle = client.schedule.getHandle(decl.id);
    const current = await describeOrUndefined(client, decl.id);
    if (!current) {
      planned.push({
        change: { id: decl.id, action: 'created', reason: 'declared, not on the server' },
        run: () => createOrUpdate(client, compiled),
      });
      continue;
    }
    if (!isManaged(current)) {
      conflicts.push(`"${decl.id}" exists on the server but is not managed by fleetscore (its memo lacks managedBy)`);
      continue;
    }
    if (scopeOf(current) !== scope) {
      conflicts.push(`"${decl.id}" belongs to scope "${scopeOf(current)}", not "${scope}" (another schedules file)`);
      continue;
    }
    const fields = scheduleDiff(current, compiled);
    const stored = scheduleRecord(current)?.declarationHash;
    const declaredPaused = decl.paused ?? false;
    const runsNotice = await openRunsNotice(client, decl.id, current, compiled);
    if (stored !== undefined && stored !== compiled.hash) {
      const what = fields.length ? formatFieldChanges(fields) : 'description or pause state only';
      planned.push({
        change: {
          id: decl.id,
          action: 'updated',
          reason: `declaration changed: ${what}`,
          fields,
          ...(runsNotice ? { notice: runsNotice } : {}),
        },
        run: () => handle.update(() => updateOptions(compiled, { paused: declaredPaused, note: pauseNote(decl) })),
      });
      continue;
    }
    const notice = [pauseNotice(decl.id, declaredPaused, current), runsNotice].filter(Boolean).join('\n') || undefined;
    if (stored === undefined || fields.length > 0) {
      const reason =
        stored === undefined
          ? `edited outside fleetscore, its declaration record gone from the action memo` +
            `${fields.length ? `: ${formatFieldChanges(fields)}` : ' (no other field differs)'}`
          : `edited on the server: ${formatFieldChanges(fields)}`;
      planned.push({
        change: { id: decl.id, action: 'updated', reason, fields, ...(notice ? { notice } : {}) },
        run: () =>
          handle.update((prev) => updateOptions(compiled, { paused: prev.state.paused, note: prev.state.note })),
      });
      continue;
    }
    planned.push({
      change: { id: decl.id, action: 'unchanged', reason: 'matches its declaration', ...(notice ? { notice } : {}) },
      run: async () => {},
    });
  }

  if (conflicts.length > 0) {
    throw new Error(
      `schedule ${conflicts.join('; ')}. Nothing was changed: rename the declaration, or delete the schedule on ` +
        'the server (or apply its own file)',
    );
  }

  const declaredIds = new Set(schedules.map((s) => s.id));
  for await (const summary of client.schedule.list()) {
    if (declaredIds.has(summary.scheduleId) || !isManaged(summary) || scopeOf(summary) !== scope) continue;
    planned.push({
      change: { id: summary.scheduleId, action: 'deleted', reason: `no longer declared in scope "${scope}"` },
      run: () => client.schedule.getHandle(summary.scheduleId).delete(),
    });
  }

  if (!options.dryRun) {
    for (const { run } of planned) await run();
  }
  return planned.map((p) => p.change);
}

/** The note a schedule paused by its declaration carries. */
function pauseNote(decl: FleetSchedule): string {
  return decl.paused ? 'paused by its declaration' : '';
}

/** A line when the server's pause state is not the declared one (set by hand; apply keeps it), else undefined. */
function pauseNotice(id: string, declaredPaused: boolean, current: ScheduleDescription): string | undefined {
  const { paused, note } = current.state;
  if (paused === declaredPaused) return undefined;
  return paused
    ? `${id} is paused on the server${note ? ` ("${note}")` : ''} though declared active: no runs start; ` +
        `\`fleetscore schedules unpause ${id}\` resumes it (missed windows: \`fleetscore backfill\`)`
    : `${id} runs though declared paused (unpaused by hand); \`fleetscore schedules pause ${id}\` pauses it`;
}

/**
 * A line when the declaration moves the schedule to another store while runs it started with another store are
 * open (a catch-up run that fired as the dev server came up, before `up` applied the schedules, say): they carry on
 * there, waiting for its input if it has none, unless cancelled. Else undefined. The open runs are found among the
 * schedule's recent actions (its last ten), each described (the schedule's own list of running actions stays empty
 * on the dev server); a run's store is its search attribute, or before its first workflow task its input.
 */
async function openRunsNotice(
  client: Client,
  id: string,
  current: ScheduleDescription,
  compiled: CompiledSchedule,
): Promise<string | undefined> {
  const previous = current.action.type === 'startWorkflow' ? storeOf(current.action.args?.[0]) : undefined;
  const declared = canonicalStoreUri(compiled.options.action.args[0].store);
  if (previous === undefined || canonicalStoreUri(previous) === declared) return undefined;
  const elsewhere: string[] = [];
  for (const { action } of current.info.recentActions) {
    // The id's latest run: one that continued as new is open under it.
    const handle = client.workflow.getHandle(action.workflow.workflowId);
    const run = await handle.describe().catch((err: unknown) => {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    });
    if (run?.status.name !== 'RUNNING') continue;
    const store =
      run.typedSearchAttributes.get(SEARCH_ATTRIBUTES.store) ?? storeOf((await runStartedWith(handle))?.input);
    if (store !== undefined && canonicalStoreUri(store) !== declared) elsewhere.push(`${run.workflowId} ${store}`);
  }
  if (elsewhere.length === 0) return undefined;
  return (
    `${id} has ${elsewhere.length} open run(s) started before this change that score a store it no longer ` +
    `declares: they carry on there; \`fleetscore runs cancel --workflow-id ID\` stops one (${elsewhere.join(', ')})`
  );
}

/** The `store` of a run's input (a schedule's action argument, or what a run was started with), if it has one. */
function storeOf(input: unknown): string | undefined {
  const store = (input as { store?: unknown } | undefined)?.store;
  return typeof store === 'string' ? store : undefined;
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
