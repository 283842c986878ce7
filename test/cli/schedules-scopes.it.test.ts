/**
 * Schedules as code wherever the code lives, through the real `fleetscore` entry point against a real dev server:
 * copies of schedules/fleet-schedules.ts outside the repository, each with its own scope, apply side by side and
 * never delete each other's schedules; `list` and `describe` compare with `--file`; an edit made with the real
 * `temporal schedule update` (which drops fleetscore's record from the action memo) is reported field by field;
 * dry runs say "would"; a schedule paused by hand is reported.
 */
import { execFile } from 'node:child_process';
import Module from 'node:module';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { RUN_DEFAULTS } from '../../lib/shared/run-types';
import { requireTemporalCli } from '../../lib/temporal/temporal-cli';
import type { ApplyReport, ScheduleDetails, ScheduleListRow } from '../../cli/commands/schedules';
import { fleetscore, STACK_TRACE, type CliResult } from '../support/fleetscore-cli';
import { startTemporal } from '../support/temporal-env';

jest.setTimeout(180_000);

const ROOT = resolve(__dirname, '..', '..');
let env: TestWorkflowEnvironment;
let dir: string;
let cliEnv: NodeJS.ProcessEnv;
let eu: string;
let us: string;

/** A copy of schedules/fleet-schedules.ts with another scope, schedule id and pause state, written to `name`. */
async function copyOfDefaultFile(name: string, scope: string, id: string, paused: boolean): Promise<string> {
  const text = (await readFile(join(ROOT, 'schedules', 'fleet-schedules.ts'), 'utf8'))
    .replace("export const scope = 'default';", `export const scope = '${scope}';`)
    .replace("id: 'fleetscore-hourly'", `id: '${id}'`)
    .replace('paused: false', `paused: ${paused}`);
  expect(text).toContain(`'${scope}'`);
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** Runs the CLI and expects it to succeed, with nothing on stderr but `fleetscore:` notices. */
async function ok(args: string[]): Promise<CliResult> {
  const result = await fleetscore(args, cliEnv);
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  for (const line of result.stderr.split('\n').filter(Boolean)) expect(line).toMatch(/^fleetscore: /);
  return result;
}

const json = <T>(r: CliResult) => JSON.parse(r.stdout) as T;

beforeAll(async () => {
  env = await startTemporal();
  cliEnv = {
    TEMPORAL_ADDRESS: env.address,
    TEMPORAL_NAMESPACE: env.namespace ?? 'default',
    FLEETSCORE_STORE: join(tmpdir(), 'fleetscore-scopes-store'),
  };
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-scopes-'));
  eu = await copyOfDefaultFile('eu.ts', 'eu-fleet', 'eu-hourly', true);
  us = await copyOfDefaultFile('us.ts', 'us-fleet', 'us-hourly', false);
});

afterAll(async () => {
  await env?.teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('copies of the default file outside the repository apply side by side, each touching only its scope', async () => {
  const first = json<ApplyReport>(await ok(['schedules', 'apply', '--file', eu, '--json']));
  expect(first).toMatchObject({ scope: 'eu-fleet', dryRun: false, changes: [{ id: 'eu-hourly', action: 'created' }] });
  const second = json<ApplyReport>(await ok(['schedules', 'apply', '--file', us, '--json']));
  expect(second.changes).toEqual([expect.objectContaining({ id: 'us-hourly', action: 'created' })]);
  // Listing is eventually consistent: wait until both show, then neither file's apply deletes the other's.
  for (let i = 0; i < 50; i++) {
    const rows = json<ScheduleListRow[]>(await ok(['schedules', 'list', '--json']));
    if (rows.length >= 2) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const [file, id] of [
    [eu, 'eu-hourly'],
    [us, 'us-hourly'],
  ] as const) {
    expect(json<ApplyReport>(await ok(['schedules', 'apply', '--file', file, '--json'])).changes).toEqual([
      expect.objectContaining({ id, action: 'unchanged' }),
    ]);
  }

  // A plain apply (the default file, scope "default") would create its own and delete neither of them.
  const plain = await ok(['schedules', 'apply', '--dry-run']);
  expect(plain.stdout).toMatch(/^scope default \(schedules\/fleet-schedules\.ts\)\n/);
  expect(plain.stdout).toMatch(/fleetscore-hourly\s+would create\s+declared, not on the server/);
  expect(plain.stdout).not.toMatch(/eu-hourly|us-hourly/);
  expect(plain.stdout).toMatch(/\(dry run: nothing was changed\)$/m);
  expect(plain.stdout).not.toMatch(/\b(created|updated|deleted|reverted)\b/);

  // list and describe compare with the file given.
  const rows = json<ScheduleListRow[]>(await ok(['schedules', 'list', '--file', eu, '--json']));
  expect(rows).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ id: 'eu-hourly', scope: 'eu-fleet', declared: true, paused: true }),
      expect.objectContaining({ id: 'us-hourly', scope: 'us-fleet', paused: false }),
    ]),
  );
  expect(rows.find((r) => r.id === 'us-hourly')!.declared).toBeUndefined();
  const text = (await ok(['schedules', 'list', '--file', us])).stdout;
  expect(text).toMatch(/^SCHEDULE\s+SCOPE\s+DECLARED\s+STATE/);
  expect(text).toMatch(/us-hourly\s+us-fleet\s+yes\s+active/);
  expect(text).toMatch(/eu-hourly\s+eu-fleet\s+-\s+paused/);
  const details = json<ScheduleDetails>(await ok(['schedules', 'describe', 'eu-hourly', '--file', eu, '--json']));
  expect(details).toMatchObject({ scope: 'eu-fleet', matchesDeclaration: true, differences: [] });
});

