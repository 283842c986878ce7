import { inspect } from 'node:util';
import { ZodError } from 'zod';
import { config } from '../../lib/config';
import { InvalidConfig } from '../../lib/shared/errors';

/**
 * The CLI's one error exit: a clear message on stderr and exit code 1. Stack traces only with `--verbose`
 * (or FLEETSCORE_VERBOSE=1), because users need the message, not our call stack.
 */
export function handleError(err: unknown): never {
  const verbose = process.argv.includes('--verbose') || verboseFromEnvironment();
  if (err instanceof ZodError) {
    const lines = err.issues.map((i) => `  ${i.path.length ? `--${i.path.join('.')}` : 'input'}: ${i.message}`);
    process.stderr.write(`fleetscore: invalid arguments\n${lines.join('\n')}\n`);
  } else if (err instanceof Error) {
    process.stderr.write(`fleetscore: ${err.message}\n`);
    const cause: unknown = err.cause;
    if (cause instanceof Error) process.stderr.write(`  caused by: ${cause.message}\n`);
    else if (cause !== undefined) process.stderr.write(`  caused by: ${inspect(cause)}\n`);
    if (verbose && err.stack) process.stderr.write(`${err.stack}\n`);
    // Where the cause came from matters most when it is the user's code (a schedules file that throws).
    if (verbose && cause instanceof Error && cause.stack) process.stderr.write(`caused by ${cause.stack}\n`);
  } else {
    process.stderr.write(`fleetscore: ${String(err)}\n`);
  }
  process.exit(1);
}

/** `FLEETSCORE_VERBOSE`, or false when the environment is the very thing that failed to parse. */
function verboseFromEnvironment(): boolean {
  try {
    return config().verbose;
  } catch (err) {
    if (err instanceof InvalidConfig) return false;
    throw err;
  }
}
