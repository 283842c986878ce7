/**
 * Waiting for a window's input, in workflow code: before planning, the run looks for its input (every hourly
 * folder holds a part, or the producer's completion marker) and, while it is not there, sleeps on a durable timer
 * (no worker slot is held, a worker restart loses nothing) and looks again, until `inputWait` has passed; then it
 * fails with `InputMissing`, naming the folders. A window without input is never committed as "no data" for the
 * whole fleet. Deterministic: workflow time only.
 */
import { log, sleep } from '@temporalio/workflow';
import { durationMs, formatDuration } from '../lib/shared/duration';
import { toApplicationFailure } from '../lib/shared/error-types';
import { InputMissing, InvalidInput } from '../lib/shared/errors';
import { INPUT_MARKER } from '../lib/shared/keys';
import type { InputWaiting } from '../lib/shared/names';
import type { Duration } from '@temporalio/common';
import type { InputCheck } from '../lib/shared/run-types';

/** What the run waits for and how long. */
export interface InputWait {
  window: string;
  wait: Duration;
  marker: boolean;
  /** One look at the input (the checkInput activity). */
  check(): Promise<InputCheck>;
  /** Called with the waiting state after each look that found the input missing, and `undefined` once it is there. */
  onWaiting(state: InputWaiting | undefined): void;
}

/** Looks between waits at most this often, and at least every tenth of the wait. */
const MAX_POLL_MS = 60_000;
const MIN_POLL_MS = 1_000;

/** Returns once the input is there; throws `InputMissing` (non-retryable) once the wait has passed without it. */
export async function waitForInput(w: InputWait): Promise<void> {
  const waitMs = durationMs(w.wait);
  if (waitMs === undefined || waitMs < 0) {
    throw toApplicationFailure(new InvalidInput(`inputWait is not a duration: ${JSON.stringify(w.wait)}`));
  }
  const pollMs = Math.min(MAX_POLL_MS, Math.max(MIN_POLL_MS, Math.floor(waitMs / 10)));
  const since = Date.now();
  const until = since + waitMs;
  for (let checks = 1; ; checks++) {
    const found = await w.check();
    if (found.ready) {
      if (checks > 1) w.onWaiting(undefined);
      return;
    }
    const attrs = { window: w.window, missing: found.missing, checks };
    if (Date.now() >= until) {
      const what = w.marker ? `the completion marker ${INPUT_MARKER}` : 'an aggregates part';
      log.error(`no input for window ${w.window} after ${formatDuration(waitMs)}`, attrs);
      throw toApplicationFailure(new InputMissing(w.window, found.missing, what, formatDuration(waitMs)));
    }
    if (checks === 1) {
      log.warn(
        `waiting for the input of window ${w.window} until ${new Date(until).toISOString()} (inputWait ${formatDuration(waitMs)})`,
        attrs,
      );
    }
    w.onWaiting({
      since: new Date(since).toISOString(),
      until: new Date(until).toISOString(),
      missing: found.missing,
      checks,
    });
    await sleep(Math.min(pollMs, until - Date.now()));
  }
}
