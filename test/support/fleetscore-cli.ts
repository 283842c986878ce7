/**
 * The real `fleetscore` entry point in a child process, as a user runs it: what tests of exit codes, messages and
 * side effects of a whole command use.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');

/** How a `fleetscore` command ended. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `fleetscore ...args` from the repository root with `env` added to this process's environment (a variable
 * given as undefined is removed).
 */
export function fleetscore(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const merged = Object.fromEntries(
    Object.entries({ ...process.env, ...env }).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  return new Promise((done) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'cli/main.ts', ...args],
      { cwd: ROOT, env: merged },
      (err, stdout, stderr) => done({ code: err ? Number(err.code) : 0, stdout, stderr }),
    );
  });
}

/** A stack trace line (`    at fn (file:1:2)`): no command may print one without `--verbose`. */
export const STACK_TRACE = /\n\s+at /;
