/**
 * Path traversal: every user-supplied path segment (device id, model version, window, run id) is validated
 * before it becomes part of a key, in the key builders, in registration, in a (tampered) shard plan, and in the
 * S3 store's prefix handling, which refuses a key before any request is made. The store contract
 * (test/store/store-contract.ts) covers raw keys for both stores.
 */
import { loadConfig } from '../../lib/config';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AggregatesCache } from '../../lib/arrow/aggregates-cache';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { keys, safeSegment } from '../../lib/shared/keys';
import { buildMahalanobisModel } from '../../lib/models/onnx-builder';
import { registerModel } from '../../lib/models/model-registry';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import type { ShardPlanFile } from '../../lib/scoring/manifest';
import { planRun } from '../../lib/scoring/plan-run';
import { scoreShard } from '../../lib/scoring/score-shard';
import { LocalStore } from '../../lib/store/local-store';
import { parseS3Uri, S3Store } from '../../lib/store/s3-store';
import { InvalidKey, InvalidPathSegment } from '../../lib/shared/errors';

const EVIL = [
  '..',
  '../etc',
  '../../../../etc/passwd',
  'a/b',
  'a\\b',
  '/abs',
  '.hidden',
  '',
  'dev\0x',
  'dev\n1',
  'dev%2f..',
  'dev..1',
  'C:evil',
  'x'.repeat(129),
];

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-traversal-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test.each(EVIL)('the segment %j is refused by every key builder', (value) => {
  expect(() => safeSegment('device id', value)).toThrow(InvalidPathSegment);
  expect(() => keys.modelOnnx(value, 'v0001')).toThrow(InvalidPathSegment);
  expect(() => keys.modelOnnx('dev-1', value)).toThrow(InvalidPathSegment);
  expect(() => keys.aggregatesPrefix(value)).toThrow(InvalidPathSegment);
  expect(() => keys.manifest(value)).toThrow(InvalidPathSegment);
  expect(() => keys.predictions('2026-11-21T12', value, 0)).toThrow(InvalidPathSegment);
  expect(() => keys.attemptLog('2026-11-21T12', value, 0, 1)).toThrow(InvalidPathSegment);
});

test('registration refuses a traversing device id before writing anything', async () => {
  const store = new LocalStore(join(dir, 'register'));
  const onnx = buildMahalanobisModel({ mean: [0], precision: [[1]] });
  const meta = {
    pool: 'cpu' as const,
    features: ['s00'],
    input: { name: 'X' },
    output: { name: 'score' },
    anomalyWhen: 'above' as const,
    threshold: 1,
  };
  for (const device of ['../escape', 'a/../../b']) {
    await expect(registerModel(store, { device, onnx, meta })).rejects.toBeInstanceOf(InvalidPathSegment);
  }
  expect(await store.list('')).toEqual([]);
  await expect(readdir(dir)).resolves.not.toContain('escape');
});

test('a tampered shard plan naming a traversing device fails that device only and writes nothing outside', async () => {
  const root = join(dir, 'tampered');
  const store = new LocalStore(join(root, 'store'));
  const endMs = Date.UTC(2026, 10, 21, 12);
  await seedDemoFleet(store, { devices: 2, sensors: 2, hours: 1, endMs, seed: 1 });
  const plan = await planRun(store, { store: store.uri, window: '2026-11-21T11', shardSize: 10, pool: 'cpu' });
  const planKey = keys.shardPlan('2026-11-21T11', plan.runId, 0);
  const file = JSON.parse(Buffer.from(await store.get(planKey)).toString()) as ShardPlanFile;
  file.devices.push({ device: '../../../outside', version: '../v0001', sha256: '0'.repeat(64) });
  await store.put(planKey, JSON.stringify(file));

  const sessions = new ModelSessionCache();
  const summary = await scoreShard(
    { store, sessions, aggregates: new AggregatesCache() },
    { store: store.uri, window: '2026-11-21T11', windowHours: 1, runId: plan.runId, shard: 0 },
    {
      attempt: 1,
      taskQueue: 't',
      workflowId: 'w',
      workflowRunId: 'r',
      heartbeat: () => undefined,
      log: { info: () => undefined, warn: () => undefined },
    },
  );
  await sessions.close();
  expect(summary).toMatchObject({ scored: 2, failed: 1 });
  expect(summary.failures[0]).toMatchObject({ device: '../../../outside', reason: /^InvalidPathSegment/ });
  expect(await readdir(root)).toEqual(['store']);
});

test('S3: a prefix or key that would leave the store prefix is refused before any request', async () => {
  expect(() => parseS3Uri('s3://fleet-bucket/../other-tenant', loadConfig({}))).toThrow(InvalidKey);
  expect(() => parseS3Uri('s3://fleet-bucket/a/./b', loadConfig({}))).toThrow(InvalidKey);
  // No server listens here: a request would fail with a network error, not InvalidKey.
  const store = new S3Store({
    bucket: 'fleet-bucket',
    prefix: 'tenant-a/',
    endpoint: 'http://127.0.0.1:9',
    forcePathStyle: true,
    region: 'us-east-1',
  });
  try {
    for (const key of ['../tenant-b/models/index.json', 'models/../../tenant-b/x', '/tenant-b/x']) {
      await expect(store.put(key, 'x')).rejects.toBeInstanceOf(InvalidKey);
      await expect(store.tryGet(key)).rejects.toBeInstanceOf(InvalidKey);
      await expect(store.delete(key)).rejects.toBeInstanceOf(InvalidKey);
    }
    await expect(store.list('../')).rejects.toBeInstanceOf(InvalidKey);
  } finally {
    store.destroy();
  }
});
