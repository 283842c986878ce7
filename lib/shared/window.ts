import { InvalidWindow, WindowNotComplete } from './errors';
import { formatDuration } from './duration';
/**
 * Windows: the half-open UTC time ranges a run scores. Pure functions without Node imports, because the
 * workflow derives its window from the schedule's nominal time with them.
 *
 * A window is named by its start hour, and a window of N > 1 hours also by its length: `2026-11-21T12` is the
 * hour `[12:00, 13:00)`, `2026-11-21T00_24h` the day that starts at midnight. So a daily roll-up has an id (and
 * a predictions folder, a manifest, a search attribute value) of its own that no hourly run can write.
 */

/** One window, e.g. `[2026-11-21T12:00Z, 2026-11-21T13:00Z)`, named by its start hour `2026-11-21T12`. */
export interface Window {
  /**
   * `YYYY-MM-DDTHH` of the start, UTC, with `_<N>h` after it when the window is N > 1 hours long: the `window=`
   * path segment and the search attribute value.
   */
  id: string;
  /** Inclusive start, epoch milliseconds. */
  startMs: number;
  /** Exclusive end, epoch milliseconds. */
  endMs: number;
}

export const HOUR_MS = 3_600_000;
const WINDOW_ID = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})(?:_(\d{1,3})h)?$/;
const MAX_HOURS = 24 * 31;

/** The id of the window of `hours` hours that starts at `startMs` (which must fall on a whole hour). */
export function windowIdOf(startMs: number, hours = 1): string {
  const hour = new Date(startMs).toISOString().slice(0, 13);
  return hours === 1 ? hour : `${hour}_${hours}h`;
}

/** The window of `hours` hours that starts at `startMs`. */
export function windowAt(startMs: number, hours = 1): Window {
  if (!Number.isFinite(startMs) || startMs % HOUR_MS !== 0) {
    throw new InvalidWindow(`a window starts on a whole UTC hour, got ${String(startMs)}`, String(startMs));
  }
  if (!Number.isInteger(hours) || hours < 1 || hours > MAX_HOURS) {
    throw new InvalidWindow(`window length must be 1..${MAX_HOURS} whole hours, got ${String(hours)}`, String(hours));
  }
  return { id: windowIdOf(startMs, hours), startMs, endMs: startMs + hours * HOUR_MS };
}

/**
 * Parses a window id (`2026-11-21T12`, `2026-11-21T00_24h`) or any ISO time on a whole hour
 * (`2026-11-21T12:00:00Z`) into a window. The length comes from the id's `_<N>h`, else from `hours` (default 1);
 * an id whose length disagrees with `hours` is refused, so a run never scores a window other than the one named.
 */
export function parseWindow(value: string, hours?: number): Window {
  const m = WINDOW_ID.exec(value);
  const ms = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4])) : Date.parse(value);
  const named = m?.[5] === undefined ? undefined : Number(m[5]);
  if (Number.isNaN(ms) || (m && windowIdOf(ms, named ?? 1) !== value)) {
    throw new InvalidWindow(
      `not a window: "${value}" (expected YYYY-MM-DDTHH in UTC, e.g. 2026-11-21T12, or YYYY-MM-DDTHH_<N>h for a ` +
        `window of N hours, e.g. 2026-11-21T00_24h)`,
      value,
    );
  }
  if (ms % HOUR_MS !== 0) {
    throw new InvalidWindow(`not a window: "${value}" does not fall on a whole UTC hour`, value);
  }
  if (named !== undefined && hours !== undefined && named !== hours) {
    throw new InvalidWindow(
      `window "${value}" is ${named} hours long, but the run scores ${hours}-hour windows`,
      value,
    );
  }
  return windowAt(ms, named ?? hours ?? 1);
}

/** How many hours a window spans. */
export function hoursOf(window: Window): number {
  return (window.endMs - window.startMs) / HOUR_MS;
}

/**
 * The ids of the hourly windows a window is made of, oldest first: the input folders it reads
 * (`aggregates/window=<hour>/`). A one-hour window is made of itself.
 */
export function hourlyIdsOf(window: Window): string[] {
  const out: string[] = [];
  for (let t = window.startMs; t < window.endMs; t += HOUR_MS) out.push(windowIdOf(t));
  return out;
}

/**
 * The last complete window before a scheduled time: a run scheduled at 13:05 scores `[12:00, 13:00)`. A late,
 * retried or backfilled run gets the same window because the input is the nominal time, never the clock.
 */
export function windowBefore(scheduledMs: number, hours = 1): Window {
  const end = Math.floor(scheduledMs / (hours * HOUR_MS)) * hours * HOUR_MS;
  return windowAt(end - hours * HOUR_MS, hours);
}

/**
 * The most recent window that may be scored at `nowMs`: ended, plus the settle time its late rows get. At 13:03
 * with a settle of 5 minutes that is `[11:00, 12:00)`, not the hour that ended three minutes ago.
 */
export function latestScoreableWindow(nowMs: number, hours: number, settleMs: number): Window {
  return windowBefore(nowMs - settleMs, hours);
}

/** When a window may be scored: its end plus the settle time that late rows get to land. */
export function scoreableAt(window: Window, settleMs: number): number {
  return window.endMs + settleMs;
}

/**
 * Throws {@link WindowNotComplete} when `window` is not complete at `nowMs`: it has not ended, or ended less than
 * `settleMs` ago. Scoring it now would commit a window whose rows are still to come.
 */
export function assertComplete(window: Window, settleMs: number, nowMs: number): void {
  const at = scoreableAt(window, settleMs);
  if (nowMs >= at) return;
  throw new WindowNotComplete(
    window.id,
    new Date(window.endMs).toISOString(),
    new Date(at).toISOString(),
    formatDuration(settleMs),
  );
}
