/**
 * Bad input at the level of one run, without servers: the real planRun, scoreShard and commitRun against a local
 * store seeded with a demo fleet, then broken on purpose. Each bad file, row or model must fail only the device
 * it concerns, with the file and field named, while the rest of the fleet is scored and the run commits. (The
 * Arrow and model readers' own error cases are in test/arrow and test/models; this is how they surface in a run.)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readAggregatesPart } from '../../lib/arrow/aggregates';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { keys } from '../../lib/shared/keys';
import { buildMahalanobisModel } from '../../lib/models/onnx-builder';
import { readIndex } from '../../lib/models/model-index';
import { sha256Hex } from '../../lib/models/model-registry';
import { LocalStore } from '../../lib/store/local-store';
import { parseWindow } from '../../lib/shared/window';
import { aggregatesPart, type PartRows } from '../support/aggregates-part';
import { copyModel } from '../support/copy-model';
import { runWindow as runWindowOf } from '../support/run-window';

jest.setTimeout(120_000);

const END_MS = Date.UTC(2026, 10, 21, 12);
const WINDOW = parseWindow('2026-11-21T11');

const runWindow = (store: LocalStore, options?: Parameters<typeof runWindowOf>[2]) =>
  runWindowOf(store, WINDOW.id, options);

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-bad-input-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function seeded(name: string, devices: number, devicesPerPart?: number): Promise<LocalStore> {
  const store = new LocalStore(join(dir, name));
  const options = { devices, sensors: 2, hours: 1, endMs: END_MS, seed: 3, anomalyRate: 0.02, devicesPerPart };
  await seedDemoFleet(store, options);
  return store;
}

/** An Arrow part of this test's window. */
const part = (rows: PartRows, columns: Record<string, 'float' | 'bool'>) => aggregatesPart(WINDOW, rows, columns);

/** Replaces a device's model.onnx and, unless `keepSha`, records the new bytes' sha256 as registration would. */
async function replaceModel(
  store: LocalStore,
  device: string,
  bytes: Uint8Array,
  { keepSha = false, meta = {} } = {},
): Promise<void> {
  await store.put(keys.modelOnnx(device, 'v0001'), bytes);
  const sha256 = keepSha ? undefined : sha256Hex(bytes);
  const old = JSON.parse(Buffer.from(await store.get(keys.modelMeta(device, 'v0001'))).toString()) as object;
  await store.put(keys.modelMeta(device, 'v0001'), JSON.stringify({ ...old, ...meta, ...(sha256 ? { sha256 } : {}) }));
  if (sha256) {
    const index = await readIndex(store);
    index.devices[device]!.sha256 = sha256;
    await store.put(keys.modelIndex(), JSON.stringify(index));
  }
}

