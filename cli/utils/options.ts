/** Option schemas shared by several commands, each with a message that says what a valid value looks like. */
import type { Duration } from '@temporalio/common';
import { z } from 'zod';
import { config } from '../../lib/config';
import { InvalidArguments, messageOf } from '../../lib/shared/errors';
import { parseWindow } from '../../lib/shared/window';
import { durationMs } from '../../lib/shared/duration';

/** `--store URI`: defaults to FLEETSCORE_STORE or the embedded local folder. */
export const storeOption = z
  .string()
  .min(1)
  .optional()
  .transform((s) => s ?? config().store);

/** A window id or ISO time on a whole hour, normalised to the window id. */
export const windowOption = z.string().transform((value, ctx) => {
  try {
    return parseWindow(value).id;
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: messageOf(err) });
    return z.NEVER;
  }
});

/** A whole number given on the command line (or as a default), within `[min, max]`. */
export function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER) {
  const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
  return z.union([z.string(), z.number()]).transform((value, ctx) => {
    const n = typeof value === 'number' ? value : /^\s*[+-]?\d+\s*$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `must be a whole number ${range}, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return n;
  });
}

/** A number of at least `min` (seconds, a rate), given on the command line or as a default. */
export function decimalNumber(min: number, max = Number.MAX_VALUE) {
  return z.union([z.string(), z.number()]).transform((value, ctx) => {
    const n = typeof value === 'number' ? value : value.trim() === '' ? Number.NaN : Number(value);
    if (!Number.isFinite(n) || n < min || n > max) {
      const range = max === Number.MAX_VALUE ? `of at least ${min}` : `from ${min} to ${max}`;
      ctx.addIssue({ code: 'custom', message: `must be a number ${range}, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return n;
  });
}

/** A positive whole number given as a command-line string. */
export const positiveInt = wholeNumber(1);

/** A TCP port. */
export const portNumber = wholeNumber(1, 65_535);

/**
 * The window a command works on, given as its WINDOW argument or as `--window W` (the same, kept as an alias: some
 * commands took one, some the other). Returns the value and how the user gave it, for error messages.
 */
export function windowInput(
  command: string,
  argument: string | undefined,
  option: unknown,
): { window: string | undefined; label: string } {
  const flag = typeof option === 'string' ? option : undefined;
  if (argument !== undefined && flag !== undefined && argument !== flag) {
    throw new InvalidArguments(command, [
      { argument: 'WINDOW', message: `"${argument}" and --window "${flag}" name different windows; give one` },
    ]);
  }
  return flag !== undefined && argument === undefined
    ? { window: flag, label: '--window' }
    : { window: argument, label: 'WINDOW' };
}

/** A duration given as text (`5m`, `90s`, `0`), as milliseconds; `min` is the least it may be. */
export const durationOption = (min = 0) =>
  z.string().transform((text, ctx) => {
    const millis = text === '0' ? 0 : durationMs(text as Duration);
    if (millis === undefined || millis < min) {
      ctx.addIssue({ code: 'custom', message: `must be a duration like 5m, 90s or 0, got ${JSON.stringify(text)}` });
      return z.NEVER;
    }
    return millis;
  });
