/**
 * Finds the Temporal CLI that runs the dev server: `TEMPORAL_CLI`, then `temporal` on PATH, then the copy that
 * `npm run setup` (run by `npm start` and `npm test`) put in the project-local tools folder.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { config, type FleetscoreConfig } from '../config';

/** The project root (this file lives in lib/temporal/). */
export const REPO_ROOT = resolve(__dirname, '..', '..');

/** Where `npm run setup` puts the Temporal CLI when none is on the machine. */
export const LOCAL_TEMPORAL_CLI = join(REPO_ROOT, '.tools', 'bin', 'temporal');

/** The Temporal CLI to use, or `undefined` when there is none yet. */
export function findTemporalCli(
  { temporalCli }: Pick<FleetscoreConfig, 'temporalCli'> = config(),
  path = process.env.PATH ?? '',
): string | undefined {
  if (temporalCli) {
    if (!existsSync(temporalCli)) throw new Error(`TEMPORAL_CLI=${temporalCli} does not exist`);
    return temporalCli;
  }
  for (const dir of path.split(delimiter)) {
    if (dir && existsSync(join(dir, 'temporal'))) return join(dir, 'temporal');
  }
  return existsSync(LOCAL_TEMPORAL_CLI) ? LOCAL_TEMPORAL_CLI : undefined;
}

/** The Temporal CLI, or an error that says how to install it. */
export function requireTemporalCli(): string {
  const cli = findTemporalCli();
  if (!cli) throw new Error('the Temporal CLI was not found: run `npm run setup` (or set TEMPORAL_CLI to its path)');
  return cli;
}

/** The CLI's version line, e.g. `temporal version 1.5.1 (Server 1.29.1, UI 2.42.1)`. */
export function temporalCliVersion(cli: string): string {
  return execFileSync(cli, ['--version'], { encoding: 'utf8' }).trim();
}