test('every kind of bad data and bad model fails only its device, naming file and field; the rest is scored', async () => {
  const store = await seeded('mixed', 12);
  const minutes = Array.from({ length: 60 }, (_, i) => i);
  for (const d of ['dev-renamed', 'dev-typed', 'dev-nan', 'dev-inf', 'dev-null', 'dev-dup']) await copyModel(store, d);
  const part1 = keys.aggregatesPart(WINDOW.id, 1);
  const part2 = keys.aggregatesPart(WINDOW.id, 2);
  const part3 = keys.aggregatesPart(WINDOW.id, 3);
  // A renamed feature column (S01 for s01) next to an extra one, and rows of a device that has no model.
  const renamed = { s00: 'float', S01: 'float', humidity: 'float' } as const;
  await store.put(
    part1,
    part(
      [
        { device: 'dev-renamed', minutes },
        { device: 'dev-ghost', minutes },
      ],
      renamed,
    ),
  );
  // NaN, Infinity and null features, a duplicate row, and rows of a good device outside the window.
  const bad = (v: number | null) => ({ s00: [40, v, 41], s01: [40, 40, 40] });
  await store.put(
    part2,
    part(
      [
        { device: 'dev-nan', minutes: [0, 1, 2], values: bad(NaN) },
        { device: 'dev-inf', minutes: [0, 1, 2], values: bad(Infinity) },
        { device: 'dev-null', minutes: [0, 1, 2], values: bad(null) },
        { device: 'dev-dup', minutes: [0, 1, 1] },
        { device: 'dev-00002', minutes: [60, 61, -1] },
      ],
      { s00: 'float', s01: 'float', extra: 'float' },
    ),
  );
  // A feature column that is not numeric.
  await store.put(part3, part([{ device: 'dev-typed', minutes }], { s00: 'float', s01: 'bool' }));

  // Models: missing, not ONNX (a shell script), truncated, failing its sha256, a shape and an input name that do
  // not match model.json, and one that produces NaN scores.
  const good = await store.get(keys.modelOnnx('dev-00005', 'v0001'));
  await store.delete(keys.modelOnnx('dev-00003', 'v0001'));
  await replaceModel(store, 'dev-00004', new TextEncoder().encode('#!/bin/sh\necho pwned > /tmp/pwned\n'));
  await replaceModel(store, 'dev-00005', good.subarray(0, Math.floor(good.length / 2)));
  const flipped = Uint8Array.from(good);
  flipped[flipped.length - 1]! ^= 0xff;
  await replaceModel(store, 'dev-00006', flipped, { keepSha: true });
  const eye3 = [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ];
  await replaceModel(store, 'dev-00007', buildMahalanobisModel({ mean: [0, 0, 0], precision: eye3 }));
  await replaceModel(store, 'dev-00008', good, { meta: { input: { name: 'features' } } });
  // (x-m)ᵀP(x-m) with entries of ±3e38 overflows float32 to +Inf and -Inf, whose sum is NaN.
  const huge = 3e38;
  const nanPrecision = [
    [huge, -huge],
    [-huge, huge],
  ];
  await replaceModel(store, 'dev-00009', buildMahalanobisModel({ mean: [0, 0], precision: nanPrecision }));

  const { manifest, logs } = await runWindow(store, { shardSize: 5 });

  type Failed = { status: string; reason: string; file?: string; field?: string };
  const failed = (device: string) => manifest.devices[device] as Failed;
  const expectFailed = (device: string, error: string, file: string, field: string | undefined) => {
    expect(failed(device)).toMatchObject({ status: 'failed', file, ...(field ? { field } : {}) });
    expect(failed(device).reason).toMatch(new RegExp(`^${error}: `));
    expect(logs).toContain(`"device":"${device}"`);
  };
  expectFailed('dev-renamed', 'InvalidAggregates', part1, 's01');
  expectFailed('dev-typed', 'InvalidAggregates', part3, 's01');
  expect(failed('dev-typed').reason).toMatch(/has type Bool, expected a float, integer or decimal type/);
  expectFailed('dev-nan', 'InvalidAggregates', part2, 's00');
  expectFailed('dev-inf', 'InvalidAggregates', part2, 's00');
  expect(failed('dev-inf').reason).toMatch(/Infinity/);
  expectFailed('dev-null', 'InvalidAggregates', part2, 's00');
  expect(failed('dev-null').reason).toMatch(/null/);
  expectFailed('dev-dup', 'InvalidAggregates', part2, 'ts');
  expectFailed('dev-00003', 'ModelNotFound', keys.modelOnnx('dev-00003', 'v0001'), 'version');
  expectFailed('dev-00004', 'ModelSessionFailed', keys.modelOnnx('dev-00004', 'v0001'), undefined);
  expectFailed('dev-00005', 'ModelSessionFailed', keys.modelOnnx('dev-00005', 'v0001'), undefined);
  expectFailed('dev-00006', 'ModelChecksumMismatch', keys.modelOnnx('dev-00006', 'v0001'), 'sha256');
  expectFailed('dev-00007', 'ModelInferenceFailed', keys.modelOnnx('dev-00007', 'v0001'), 'input');
  expectFailed('dev-00008', 'ModelOutputMismatch', keys.modelOnnx('dev-00008', 'v0001'), 'input.name');
  expectFailed('dev-00009', 'ModelOutputMismatch', keys.modelOnnx('dev-00009', 'v0001'), 'output');
  expect(failed('dev-00009').reason).toMatch(/NaN/);

  // The rest of the fleet: scored, with every in-window row; rows outside the window dropped and logged.
  for (const d of ['dev-00001', 'dev-00002', 'dev-00010', 'dev-00011', 'dev-00012']) {
    expect(manifest.devices[d]).toMatchObject({ status: 'scored', rows: 60 });
  }
  expect(logs).toMatch(/"event":"rows-outside-window".*"device":"dev-00002","dropped":3/);
  expect(manifest.counts).toMatchObject({ devices: 18, scored: 5, failed: 13, noData: 0, rows: 300 });
  // Rows of a device without a model are not scored, and are listed where an operator sees them.
  expect(manifest.unknownDevices).toEqual({ count: 1, devices: ['dev-ghost'] });
  expect(logs).toMatch(/"unit":"commit".*"event":"unknown-device","level":"warn","device":"dev-ghost"/);
});

