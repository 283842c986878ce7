/**
 * Which scheduled times score which windows: the nominal times whose runs score the windows of a range, and the
 * range to pass Temporal's schedule backfill so it starts exactly those runs (`fleetscore backfill`).
 */

const HOUR_MS = 3_600_000;

/** A schedule's timing: the window length and how long after a window's end its run is scheduled. */
export interface ScheduleTiming {
  windowHours: number;
  offsetMs: number;
}

/**
 * The nominal scheduled times whose runs score the windows that start in `[fromMs, toMs)`, and the Temporal
 * backfill range that yields exactly those times. A window starting at W is scored by the run scheduled at
 * W + window + offset (see `windowBefore`). Throws when the range is empty or not whole windows.
 */
export function backfillRange(
  timing: ScheduleTiming,
  fromMs: number,
  toMs: number,
): { windowStarts: number[]; scheduledTimes: number[]; start: Date; end: Date } {
  const windowMs = timing.windowHours * HOUR_MS;
  const iso = (ms: number) => new Date(ms).toISOString().replace(':00.000Z', 'Z');
  if (!(toMs > fromMs)) throw new Error(`--to (${iso(toMs)}) must be after --from (${iso(fromMs)})`);
  if (fromMs % windowMs !== 0) {
    const before = Math.floor(fromMs / windowMs) * windowMs;
    throw new Error(
      `--from ${iso(fromMs)} is not the start of a ${timing.windowHours}h window; the nearest earlier one starts at ${iso(before)}`,
    );
  }
  if ((toMs - fromMs) % windowMs !== 0) {
    throw new Error(
      `--from ${iso(fromMs)} to --to ${iso(toMs)} is not a whole number of ${timing.windowHours}h windows`,
    );
  }
  const windowStarts: number[] = [];
  for (let w = fromMs; w < toMs; w += windowMs) windowStarts.push(w);
  const scheduledTimes = windowStarts.map((w) => w + windowMs + timing.offsetMs);
  // Temporal compares the (jittered) action times with both ends inclusively; a margin of half a window on each
  // side takes in every jittered time of ours (validation keeps jitter under half a window) and no neighbour's.
  const first = scheduledTimes[0] as number;
  const last = scheduledTimes[scheduledTimes.length - 1] as number;
  return { windowStarts, scheduledTimes, start: new Date(first - windowMs / 2), end: new Date(last + windowMs / 2) };
}
