/**
 * `fleetscore runs logs` through the real entry point, on a local store that a real run (planRun, scoreShard,
 * commitRun) committed with a broken model and a device without one: the durable logs answer which device failed,
 * why, and what the commit saw.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { keys } from '../../lib/shared/keys';
import type { Manifest } from '../../lib/scoring/manifest';
import { LocalStore } from '../../lib/store/local-store';
import { fleetscore, STACK_TRACE } from '../support/fleetscore-cli';
import { runWindow } from '../support/run-window';

jest.setTimeout(120_000);

const WINDOW = '2026-11-21T11';

let dir: string;
let manifest: Manifest;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-runs-logs-'));
  const store = new LocalStore(dir);
  await seedDemoFleet(store, { devices: 12, sensors: 2, hours: 1, endMs: Date.UTC(2026, 10, 21, 12), seed: 5 });
  // dev-00004's model bytes are not ONNX; dev-00012 loses its model, so its rows belong to an unknown device.
  await store.put(keys.modelOnnx('dev-00004', 'v0001'), Buffer.from('#!/bin/sh\necho not a model\n'));
  const index = JSON.parse(Buffer.from(await store.get(keys.modelIndex())).toString()) as {
    devices: Record<string, unknown>;
  };
  delete index.devices['dev-00012'];
  await store.put(keys.modelIndex(), JSON.stringify(index));
  ({ manifest } = await runWindow(store, WINDOW, { shardSize: 5 }));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('prints every shard attempt and the commit of the committed run, in order', async () => {
  const { code, stdout } = await fleetscore(['runs', 'logs', WINDOW, '--store', dir]);
  expect(code).toBe(0);
  const lines = stdout.trimEnd().split('\n');
  expect(lines[0]).toMatch(/^time\s+level\s+unit\s+attempt\s+event\s+details$/);
  const started = lines.filter((l) => / attempt-started /.test(l));
  expect(started.map((l) => l.split(/\s+/)[2])).toEqual(['0', '1', '2', 'commit']);
  expect(lines.at(-1)).toMatch(/ commit +1 +attempt-completed .*scored=10/);
});

test('--device and --level narrow the events; --json prints them as stored', async () => {
  const failed = await fleetscore(['runs', 'logs', WINDOW, '--store', dir, '--device', 'dev-00004', '--json']);
  expect(failed.code).toBe(0);
  const events = failed.stdout
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(events).toEqual([
    expect.objectContaining({
      event: 'device-failed',
      level: 'error',
      device: 'dev-00004',
      shard: 0,
      runId: manifest.runId,
      file: keys.modelOnnx('dev-00004', 'v0001'),
    }),
  ]);

  const warnings = await fleetscore(['runs', 'logs', WINDOW, '--store', dir, '--level', 'warn']);
  expect(warnings.stdout).toMatch(/ commit +1 +unknown-device +device=dev-00012 reason=rows but no model/);
  expect(warnings.stdout).not.toMatch(/attempt-started/);
});

test('a window without a commit, or a bad flag, is a message and exit 1', async () => {
  const none = await fleetscore(['runs', 'logs', '2026-11-21T05', '--store', dir]);
  expect(none.code).toBe(1);
  expect(none.stderr).toMatch(/window 2026-11-21T05 has no manifest .*name one with --run/);
  const level = await fleetscore(['runs', 'logs', WINDOW, '--store', dir, '--level', 'debug']);
  expect(level.code).toBe(1);
  expect(level.stderr).toMatch(/--level: /);
  expect(`${none.stderr}${level.stderr}`).not.toMatch(STACK_TRACE);
});
