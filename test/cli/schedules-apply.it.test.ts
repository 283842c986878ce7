/**
 * `fleetscore schedules apply --file` with invalid declarations, through the real entry point in a child process
 * against a real dev server: each must exit 1 with one message naming the file, the schedule and the field (no
 * stack trace), and leave every schedule on the server as it was, although applying the file for real would create
 * its schedules and delete the one already there.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScheduleNotFoundError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FleetSchedule } from '../../schedules/schedule-declaration';
import { scheduleRecord, type ScheduleChange } from '../../schedules/schedule-reconciler';
import { fleetscore, STACK_TRACE } from '../support/fleetscore-cli';
import { startTemporal } from '../support/temporal-env';

jest.setTimeout(120_000);

const BASELINE = 'cli-baseline';

let env: TestWorkflowEnvironment;
let dir: string;
/** Points the CLI's one way of connecting (the environment) at the test server. */
let cliEnv: NodeJS.ProcessEnv;

function declaration(id: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const valid: FleetSchedule = {
    id,
    description: `test schedule ${id}`,
    spec: { intervals: [{ every: '1h', offset: '5m' }] },
    timezone: 'UTC',
    catchupWindow: '2h',
    jitter: '30s',
    // Paused: nothing here should start a run.
    paused: true,
    windowHours: 1,
    run: { store: join(tmpdir(), 'fleetscore-cli-apply-store'), shardSize: 500, maxParallelShards: 8 },
  };
  return { ...valid, ...overrides };
}

/** A schedules module like schedules/fleet-schedules.ts that declares `declarations` in the scope `cli-test`. */
const moduleOf = (declarations: unknown[]): string =>
  `export const scope = 'cli-test';\n` +
  `export function fleetSchedules(env: NodeJS.ProcessEnv) {\n  return ${JSON.stringify(declarations, null, 2)};\n}\n`;

