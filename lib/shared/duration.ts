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

const UNITS: readonly [string, number][] = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
];

/** A duration in milliseconds in the largest unit that holds it exactly: `5m`, `90s`, `2h`, `1d`, `250ms`, `0s`. */
export function formatDuration(millis: number): string {
  if (millis === 0) return '0s';
  for (const [unit, size] of UNITS) if (millis !== 0 && millis % size === 0) return `${millis / size}${unit}`;
  return `${millis}ms`;
}
