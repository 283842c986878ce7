/**
 * Where `fleetscore schedules apply` reads its declarations from: schedules/fleet-schedules.ts, or with `--file`
 * another module with the same contract (a staging fleet, a generated file). Every way a file can be wrong (missing,
 * not parseable, throwing, exporting nothing, declaring bad schedules) ends in one error that names the file.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { fleetSchedules, validateSchedules, type FleetSchedule } from './fleet-schedules';
import { InvalidScheduleFile } from '../lib/shared/errors';

/** The file that declares the schedules when no `--file` is given, as users see it in the repository. */
export const DEFAULT_SCHEDULES_FILE = 'schedules/fleet-schedules.ts';

const MODULE_EXTENSION = /\.(ts|cts|js|cjs)$/;

/**
 * The validated declarations of `file` (a `.ts`, `.cts`, `.js` or `.cjs` module exporting `fleetSchedules(env)`,
 * like schedules/fleet-schedules.ts), or of schedules/fleet-schedules.ts when `file` is undefined. Throws
 * InvalidScheduleFile or InvalidScheduleDeclaration before anything touches a server.
 */
export function loadSchedules(file: string | undefined, env: NodeJS.ProcessEnv = process.env): FleetSchedule[] {
  if (file === undefined) return validateSchedules(fleetSchedules(env), DEFAULT_SCHEDULES_FILE);
  const declare = loadModule(file).fleetSchedules;
  if (typeof declare !== 'function') {
    throw new InvalidScheduleFile(
      file,
      `does not export a function fleetSchedules(env) that returns the declarations (see ${DEFAULT_SCHEDULES_FILE})`,
    );
  }
  let declared: unknown;
  try {
    declared = (declare as (env: NodeJS.ProcessEnv) => unknown)(env);
  } catch (err) {
    throw new InvalidScheduleFile(file, 'could not declare its schedules: fleetSchedules(env) threw', { cause: err });
  }
  if (!Array.isArray(declared)) {
    throw new InvalidScheduleFile(
      file,
      `must return an array of schedule declarations from fleetSchedules(env), got ${kindOf(declared)}`,
    );
  }
  return validateSchedules(declared as FleetSchedule[], file);
}

/** The module's exports; a missing file, a syntax error and a throwing top level each get their own message. */
function loadModule(file: string): Record<string, unknown> {
  if (!MODULE_EXTENSION.test(file)) {
    throw new InvalidScheduleFile(
      file,
      'is not a module: use a .ts, .cts, .js or .cjs file that exports fleetSchedules',
    );
  }
  const path = resolve(file);
  const stats = statSync(path, { throwIfNoEntry: false });
  if (stats === undefined) throw new InvalidScheduleFile(file, 'does not exist');
  if (!stats.isFile()) throw new InvalidScheduleFile(file, 'is not a file');
  try {
    // require, not import(): the `fleetscore` bin registers tsx for CommonJS only, which is what loads .ts here.
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a user's file, loaded at run time
    return require(path) as Record<string, unknown>;
  } catch (err) {
    // esbuild (through tsx) reports a .ts syntax error as TransformError, Node a .js one as SyntaxError.
    const parse = err instanceof Error && (err.name === 'TransformError' || err instanceof SyntaxError);
    throw new InvalidScheduleFile(file, parse ? 'does not parse' : 'threw while loading', { cause: err });
  }
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : typeof value;
}