test('a truncated Arrow part fails every device of the window with the file named, and the run still commits', async () => {
  const store = await seeded('truncated', 4);
  const key = keys.aggregatesPart(WINDOW.id, 0);
  const bytes = await store.get(key);
  await store.put(key, bytes.subarray(0, bytes.length - 100));
  const { manifest } = await runWindow(store);
  expect(manifest.counts).toMatchObject({ devices: 4, failed: 4, scored: 0 });
  for (const outcome of Object.values(manifest.devices)) {
    expect(outcome).toMatchObject({ status: 'failed', file: key, reason: expect.stringMatching(/truncated/) });
  }
});

test('with device-partitioned aggregates, a truncated part fails only the devices it held; the rest is scored', async () => {
  const store = await seeded('truncated-partitioned', 600, 200);
  const parts = (await store.list(keys.aggregatesPrefix(WINDOW.id))).sort();
  expect(parts.length).toBeGreaterThan(1);
  const held = readAggregatesPart(parts[0]!, await store.get(parts[0]!)).devices;
  const bytes = await store.get(parts[0]!);
  await store.put(parts[0]!, bytes.subarray(0, bytes.length >> 1));
  const { manifest, logs } = await runWindow(store, { aggregatesLayout: 'device-partitioned', shardSize: 250 });
  expect(manifest.counts).toMatchObject({ devices: 600, failed: held.length, scored: 600 - held.length });
  for (const device of held) {
    expect(manifest.devices[device]).toMatchObject({ status: 'failed', file: parts[0] });
    expect(logs).toContain(`"device":"${device}"`);
  }
  const scored = Object.values(manifest.devices).filter((o) => o.status === 'scored');
  expect(scored).toHaveLength(600 - held.length);
});

test('an empty fleet (no models) commits an empty window and lists the devices the data holds', async () => {
  const store = await seeded('empty-fleet', 3);
  await store.put(keys.modelIndex(), JSON.stringify({ schema: 'fleetscore.index/v1', devices: {} }));
  const { manifest } = await runWindow(store);
  expect(manifest.counts).toEqual({ devices: 0, scored: 0, noData: 0, failed: 0, rows: 0, anomalies: 0 });
  expect(manifest.shards).toEqual([]);
  expect(manifest.unknownDevices).toEqual({ count: 3, devices: ['dev-00001', 'dev-00002', 'dev-00003'] });
});

test('an enormous shard (2,500 devices in one) scores every device and heartbeats all the way', async () => {
  const store = await seeded('enormous', 2500);
  const { manifest, beats } = await runWindow(store, { shardSize: 2500 });
  expect(manifest.shards).toHaveLength(1);
  expect(manifest.counts).toMatchObject({ devices: 2500, scored: 2500, rows: 2500 * 60 });
  // One heartbeat per 25 devices in each phase, plus one a second from the timer while models prepare.
  expect(beats).toBeGreaterThanOrEqual(100);
});
