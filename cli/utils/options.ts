/** Option schemas shared by several commands. */
import { z } from 'zod';
import { config } from '../../lib/config';
import { parseWindow } from '../../lib/shared/window';
import { messageOf } from '../../lib/shared/errors';

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

/** A positive integer given as a command-line string. */
export const positiveInt = z.coerce.number().int().positive();
