/**
 * Where `fleetscore schedules` reads declarations from: schedules/fleet-schedules.ts, or with `--file` another module
 * with the same contract, wherever it lives (a staging fleet, a generated file, /etc/fleet/eu.ts). Every way a file
 * can be wrong (missing, not parseable, throwing, exporting nothing or no scope, declaring bad schedules) ends in one
 * error that names the file.
 */
import { statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { InvalidScheduleFile } from '../lib/shared/errors';
import { REPO_ROOT } from '../lib/temporal/temporal-cli';
import { PACKAGE_NAME, resolveFleetscoreFromAnywhere } from './fleetscore-resolution';
import { SCOPE_PATTERN, validateSchedules, type FleetSchedule } from './schedule-declaration';

/** The file that declares the schedules when no `--file` is given, as users see it in the repository. */
export const DEFAULT_SCHEDULES_FILE = 'schedules/fleet-schedules.ts';

const MODULE_EXTENSION = /\.(ts|cts|js|cjs)$/;

/** The declarations of one schedules module, validated, and the scope they belong to. */
export interface DeclaredSchedules {
  /** The file as the user named it (the default file relative to the repository). */
  file: string;
  scope: string;
  schedules: FleetSchedule[];
}

/**
 * The validated declarations and scope of `file` (a `.ts`, `.cts`, `.js` or `.cjs` module exporting
 * `fleetSchedules(env)` and `scope`, like schedules/fleet-schedules.ts), or of schedules/fleet-schedules.ts when
 * `file` is undefined. Throws InvalidScheduleFile or InvalidScheduleDeclaration before anything touches a server.
 */
export function loadSchedules(file: string | undefined, env: NodeJS.ProcessEnv = process.env): DeclaredSchedules {
  const shown = file ?? DEFAULT_SCHEDULES_FILE;
  const mod = loadModule(shown, file === undefined ? join(REPO_ROOT, DEFAULT_SCHEDULES_FILE) : resolve(file));
  const declare = mod.fleetSchedules;
  if (typeof declare !== 'function') {
    throw new InvalidScheduleFile(
      shown,
      `does not export a function fleetSchedules(env) that returns the declarations (see ${DEFAULT_SCHEDULES_FILE})`,
    );
  }
  const scope = mod.scope;
  if (typeof scope !== 'string' || !SCOPE_PATTERN.test(scope)) {
    throw new InvalidScheduleFile(
      shown,
      `${scope === undefined ? 'does not export a scope' : `exports scope ${JSON.stringify(scope)}, not a valid one`}: ` +
        "name whose schedules these are, e.g. `export const scope = 'eu-fleet'` (lowercase letters, digits, . _ -), " +
        'so that applying another file never deletes them',
    );
  }
  let declared: unknown;
  try {
    declared = (declare as (env: NodeJS.ProcessEnv) => unknown)(env);
  } catch (err) {
    throw new InvalidScheduleFile(shown, 'could not declare its schedules: fleetSchedules(env) threw', { cause: err });
  }
  if (!Array.isArray(declared)) {
    throw new InvalidScheduleFile(
      shown,
      `must return an array of schedule declarations from fleetSchedules(env), got ${kindOf(declared)}`,
    );
  }
  return { file: shown, scope, schedules: validateSchedules(declared as FleetSchedule[], shown) };
}

/** The module's exports; a missing file, a syntax error and a throwing top level each get their own message. */
function loadModule(shown: string, path: string): Record<string, unknown> {
  if (!MODULE_EXTENSION.test(path)) {
    throw new InvalidScheduleFile(
      shown,
      'is not a module: use a .ts, .cts, .js or .cjs file that exports fleetSchedules',
    );
  }
  const stats = statSync(path, { throwIfNoEntry: false });
  if (stats === undefined) throw new InvalidScheduleFile(shown, 'does not exist');
  if (!stats.isFile()) throw new InvalidScheduleFile(shown, 'is not a file');
  const hooks = resolveFleetscoreFromAnywhere();
  try {
    // require, not import(): the `fleetscore` bin registers tsx for CommonJS only, which is what loads .ts here.
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a user's file, loaded at run time
    return require(path) as Record<string, unknown>;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'MODULE_NOT_FOUND' && err instanceof Error && err.message.includes(`'${PACKAGE_NAME}/`)) {
      const outside = relative(REPO_ROOT, path).startsWith('..');
      throw new InvalidScheduleFile(
        shown,
        hooks || !outside
          ? `imports a part of fleetscore that it does not export; import from '${PACKAGE_NAME}/schedules'`
          : `imports '${PACKAGE_NAME}/schedules', which Node ${process.versions.node} cannot resolve for a file ` +
              'outside the fleetscore checkout (that needs Node 22.15 or later): run on Node 22 or 24, or keep the ' +
              'file inside the checkout',
        { cause: err },
      );
    }
    // esbuild (through tsx) reports a .ts syntax error as TransformError, Node a .js one as SyntaxError.
    const parse = err instanceof Error && (err.name === 'TransformError' || err instanceof SyntaxError);
    throw new InvalidScheduleFile(shown, parse ? 'does not parse' : 'threw while loading', { cause: err });
  }
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : typeof value;
}
