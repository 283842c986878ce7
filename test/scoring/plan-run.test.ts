/**
 * How a plan cuts a pool into shards: shards of `shardSize`, except that a pool too small to fill the run's
 * parallel shards at that size is cut finer (down to MIN_SPLIT_SHARD devices a shard), so its shards run side by side.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { moveIndex } from '../../lib/models/model-index';
import { planRun, shardSizeFor } from '../../lib/scoring/plan-run';
import { MIN_SPLIT_SHARD } from '../../lib/shared/run-types';
import type { Pool } from '../../lib/shared/names';
import { LocalStore } from '../../lib/store/local-store';

const WINDOW = '2026-11-21T11';

let dir: string;
let store: LocalStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-plan-'));
  store = new LocalStore(dir);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An index of `cpu` cpu devices and `gpu` gpu devices (planning reads only the index, not the models). */
async function fleet(cpu: number, gpu = 0): Promise<void> {
  const device = (i: number) => `dev-${String(i).padStart(5, '0')}`;
  const move = (i: number, pool: Pool) => ({ device: device(i), version: 'v0001', sha256: 'ab'.repeat(32), pool });
  await moveIndex(store, [
    ...Array.from({ length: cpu }, (_, i) => move(i, 'cpu')),
    ...Array.from({ length: gpu }, (_, i) => move(cpu + i, 'gpu')),
  ]);
}

const sizes = (plan: { shards: { pool: string; devices: number }[] }) =>
  plan.shards.map((s) => `${s.pool}:${s.devices}`);

test('shardSizeFor keeps shardSize for large pools and without a parallelism, and never goes under the floor', () => {
  expect(shardSizeFor(10_000, 1000, 8)).toBe(1000);
  expect(shardSizeFor(8_000, 1000, 8)).toBe(1000);
  expect(shardSizeFor(4_000, 1000, 8)).toBe(500);
  expect(shardSizeFor(1_000, 1000, 8)).toBe(MIN_SPLIT_SHARD);
  expect(shardSizeFor(100, 1000, 8)).toBe(MIN_SPLIT_SHARD);
  expect(shardSizeFor(1_000, 1000, undefined)).toBe(1000);
  // A shard size the run asked for under the floor is kept: the floor only limits the cutting.
  expect(shardSizeFor(1_000, 10, 8)).toBe(10);
});

test('a 1,000-device fleet is planned in four shards of 250 when eight may run at once, in one without a parallelism', async () => {
  await fleet(1000);
  const split = await planRun(store, { store: store.uri, window: WINDOW, shardSize: 1000, maxParallelShards: 8 });
  expect(sizes(split)).toEqual(['cpu:250', 'cpu:250', 'cpu:250', 'cpu:250']);
  expect(split.devices).toBe(1000);
  const whole = await planRun(store, { store: store.uri, window: WINDOW, shardSize: 1000 });
  expect(sizes(whole)).toEqual(['cpu:1000']);
});

test('a 10,000-device fleet keeps shards of 1,000; a 2,000-device one with four at once gets four of 500', async () => {
  await fleet(10_000);
  const large = await planRun(store, { store: store.uri, window: WINDOW, shardSize: 1000, maxParallelShards: 8 });
  expect(large.shards).toHaveLength(10);
  expect(new Set(large.shards.map((s) => s.devices))).toEqual(new Set([1000]));

  await rm(dir, { recursive: true, force: true });
  store = new LocalStore(dir);
  await fleet(2_000);
  const four = await planRun(store, { store: store.uri, window: WINDOW, shardSize: 1000, maxParallelShards: 4 });
  expect(sizes(four)).toEqual(['cpu:500', 'cpu:500', 'cpu:500', 'cpu:500']);
});

test('each pool is cut by its own size, and every device is planned once', async () => {
  await fleet(900, 100);
  const plan = await planRun(store, { store: store.uri, window: WINDOW, shardSize: 1000, maxParallelShards: 8 });
  expect(sizes(plan)).toEqual(['cpu:250', 'cpu:250', 'cpu:250', 'cpu:150', 'gpu:100']);
  expect(plan.devices).toBe(1000);
});
