/**
 * Freshness on S3 (a real MinIO): a warm worker fails a deleted or replaced model as a fresh worker does, finding
 * the files by one listing per shard that covers only the shard's devices' model files (ListObjectsV2 from the first
 * of them), never a listing of all of `models/`.
 */
import { randomBytes } from 'node:crypto';
import { readIndex } from '../../lib/models/model-index';
import { keys } from '../../lib/shared/keys';
import { S3Store } from '../../lib/store/s3-store';
import {
  expectWarmFailsAsFresh,
  recording,
  scoreRun,
  seedFreshnessFleet,
  warmDeps,
  type Calls,
} from '../support/model-freshness-scenario';
import { useS3Server } from '../support/s3-server';

const server = useS3Server();
const opened: S3Store[] = [];

afterAll(() => {
  for (const store of opened) store.destroy();
});

test.each([
  ['stacked', true],
  ['one session per model', false],
])('a warm worker (%s) fails a deleted or replaced model as a fresh worker does', async (_m, batching) => {
  const store = S3Store.fromUri(`s3://${server().bucket}/fresh-${randomBytes(3).toString('hex')}`);
  opened.push(store);
  await seedFreshnessFleet(store);
  const index = await readIndex(store);
  const calls: Calls = { onnxReads: [], listObjects: [], listRange: [] };
  await expectWarmFailsAsFresh(store, recording(store, calls, { listRange: true }), calls, batching);
  expect(calls.listObjects).toEqual([]);
  // One listing per shard and run (two warm runs of one shard), from its first device's files to its last's.
  const range = `${keys.modelMeta('dev-00001', index.devices['dev-00001']!.version)}..${keys.modelOnnx('dev-00004', index.devices['dev-00004']!.version)}`;
  expect(calls.listRange).toEqual([range, range]);
});

test('each shard lists the range of its own devices, and no shard lists all of models/', async () => {
  const store = S3Store.fromUri(`s3://${server().bucket}/shards-${randomBytes(3).toString('hex')}`);
  opened.push(store);
  await seedFreshnessFleet(store);
  const { devices } = await readIndex(store);
  const calls: Calls = { onnxReads: [], listObjects: [], listRange: [] };
  const deps = warmDeps(store, recording(store, calls, { listRange: true }));
  try {
    const outcomes = await scoreRun(store, 'run-1', deps, 2);
    expect(Object.values(outcomes).map((o) => o.status)).toEqual(['scored', 'scored', 'scored', 'scored']);
    const json = (d: string) => keys.modelMeta(d, devices[d]!.version);
    const onnx = (d: string) => keys.modelOnnx(d, devices[d]!.version);
    expect(calls.listRange).toEqual([
      `${json('dev-00001')}..${onnx('dev-00002')}`,
      `${json('dev-00003')}..${onnx('dev-00004')}`,
    ]);
    expect(calls.listObjects).toEqual([]);
  } finally {
    await deps.sessions.close();
  }
});
