import { InvalidWindow } from './errors';
/**
 * Windows: the half-open UTC time ranges a run scores. Pure functions without Node imports, because the
 * workflow derives its window from the schedule's nominal time with them.
 */

/** One window, e.g. `[2026-11-21T12:00Z, 2026-11-21T13:00Z)`, named by its start hour `2026-11-21T12`. */
export interface Window {
  /** `YYYY-MM-DDTHH` of the start, UTC: the `window=` path segment and the search attribute value. */
  id: string;
  /** Inclusive start, epoch milliseconds. */
  startMs: number;
  /** Exclusive end, epoch milliseconds. */
  endMs: number;
}

const HOUR_MS = 3_600_000;
const WINDOW_ID = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})$/;

/** The id of the window that starts at `startMs` (which must fall on a whole hour). */
export function windowIdOf(startMs: number): string {
  return new Date(startMs).toISOString().slice(0, 13);
}

/** The window of `hours` hours that starts at `startMs`. */
export function windowAt(startMs: number, hours = 1): Window {
  if (!Number.isFinite(startMs) || startMs % HOUR_MS !== 0) {
    throw new InvalidWindow(`a window starts on a whole UTC hour, got ${String(startMs)}`, String(startMs));
  }
  if (!Number.isInteger(hours) || hours < 1 || hours > 24 * 31) {
    throw new InvalidWindow(`window length must be 1..744 whole hours, got ${String(hours)}`, String(hours));
  }
  return { id: windowIdOf(startMs), startMs, endMs: startMs + hours * HOUR_MS };
}

/** Parses `2026-11-21T12` (or any ISO time on a whole hour, e.g. `2026-11-21T12:00:00Z`) into a window. */
export function parseWindow(value: string, hours = 1): Window {
  const m = WINDOW_ID.exec(value);
  const ms = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4])) : Date.parse(value);
  if (Number.isNaN(ms) || (m && windowIdOf(ms) !== value)) {
    throw new InvalidWindow(`not a window: "${value}" (expected YYYY-MM-DDTHH in UTC, e.g. 2026-11-21T12)`, value);
  }
  if (ms % HOUR_MS !== 0) {
    throw new InvalidWindow(`not a window: "${value}" does not fall on a whole UTC hour`, value);
  }
  return windowAt(ms, hours);
}

/**
 * The last complete window before a scheduled time: a run scheduled at 13:05 scores `[12:00, 13:00)`. A late,
 * retried or backfilled run gets the same window because the input is the nominal time, never the clock.
 */
export function windowBefore(scheduledMs: number, hours = 1): Window {
  const end = Math.floor(scheduledMs / (hours * HOUR_MS)) * hours * HOUR_MS;
  return windowAt(end - hours * HOUR_MS, hours);
}

/** The windows of `hours` hours whose starts lie in `[fromMs, toMs)`, oldest first. */
export function windowsBetween(fromMs: number, toMs: number, hours = 1): Window[] {
  const first = Math.ceil(fromMs / HOUR_MS) * HOUR_MS;
  const out: Window[] = [];
  for (let t = first; t < toMs; t += hours * HOUR_MS) out.push(windowAt(t, hours));
  return out;
}
