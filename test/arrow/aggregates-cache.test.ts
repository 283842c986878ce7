/**
 * A worker's cache of parsed parts weighs each part by what it holds: its Arrow, the arrays decoded from it, and the
 * feature columns converted to floats as devices ask for them (an int64 count holds as much again as its Arrow), so
 * the cache stays within its bytes however the columns are typed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Float32, Int64, Table, tableToIPC, TimestampMillisecond, Utf8, vectorFromArray } from 'apache-arrow';
import { AggregatesCache } from '../../lib/arrow/aggregates-cache';
import { readAggregatesPart } from '../../lib/arrow/aggregates-part';
import { RowsArena } from '../../lib/arrow/device-rows';
import { keys } from '../../lib/shared/keys';
import { parseWindow } from '../../lib/shared/window';
import { LocalStore } from '../../lib/store/local-store';
import type { ObjectStore } from '../../lib/store/object-store';

const window = parseWindow('2026-11-21T12');
const ROWS = 1000;

/** A part of one device's ROWS rows: an int64 count and a float32 reading. */
function part(device: string): Uint8Array {
  const i = Array.from({ length: ROWS }, (_, j) => j);
  return tableToIPC(
    new Table({
      device_id: vectorFromArray(
        i.map(() => device),
        new Utf8(),
      ),
      ts: vectorFromArray(
        i.map((j) => window.startMs + j * 1000),
        new TimestampMillisecond(),
      ),
      count: vectorFromArray(
        i.map((j) => BigInt(j)),
        new Int64(),
      ),
      reading: vectorFromArray(
        i.map((j) => j / 2),
        new Float32(),
      ),
    }),
    'file',
  );
}

it('counts a part by its Arrow, its decoded arrays, and each feature converted to floats once', () => {
  const p = readAggregatesPart('p.arrow', part('a'));
  // Timestamps (8 bytes a row) and runs come on top of the Arrow.
  expect(p.heldBytes).toBeGreaterThanOrEqual(p.byteLength + ROWS * 8);
  const before = p.heldBytes;
  let grew = 0;
  p.onGrow = () => grew++;
  // A float32 column is read as it is: nothing more held.
  p.feature('reading');
  expect([p.heldBytes, grew]).toEqual([before, 0]);
  // An int64 column becomes a Float64Array of its rows, once.
  p.feature('count');
  expect([p.heldBytes, grew]).toEqual([before + ROWS * 8, 1]);
  p.feature('count');
  expect([p.heldBytes, grew]).toEqual([before + ROWS * 8, 1]);
});

describe('the cache', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetscore-parts-cache-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('weighs a part again when its features are converted, and evicts the oldest to stay within its bytes', async () => {
    const local = new LocalStore(dir);
    const [a, b] = [keys.aggregatesPart(window.id, 0), keys.aggregatesPart(window.id, 1)];
    await local.put(a, part('a'));
    await local.put(b, part('b'));
    const reads: string[] = [];
    // The local store, its reads recorded.
    const store = Object.create(local) as ObjectStore;
    store.get = (k) => (reads.push(k), local.get(k));
    const held = readAggregatesPart('p', part('a')).heldBytes;
    // Room for both parts as read, not for both with their counts converted.
    const cache = new AggregatesCache(2 * held + ROWS * 4);
    const arena = new RowsArena();
    const first = await cache.window(store, window, [a], 'run-1');
    const second = await cache.window(store, window, [b], 'run-1');
    expect(reads).toEqual([a, b]);
    // Both held: read again from the cache.
    await cache.window(store, window, [a, b], 'run-1');
    expect(reads).toEqual([a, b]);
    // Converting b's count (8 bytes a row) takes the cache past its bytes: a, the least recently used, goes.
    expect(second.device('b', ['count', 'reading'], arena)!.rows).toBe(ROWS);
    await cache.window(store, window, [b], 'run-1');
    expect(reads).toEqual([a, b]);
    await cache.window(store, window, [a], 'run-1');
    expect(reads).toEqual([a, b, a]);
    expect(first.device('a', ['reading'], arena)!.rows).toBe(ROWS);
  });
});