test('a declared id held by another scope stops apply before anything changes', async () => {
  const clash = join(dir, 'clash.ts');
  await writeFile(
    clash,
    (await readFile(us, 'utf8'))
      .replace("scope = 'us-fleet'", "scope = 'apac-fleet'")
      .replace('us-hourly', 'eu-hourly'),
  );
  const { code, stdout, stderr } = await fleetscore(['schedules', 'apply', '--file', clash], cliEnv);
  expect(code).toBe(1);
  expect(stdout).toBe('');
  expect(stderr).toMatch(/^fleetscore: schedule "eu-hourly" belongs to scope "eu-fleet", not "apac-fleet"/);
  expect(stderr).toContain('Nothing was changed');
  expect(stderr).not.toMatch(STACK_TRACE);
});

test('an edit with `temporal schedule update` is reported field by field, then reverted by apply', async () => {
  // The real Temporal CLI, as an operator would: a new interval, and the action rewritten without fleetscore's memo.
  await promisify(execFile)(requireTemporalCli(), [
    'schedule',
    'update',
    '--address',
    env.address,
    '--namespace',
    env.namespace ?? 'default',
    '--schedule-id',
    'eu-hourly',
    '--interval',
    '2h',
    '--workflow-id',
    'eu-hourly',
    '--task-queue',
    'fleetscore-cpu',
    '--type',
    'scoringRun',
  ]);
  const details = json<ScheduleDetails>(await ok(['schedules', 'describe', 'eu-hourly', '--file', eu, '--json']));
  expect(details).toMatchObject({ matchesDeclaration: false, recordMissing: true });
  // Every field the CLI's update set differently, the ones it reset to its defaults too (the run input is gone).
  expect(details.differences).toEqual([
    {
      field: 'action.args[0]',
      declared: expect.objectContaining({ scheduleId: 'eu-hourly', shardSize: RUN_DEFAULTS.shardSize }),
    },
    { field: 'policies.catchupWindow', server: 365 * 24 * 3_600_000, declared: 7_200_000 },
    { field: 'policies.overlap', server: 'SKIP', declared: 'BUFFER_ONE' },
    { field: 'spec.intervals[0].every', server: 7_200_000, declared: 3_600_000 },
    { field: 'spec.intervals[0].offset', server: 0, declared: 300_000 },
    { field: 'spec.jitter', server: 0, declared: 30_000 },
  ]);
  const described = (await ok(['schedules', 'describe', 'eu-hourly', '--file', eu])).stdout;
  expect(described).toContain(
    `differs from its declaration in ${eu} (edited outside fleetscore): action.args[0] unset -> {`,
  );
  expect(described).toContain(
    'policies.catchupWindow 365d -> 2h, policies.overlap "SKIP" -> "BUFFER_ONE", spec.intervals[0].every 2h -> 1h, ' +
      'spec.intervals[0].offset 0s -> 5m, spec.jitter 0s -> 30s (server -> declared; `schedules apply` sets them)',
  );

  const dry = await ok(['schedules', 'apply', '--file', eu, '--dry-run']);
  expect(dry.stdout).toMatch(
    /eu-hourly\s+would update\s+edited outside fleetscore, its declaration record gone from the action memo: .*spec\.intervals\[0\]\.every 2h -> 1h/,
  );
  const applied = json<ApplyReport>(await ok(['schedules', 'apply', '--file', eu, '--json']));
  expect(applied.changes[0]).toMatchObject({ id: 'eu-hourly', action: 'updated' });
  expect(applied.changes[0]!.fields).toEqual(
    expect.arrayContaining([{ field: 'spec.intervals[0].every', server: 7_200_000, declared: 3_600_000 }]),
  );
  // The CLI's update also unpaused it; apply keeps a pause state set on the server, and says so.
  expect(applied.changes[0]!.notice).toBe(
    'eu-hourly runs though declared paused (unpaused by hand); `fleetscore schedules pause eu-hourly` pauses it',
  );
  const after = json<ScheduleDetails>(await ok(['schedules', 'describe', 'eu-hourly', '--file', eu, '--json']));
  expect(after).toMatchObject({ matchesDeclaration: true, differences: [], recordMissing: false, paused: false });
});