/** Writes a schedules file into the test's folder and returns its path. */
async function schedulesFile(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** What apply controls on the baseline schedule: its declaration hash, spec, action and pause state. */
async function baselineState(): Promise<unknown> {
  const d = await env.client.schedule.getHandle(BASELINE).describe();
  return {
    hash: scheduleRecord(d)?.declarationHash,
    intervals: d.spec.intervals,
    args: d.action.args,
    paused: d.state.paused,
  };
}

async function exists(id: string): Promise<boolean> {
  try {
    await env.client.schedule.getHandle(id).describe();
    return true;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return false;
    throw err;
  }
}

let before: unknown;

beforeAll(async () => {
  env = await startTemporal();
  cliEnv = { TEMPORAL_ADDRESS: env.address, TEMPORAL_NAMESPACE: env.namespace ?? 'default' };
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-schedules-apply-'));
  // The schedule already on the server, applied from a valid file through the same command.
  const valid = await schedulesFile('valid.ts', moduleOf([declaration(BASELINE)]));
  const { code, stdout, stderr } = await fleetscore(['schedules', 'apply', '--file', valid, '--json'], cliEnv);
  expect(stderr).toBe('');
  expect(code).toBe(0);
  const { changes } = JSON.parse(stdout) as { changes: ScheduleChange[] };
  expect(changes).toEqual([expect.objectContaining({ id: BASELINE, action: 'created' })]);
  before = await baselineState();
});

afterAll(async () => {
  await env?.teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A case: the file's name and text (none: the file does not exist), the ids it declares, what stderr must say. */
interface InvalidCase {
  file: string;
  text?: string;
  declares?: string[];
  says: (path: string) => (string | RegExp)[];
}

const invalidDeclaration = (path: string) => `fleetscore: invalid schedule declaration in ${path}:\n`;

const cases: [string, InvalidCase][] = [
  [
    'an interval that is not a duration',
    {
      file: 'bad-interval.ts',
      text: moduleOf([declaration('cli-bad-interval', { spec: { intervals: [{ every: 'hourly' }] } })]),
      declares: ['cli-bad-interval'],
      says: (path) => [
        invalidDeclaration(path),
        `schedule "cli-bad-interval" spec.intervals[0].every: every must be a duration like '1h', '5m' or '90s', got "hourly"`,
      ],
    },
  ],
  [
    'a cron expression instead of an interval',
    {
      file: 'cron.ts',
      text: moduleOf([declaration('cli-cron', { spec: { cronExpressions: ['5 * * * *'] } })]),
      declares: ['cli-cron'],
      says: (path) => [
        invalidDeclaration(path),
        /schedule "cli-cron" spec\.cronExpressions: unknown field; .*no cron expressions/,
        'schedule "cli-cron" spec.intervals: is required',
      ],
    },
  ],
  [
    'an offset as long as the window',
    {
      file: 'bad-offset.ts',
      text: moduleOf([declaration('cli-bad-offset', { spec: { intervals: [{ every: '1h', offset: '60m' }] } })]),
      declares: ['cli-bad-offset'],
      says: (path) => [
        invalidDeclaration(path),
        'schedule "cli-bad-offset" spec.intervals[0].offset: must be shorter than the window (1h)',
      ],
    },
  ],
  [
    'an unknown pool',
    {
      file: 'bad-pool.ts',
      text: moduleOf([
        declaration('cli-bad-pool', { run: { store: '/tmp/s', shardSize: 500, maxParallelShards: 8, pool: 'tpu' } }),
      ]),
      declares: ['cli-bad-pool'],
      says: (path) => [
        invalidDeclaration(path),
        'schedule "cli-bad-pool" run.pool: unknown pool "tpu"; use one of cpu, gpu',
      ],
    },
  ],
  [
    'shardSize 0',
    {
      file: 'shard-size-zero.ts',
      text: moduleOf([declaration('cli-shard-zero', { run: { store: '/tmp/s', shardSize: 0, maxParallelShards: 8 } })]),
      declares: ['cli-shard-zero'],
      says: (path) => [
        invalidDeclaration(path),
        'schedule "cli-shard-zero" run.shardSize: must be a whole number from 1 to 20000, got 0',
      ],
    },
  ],
  [
    'shardSize over the limit a run accepts',
    {
      file: 'shard-size-big.ts',
      text: moduleOf([
        declaration('cli-shard-big', { run: { store: '/tmp/s', shardSize: 20_001, maxParallelShards: 8 } }),
      ]),
      declares: ['cli-shard-big'],
      says: (path) => [
        invalidDeclaration(path),
        'schedule "cli-shard-big" run.shardSize: must be a whole number from 1 to 20000, got 20001',
      ],
    },
  ],
  [
    'a duplicate schedule id',
    {
      file: 'duplicate.ts',
      text: moduleOf([declaration('cli-twice'), declaration('cli-twice', { description: 'the same id again' })]),
      declares: ['cli-twice'],
      says: (path) => [
        invalidDeclaration(path),
        'schedule "cli-twice" id: is declared more than once; ids must be unique',
      ],
    },
  ],
  [
    'unknown fields (a typo, an option that does not exist)',
    {
      file: 'unknown-field.ts',
      text: moduleOf([
        declaration('cli-unknown-field', {
          retries: 3,
          run: { store: '/tmp/s', shardsize: 100, shardSize: 500, maxParallelShards: 8 },
        }),
      ]),
      declares: ['cli-unknown-field'],
      says: (path) => [
        invalidDeclaration(path),
        /schedule "cli-unknown-field" retries: unknown field; the known ones are id, description, spec/,
        /schedule "cli-unknown-field" run\.shardsize: unknown field; the known ones are store, shardSize/,
      ],
    },
  ],
  [
    'a file that does not exist',
    { file: 'missing.ts', says: (path) => [`fleetscore: schedules file ${path} does not exist\n`] },
  ],
  [
    'a file that does not parse',
    {
      file: 'syntax-error.ts',
      text: 'export function fleetSchedules( {\n  return [\n}\n',
      says: (path) => [
        `fleetscore: schedules file ${path} does not parse\n`,
        /caused by: .*\n.*syntax-error\.ts:2:9: ERROR: Expected/,
      ],
    },
  ],
  [
    'a module that throws while loading',
    {
      file: 'throws-on-load.ts',
      text: "if (!process.env.FLEET_REGION) throw new Error('FLEET_REGION is not set');\nexport const x = 1;\n",
      says: (path) => [
        `fleetscore: schedules file ${path} threw while loading\n`,
        '  caused by: FLEET_REGION is not set\n',
      ],
    },
  ],
  [
    'a fleetSchedules(env) that throws',
    {
      file: 'throws-on-call.ts',
      text:
        "export const scope = 'cli-test';\n" +
        "export function fleetSchedules(): never {\n  throw new Error('no store for region eu-9');\n}\n",
      says: (path) => [
        `fleetscore: schedules file ${path} could not declare its schedules: fleetSchedules(env) threw\n`,
        '  caused by: no store for region eu-9\n',
      ],
    },
  ],
  [
    'a module without a scope',
    {
      file: 'no-scope.ts',
      text: `export function fleetSchedules() {\n  return ${JSON.stringify([declaration('cli-no-scope')])};\n}\n`,
      declares: ['cli-no-scope'],
      says: (path) => [
        `fleetscore: schedules file ${path} does not export a scope: name whose schedules these are, ` +
          "e.g. `export const scope = 'eu-fleet'`",
      ],
    },
  ],
  [
    'a module without fleetSchedules',
    {
      file: 'no-export.ts',
      text: `export const schedules = ${JSON.stringify([declaration('cli-no-export')])};\n`,
      declares: ['cli-no-export'],
      says: (path) => [`fleetscore: schedules file ${path} does not export a function fleetSchedules(env)`],
    },
  ],
];

describe('fleetscore schedules apply --file with an invalid file', () => {
  it.each(cases)('%s: exits 1 naming the file, schedule and field, and changes nothing', async (_name, c) => {
    const path = c.text === undefined ? join(dir, c.file) : await schedulesFile(c.file, c.text);
    const { code, stdout, stderr } = await fleetscore(['schedules', 'apply', '--file', path], cliEnv);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    for (const expected of c.says(path)) {
      if (typeof expected === 'string') expect(stderr).toContain(expected);
      else expect(stderr).toMatch(expected);
    }
    expect(stderr).not.toMatch(STACK_TRACE);
    // Nothing created, and the schedule the file does not declare was neither deleted nor changed.
    for (const id of c.declares ?? []) expect(await exists(id)).toBe(false);
    expect(await baselineState()).toEqual(before);
  });

  it('stays dry with --dry-run on a valid file, and --verbose shows where an invalid one threw', async () => {
    const other = await schedulesFile('other.ts', moduleOf([declaration('cli-other')]));
    const dry = await fleetscore(['schedules', 'apply', '--file', other, '--dry-run', '--json'], cliEnv);
    expect(dry.code).toBe(0);
    expect((JSON.parse(dry.stdout) as { changes: ScheduleChange[] }).changes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: 'cli-other', action: 'created' }),
        expect.objectContaining({ id: BASELINE, action: 'deleted' }),
      ]),
    );
    expect(await exists('cli-other')).toBe(false);
    expect(await baselineState()).toEqual(before);

    const throwing = await schedulesFile(
      'throws-verbose.ts',
      "export const scope = 'cli-test';\nexport function fleetSchedules(): never {\n  throw new Error('no store for region eu-9');\n}\n",
    );
    const verbose = await fleetscore(['schedules', 'apply', '--file', throwing, '--verbose'], cliEnv);
    expect(verbose.code).toBe(1);
    expect(verbose.stderr).toMatch(
      /caused by Error: no store for region eu-9\n\s+at fleetSchedules \(.*throws-verbose\.ts:3:/,
    );
  });
});
