/**
 * The CLI's one error exit: a clear message on stderr, prefixed `fleetscore:` like commander's own usage errors
 * (cli/main.ts), and exit code 1. Stack traces only with `--verbose` (or FLEETSCORE_VERBOSE=1), because users need
 * the message, not our call stack. Errors of the SDK that users meet (a schedule or workflow that does not exist)
 * get a message that says what to do.
 */
import { inspect } from 'node:util';
import { ScheduleNotFoundError } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { ZodError } from 'zod';
import { config } from '../../lib/config';
import { InvalidArguments, InvalidConfig } from '../../lib/shared/errors';

/** Prints `err` and exits 1. */
export function handleError(err: unknown): never {
  const verbose = process.argv.includes('--verbose') || verboseFromEnvironment();
  process.stderr.write(formatError(err, verbose));
  process.exit(1);
}

/** The lines handleError prints for `err`. */
export function formatError(err: unknown, verbose: boolean): string {
  if (err instanceof InvalidArguments) {
    return `${err.issues.map((i) => `fleetscore: ${i.argument}: ${i.message}\n`).join('')}(\`${err.command} --help\` shows the usage)\n`;
  }
  if (err instanceof ZodError) {
    // Commands parse through parseOptions; a ZodError here is a schema used elsewhere (a file, the environment).
    return `fleetscore: invalid input\n${err.issues.map((i) => `  ${i.path.join('.') || 'input'}: ${i.message}\n`).join('')}`;
  }
  if (err instanceof ScheduleNotFoundError) {
    return (
      `fleetscore: no schedule "${err.scheduleId}" on the server; \`fleetscore schedules list --all\` lists the ` +
      `schedules there, \`fleetscore schedules apply\` creates the declared ones\n`
    );
  }
  if (err instanceof WorkflowNotFoundError) {
    return `fleetscore: no workflow "${err.workflowId}" on the server; \`fleetscore runs list\` shows the committed runs\n`;
  }
  if (!(err instanceof Error)) return `fleetscore: ${String(err)}\n`;
  let out = `fleetscore: ${err.message}\n`;
  const cause: unknown = err.cause;
  if (cause instanceof Error) out += `  caused by: ${cause.message}\n`;
  else if (cause !== undefined) out += `  caused by: ${inspect(cause)}\n`;
  if (verbose && err.stack) out += `${err.stack}\n`;
  // Where the cause came from matters most when it is the user's code (a schedules file that throws).
  if (verbose && cause instanceof Error && cause.stack) out += `caused by ${cause.stack}\n`;
  return out;
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
