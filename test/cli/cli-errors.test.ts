/**
 * Invalid command lines and an unreachable server: the real `fleetscore` entry point in a child process, as a user
 * runs it. Every case must exit 1 with one `fleetscore:` message that names the argument as typed (or the address,
 * namespace and where they came from) and what to do, and no stack trace (that needs `--verbose`).
 */
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetscore, STACK_TRACE } from '../support/fleetscore-cli';

jest.setTimeout(60_000);

test.each([
  [['runs', 'start', '--window', '2026-13-01T00'], /^fleetscore: --window: not a window: "2026-13-01T00"/],
  [['runs', 'start', '2026-11-21T12:30:00Z'], /^fleetscore: WINDOW: .*does not fall on a whole UTC hour/],
  [
    ['runs', 'start', '2026-11-21T12', '--shard-size', '0'],
    /^fleetscore: --shard-size: must be a whole number of at least 1, got "0"\n/,
  ],
  [['runs', 'show', 'BAD'], /^fleetscore: WINDOW: not a window: "BAD" \(expected YYYY-MM-DDTHH/],
  [['runs', 'show'], /^fleetscore: WINDOW: is required\n\(`fleetscore runs show --help` shows the usage\)\n$/],
  [['runs', 'list', '--limit', 'abc'], /^fleetscore: --limit: must be a whole number of at least 1, got "abc"\n/],
  [['predictions', 'show', '--window', '2026-11-21T12', '2026-11-21T13'], /name different windows/],
  [['worker', '--pool', 'tpu'], /^fleetscore: --pool: must be one of cpu, gpu, got "tpu"/],
  [['demo', 'seed', '--devices', '-5', '--sensors', '2', '--hours', '1'], /^fleetscore: --devices: must be a whole/],
  [
    ['backfill', '--schedule', 'x"; drop', '--from', '2026-11-21T12', '--to', '2026-11-21T14'],
    /^fleetscore: --schedule: /,
  ],
  [
    ['backfill', '--schedule', 'fleetscore-hourly', '--from', '2026-11-21T12', '--to', '2026-11-21T10'],
    /^fleetscore: --to: /,
  ],
  [['frobnicate'], /^fleetscore: unknown command 'frobnicate'\n\(`fleetscore --help` shows the usage\)/],
  [['runs', 'list', '--bogus'], /^fleetscore: unknown option '--bogus'\n\(`fleetscore runs list --help` shows/],
  [['schedules', 'describe'], /^fleetscore: missing required argument 'id'/],
  [['runs', 'list', '--store', 's3://AKIA:secret@bucket'], /must not contain credentials/],
])('fleetscore %j fails with one prefixed message, exit 1 and no stack trace', async (args, message) => {
  // No server at this address: every case must fail before connecting.
  const { code, stdout, stderr } = await fleetscore(args, { TEMPORAL_ADDRESS: '127.0.0.1:9' });
  expect(code).toBe(1);
  expect(stdout).toBe('');
  expect(stderr).toMatch(message);
  for (const line of stderr.trimEnd().split('\n')) expect(line).toMatch(/^(fleetscore: |\(`fleetscore|  )/);
  expect(stderr).not.toMatch(STACK_TRACE);
  expect(stderr).not.toContain('secret@');
});

describe('a server that does not answer', () => {
  const unreachable = (via: string) =>
    new RegExp(
      `^fleetscore: cannot reach Temporal at 127\\.0\\.0\\.1:9 \\(namespace (\\S+); ${via}\\): ` +
        'connection refused: nothing listens on that port\\.\\n  Start a local dev server with `npm start`',
    );

  it.each([
    [['schedules', 'list'], {}],
    [['runs', 'start', '2026-11-21T12', '--json'], {}],
    [['backfill', '--schedule', 'fleetscore-hourly', '--from', '2026-11-21T12', '--to', '2026-11-21T13'], {}],
    [['worker', '--pool', 'cpu'], {}],
  ])('fleetscore %j names the address, the namespace and their sources', async (args) => {
    const { code, stdout, stderr } = await fleetscore(args, { TEMPORAL_ADDRESS: '127.0.0.1:9' });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(unreachable('address from TEMPORAL_ADDRESS, namespace from the default'));
    expect(stderr).not.toMatch(STACK_TRACE);
  });

  it('says when both come from a profile of the config file', async () => {
    const file = join(tmpdir(), `fleetscore-profile-${process.pid}.toml`);
    await writeFile(file, '[profile.prod]\naddress = "127.0.0.1:9"\nnamespace = "fleet-eu"\n');
    const { code, stderr } = await fleetscore(['schedules', 'list'], {
      TEMPORAL_ADDRESS: undefined,
      TEMPORAL_NAMESPACE: undefined,
      TEMPORAL_CONFIG_FILE: file,
      TEMPORAL_PROFILE: 'prod',
    }).finally(() => rm(file, { force: true }));
    expect(code).toBe(1);
    expect(stderr).toMatch(unreachable(`both from profile "prod" of ${file.replace(/[.]/g, '\\.')}`));
    expect(stderr).toContain('(namespace fleet-eu;');
  });
});
