/**
 * A warm run's orchestration: the time between its start and end during which neither an activity (remote or
 * local) nor the planning worker's read ahead of the window was running, from the run's history and the worker's
 * read-ahead log line. What is left is Temporal's share: round trips, workflow tasks and dispatch.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';

/** Core's marker for a local activity's result; its `data` detail says when the activity ran. */
const LOCAL_ACTIVITY_MARKER = 'core_local_activity';

type Timestamp = { seconds?: unknown; nanos?: number | null } | null | undefined;
const tsMs = (t: Timestamp) => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;

/** An interval of wall-clock time, ms since the epoch: [start, end]. */
export type Interval = [number, number];

/** What {@link orchestration} measured, in seconds. */
export interface Orchestration {
  /** Time with no activity and no read ahead running. */
  orchestration_s: number;
  /**
   * Time when only the read ahead ran: the planning worker's threads parsing the window while the shards were
   * dispatched. Counted as orchestration before 2026-12-07 (see docs/benchmarks.md).
   */
  read_ahead_in_gaps_s: number;
}

/**
 * When a local activity (planRun, commitRun) ran, from its marker: the SDK records the wall-clock time it was
 * scheduled and a "complete time" that is the scheduling workflow task's start plus the activity's runtime.
 */
function localActivityInterval(
  marker: temporal.api.history.v1.IMarkerRecordedEventAttributes,
  workflowTasksStarted: number[],
): Interval | undefined {
  const payload = marker.details?.data?.payloads?.[0];
  if (!payload) return undefined;
  const data = defaultPayloadConverter.fromPayload<{ complete_time?: Timestamp; original_schedule_time?: Timestamp }>(
    payload,
  );
  if (!data.complete_time || !data.original_schedule_time) return undefined;
  const scheduled = tsMs(data.original_schedule_time);
  // The workflow task it was scheduled in: the last one started before it (same clock here: one machine).
  const taskStarted = workflowTasksStarted.filter((t) => t <= scheduled).pop();
  if (taskStarted === undefined) return undefined;
  return [scheduled, scheduled + (tsMs(data.complete_time) - taskStarted)];
}

/** The time the union of `intervals` covers within [from, to], ms. */
export function coveredMs(intervals: readonly Interval[], from: number, to: number): number {
  const sorted = intervals
    .map(([a, b]): Interval => [Math.max(a, from), Math.min(b, to)])
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  let busy = 0;
  let end = -Infinity;
  for (const [a, b] of sorted) {
    if (a > end) busy += b - a;
    else if (b > end) busy += b - end;
    end = Math.max(end, b);
  }
  return busy;
}

/**
 * The orchestration of the run whose history this is; `readAhead` are the intervals the planning worker's threads
 * spent reading the window ahead of its shards (any run's: only what falls within this run counts).
 */
export function orchestration(
  history: temporal.api.history.v1.IHistory,
  readAhead: readonly Interval[] = [],
): Orchestration {
  const ms = (t: temporal.api.history.v1.IHistoryEvent) => tsMs(t.eventTime);
  const events = history.events ?? [];
  if (events.length === 0) return { orchestration_s: 0, read_ahead_in_gaps_s: 0 };
  const started = new Map<string, number>();
  const workflowTasksStarted: number[] = [];
  const activities: Interval[] = [];
  for (const e of events) {
    if (e.workflowTaskStartedEventAttributes) workflowTasksStarted.push(ms(e));
    if (e.activityTaskStartedEventAttributes)
      started.set(String(e.activityTaskStartedEventAttributes.scheduledEventId), ms(e));
    const done = e.activityTaskCompletedEventAttributes;
    if (done) activities.push([started.get(String(done.scheduledEventId)) ?? ms(e), ms(e)]);
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName === LOCAL_ACTIVITY_MARKER) {
      const ran = localActivityInterval(marker, workflowTasksStarted);
      if (ran) activities.push(ran);
    }
  }
  const from = ms(events[0]!);
  const to = ms(events[events.length - 1]!);
  const byActivities = coveredMs(activities, from, to);
  const byEither = coveredMs([...activities, ...readAhead], from, to);
  return { orchestration_s: (to - from - byEither) / 1000, read_ahead_in_gaps_s: (byEither - byActivities) / 1000 };
}