test('a schedule paused by hand though declared active is reported by apply and list', async () => {
  const paused = await ok(['schedules', 'pause', 'us-hourly', '--note', 'maintenance']);
  expect(paused.stdout).toBe('paused us-hourly; `fleetscore schedules unpause us-hourly` resumes it\n');
  const apply = await ok(['schedules', 'apply', '--file', us]);
  expect(apply.stdout).toMatch(/us-hourly\s+unchanged\s+matches its declaration/);
  expect(apply.stderr).toBe(
    'fleetscore: us-hourly is paused on the server ("maintenance") though declared active: no runs start; ' +
      '`fleetscore schedules unpause us-hourly` resumes it (missed windows: `fleetscore backfill`)\n',
  );
  const list = await ok(['schedules', 'list', '--file', us]);
  expect(list.stderr).toContain('fleetscore: us-hourly is paused ("maintenance"): no runs start until unpaused');
});

test('a schedule that does not exist is one message and exit 1', async () => {
  const { code, stderr } = await fleetscore(['schedules', 'describe', 'nope'], cliEnv);
  expect(code).toBe(1);
  expect(stderr).toBe(
    'fleetscore: no schedule "nope" on the server; `fleetscore schedules list --all` lists the schedules there, ' +
      '`fleetscore schedules apply` creates the declared ones\n',
  );
});

test('the bin run from the folder of an outside file resolves fleetscore/schedules (Node 22.15+), or says why not', async () => {
  const run = promisify(execFile);
  const hooks = typeof (Module as unknown as { registerHooks?: unknown }).registerHooks === 'function';
  const result = await run(process.execPath, [join(ROOT, 'cli', 'fleetscore.cjs'), 'schedules', 'apply'], {
    cwd: dir,
    env: { ...process.env, ...cliEnv },
  }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
  // Without --file from another folder: the default file of the checkout, whatever the working directory.
  expect(result.code).toBe(0);
  const outside = await run(
    process.execPath,
    [join(ROOT, 'cli', 'fleetscore.cjs'), 'schedules', 'apply', '--file', 'eu.ts', '--dry-run', '--json'],
    { cwd: dir, env: { ...process.env, ...cliEnv } },
  ).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
  if (hooks) {
    expect(outside.code).toBe(0);
    expect((JSON.parse(outside.stdout) as ApplyReport).scope).toBe('eu-fleet');
  } else {
    expect(outside.code).toBe(1);
    expect(outside.stderr).toContain('outside the fleetscore checkout (that needs Node 22.15 or later)');
  }
});
