import { ZodError } from 'zod';

/**
 * The CLI's one error exit: a clear message on stderr and exit code 1. Stack traces only with `--verbose`
 * (or FLEETSCORE_VERBOSE=1), because users need the message, not our call stack.
 */
export function handleError(err: unknown): never {
  const verbose = process.argv.includes('--verbose') || process.env.FLEETSCORE_VERBOSE === '1';
  if (err instanceof ZodError) {
    const lines = err.issues.map((i) => `  ${i.path.length ? `--${i.path.join('.')}` : 'input'}: ${i.message}`);
    process.stderr.write(`fleetscore: invalid arguments\n${lines.join('\n')}\n`);
  } else if (err instanceof Error) {
    process.stderr.write(`fleetscore: ${err.message}\n`);
    if (err.cause instanceof Error) process.stderr.write(`  caused by: ${err.cause.message}\n`);
    if (verbose && err.stack) process.stderr.write(`${err.stack}\n`);
  } else {
    process.stderr.write(`fleetscore: ${String(err)}\n`);
  }
  process.exit(1);
}
