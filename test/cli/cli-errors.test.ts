/**
 * Invalid command lines: the real `fleetscore` entry point in a child process, as a user runs it. Every case must
 * exit 1 with a message that names what is wrong, and no stack trace (that needs `--verbose`).
 */
import { fleetscore, STACK_TRACE } from '../support/fleetscore-cli';

jest.setTimeout(60_000);

test.each([
  [['runs', 'start', '--window', '2026-13-01T00'], /not a window: "2026-13-01T00"/],
  [['runs', 'start', '--window', '2026-11-21T12:30:00Z'], /does not fall on a whole UTC hour/],
  [['runs', 'start', '--window', '2026-11-21T12', '--shard-size', '0'], /--shardSize: .*(>0|positive|too small)/i],
  [['runs', 'show'], /missing required argument 'window'/],
  [['worker', '--pool', 'tpu'], /--pool: /],
  [['demo', 'seed', '--devices', '-5', '--sensors', '2', '--hours', '1'], /--devices: /],
  [['backfill', '--schedule', 'x"; drop', '--from', '2026-11-21T12', '--to', '2026-11-21T14'], /--schedule: /],
  [['backfill', '--schedule', 'fleetscore-hourly', '--from', '2026-11-21T12', '--to', '2026-11-21T10'], /--to: /],
  [['frobnicate'], /unknown command 'frobnicate'/],
  [['runs', 'list', '--store', 's3://AKIA:secret@bucket'], /must not contain credentials/],
])('fleetscore %j fails with a message, exit 1 and no stack trace', async (args, message) => {
  // No server at this address: every case must fail before connecting.
  const { code, stderr } = await fleetscore(args, { TEMPORAL_ADDRESS: '127.0.0.1:9' });
  expect(code).toBe(1);
  expect(stderr).toMatch(message);
  expect(stderr).not.toMatch(STACK_TRACE);
  expect(stderr).not.toContain('secret@');
});
