/** Temporal durations as milliseconds. No Node imports: the workflow compares waits with them. */
import type { Duration } from '@temporalio/common';
import ms from 'ms';

/** Milliseconds of a duration (`'5 minutes'`, `'90s'`, or a number of ms), or `undefined` when it is not one. */
export function durationMs(value: Duration | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  try {
    const millis = ms(value);
    return Number.isFinite(millis) ? millis : undefined;
  } catch {
    // Not a duration string: the caller reports it with its own context (the schedule and field, the run input).
    return undefined;
  }
}
