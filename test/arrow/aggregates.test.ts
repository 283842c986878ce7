/**
 * The aggregates reader: a part read and indexed per device, every whole-file and per-device refusal, and a window
 * read from the store. One file on purpose (about 380 lines): the cases share the table builders above them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Bool,
  DateDay,
  Decimal,
  Dictionary,
  Float16,
  Float32,
  Float64,
  Int16,
  Int32,
  Int64,
  Int8,
  makeData,
  makeVector,
  Uint32,
  Uint64,
  Uint8,
  type RecordBatch,
  Table,
  tableToIPC,
  TimestampMicrosecond,
  TimestampMillisecond,
  TimestampNanosecond,
  TimestampSecond,
  Utf8,
  Utf8View,
  vectorFromArray,
  type DataType,
  type Vector,
} from 'apache-arrow';
import {
  loadWindowAggregates,
  readAggregatesPart,
  WindowAggregates,
  type AggregatesPart,
} from '../../lib/arrow/aggregates';
import { RowsArena } from '../../lib/arrow/device-rows';
import { keys } from '../../lib/shared/keys';
import { LocalStore } from '../../lib/store/local-store';
import { parseWindow } from '../../lib/shared/window';
import { InvalidAggregates } from '../../lib/shared/errors';

const window = parseWindow('2026-11-21T12');
const T0 = window.startMs;
const MIN = 60_000;
const FEATURES = ['s00', 's01'];

interface Rows {
  device: (string | null)[];
  /** Epoch ms (converted to the timestamp unit of the column). */
  ts: (number | null)[];
  s00: (number | null)[];
  s01: (number | null)[];
}

type Unit = 's' | 'ms' | 'us' | 'ns';
const TS_TYPES: Record<Unit, () => DataType> = {
  s: () => new TimestampSecond('UTC'),
  ms: () => new TimestampMillisecond('UTC'),
  us: () => new TimestampMicrosecond(),
  ns: () => new TimestampNanosecond('Europe/Berlin'),
};
const PER_MS: Record<Unit, bigint> = { s: 0n, ms: 1n, us: 1000n, ns: 1000000n };

/** A table written with apache-arrow's own builders, as any producer would. */
function table(
  rows: Rows,
  opts: { dictionary?: boolean | Dictionary; idType?: DataType; unit?: Unit; s01Type?: DataType; omit?: string[] } = {},
): Table {
  const unit = opts.unit ?? 'ms';
  const idType =
    opts.idType ??
    (opts.dictionary instanceof Dictionary
      ? opts.dictionary
      : opts.dictionary
        ? new Dictionary(new Utf8(), new Int32())
        : new Utf8());
  const columns: Record<string, Vector> = {
    device_id: vectorFromArray(rows.device, idType),
    // Arrow's timestamp builders take epoch ms and store the column's unit.
    ts: vectorFromArray(rows.ts, TS_TYPES[unit]()),
    s00: vectorFromArray(rows.s00, new Float32()),
    s01: vectorFromArray(rows.s01, opts.s01Type ?? new Float64()),
  };
  for (const name of opts.omit ?? []) delete columns[name];
  return new Table(columns);
}

/** `n` rows of `device`, one per minute from `from` minutes into the window, s00 = base + i, s01 = -(base + i). */
function deviceRows(device: string, n: number, base: number, from = 0): Rows {
  const idx = Array.from({ length: n }, (_, i) => i);
  return {
    device: idx.map(() => device),
    ts: idx.map((i) => T0 + (from + i) * MIN),
    s00: idx.map((i) => base + i),
    s01: idx.map((i) => -(base + i)),
  };
}

function concat(...parts: Rows[]): Rows {
  return {
    device: parts.flatMap((p) => p.device),
    ts: parts.flatMap((p) => p.ts),
    s00: parts.flatMap((p) => p.s00),
    s01: parts.flatMap((p) => p.s01),
  };
}

function part(file: string, t: Table, format: 'file' | 'stream' = 'file'): AggregatesPart {
  return readAggregatesPart(file, tableToIPC(t, format));
}

/** Typed array values as a plain array, with -0 read as 0. */
function nums(a: ArrayLike<number>): number[] {
  return Array.from(a, (v) => (v === 0 ? 0 : v));
}

function thrown(fn: () => unknown): InvalidAggregates {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidAggregates);
    return err as InvalidAggregates;
  }
  throw new Error('expected InvalidAggregates');
}

describe('readAggregatesPart + WindowAggregates.device', () => {
  it.each([
    ['file', false],
    ['stream', false],
    ['file', true],
    ['stream', true],
  ] as const)('round-trips a device across runs and parts (IPC %s, dictionary ids: %s)', (format, dictionary) => {
    const rows = concat(deviceRows('dev-a', 3, 0), deviceRows('dev-b', 2, 100), deviceRows('dev-a', 2, 3, 3));
    const a = part('p0', table(rows, { dictionary }), format);
    const b = part('p1', table(deviceRows('dev-a', 1, 5, 5), { dictionary }), format);
    expect(a.rows).toBe(7);
    expect(a.devices).toEqual(['dev-a', 'dev-b']);
    expect(a.featureNames).toEqual(['s00', 's01']);
    const agg = new WindowAggregates(window, [a, b]);
    expect(agg.devices().sort()).toEqual(['dev-a', 'dev-b']);

    const got = agg.device('dev-a', FEATURES)!;
    expect(got.rows).toBe(6);
    expect(Array.from(got.ts)).toEqual([0, 1, 2, 3, 4, 5].map((i) => T0 + i * MIN));
    expect(nums(got.x)).toEqual([0, 1, 2, 3, 4, 5].flatMap((i) => [i, i === 0 ? 0 : -i]));
    expect(got.droppedOutsideWindow).toBe(0);

    // Feature order follows the request, not the file.
    const swapped = agg.device('dev-b', ['s01', 's00'])!;
    expect(nums(swapped.x)).toEqual([-100, 100, -101, 101]);
    expect(agg.device('dev-zzz', FEATURES)).toBeUndefined();
  });

  it('reads dictionary ids across record batches with different dictionaries (stream format)', () => {
    const dictionary = new Dictionary(new Utf8(), new Int32(), 0);
    const t1 = table(concat(deviceRows('dev-a', 2, 0), deviceRows('dev-b', 2, 10)), { dictionary });
    const t2 = table(concat(deviceRows('dev-c', 1, 20), deviceRows('dev-a', 2, 2, 2)), { dictionary });
    const bytes = tableToIPC(new Table([...t1.batches, ...t2.batches] as RecordBatch[]), 'stream');
    const p = readAggregatesPart('multi', bytes);
    expect(p.devices).toEqual(['dev-a', 'dev-b', 'dev-c']);
    expect(new Set(p.runBatch)).toEqual(new Set([0, 1]));
    const agg = new WindowAggregates(window, [p]);
    expect(nums(agg.device('dev-a', ['s00'])!.x)).toEqual([0, 1, 2, 3]);
    expect(nums(agg.device('dev-c', ['s01'])!.x)).toEqual([-20]);
  });

  it.each([
    ['Utf8View', () => new Utf8View()],
    ['a Dictionary of Utf8View', () => new Dictionary(new Utf8View(), new Uint32())],
  ])('reads device ids written as %s (polars), short ids held in the view and long ones in a data buffer', (_, ids) => {
    // Over 12 bytes: a view names the data buffer and offset of the id instead of holding it.
    const long = 'turbine-north-sector-0001';
    const rows = concat(deviceRows('dev-a', 3, 0), deviceRows(long, 2, 100), deviceRows(`${long}-b`, 1, 50));
    for (const format of ['file', 'stream'] as const) {
      const p = part('p0', table(concat(rows, deviceRows('dev-a', 2, 3, 3)), { idType: ids() }), format);
      expect(p.devices).toEqual(['dev-a', long, `${long}-b`]);
      const agg = new WindowAggregates(window, [p]);
      expect(nums(agg.device('dev-a', ['s00'])!.x)).toEqual([0, 1, 2, 3, 4]);
      expect(nums(agg.device(long, ['s00'])!.x)).toEqual([100, 101]);
      expect(nums(agg.device(`${long}-b`, ['s01'])!.x)).toEqual([-50]);
    }
  });

  it.each([
    ['Int64', () => new Int64(), [0n, 7n, 2n ** 40n]],
    ['Int32', () => new Int32(), [0, 7, -3]],
    ['Int8', () => new Int8(), [0, 7, -3]],
    ['Uint8', () => new Uint8(), [0, 7, 255]],
    ['Float16', () => new Float16(), [0, 7.5, -3]],
  ])('reads a %s feature as floats, as pandas and polars write counts', (_, type, values) => {
    const t = new Table({
      device_id: vectorFromArray(['d', 'd', 'd'], new Utf8()),
      ts: vectorFromArray([T0, T0 + MIN, T0 + 2 * MIN], new TimestampMillisecond('UTC')),
      count: vectorFromArray(values, type()),
    });
    const got = new WindowAggregates(window, [part('p', t)]).device('d', ['count'])!;
    expect(nums(got.x)).toEqual(values.map(Number));
  });

  it.each([
    [128, 0],
    [128, 2],
    [256, 3],
  ])('reads a %i-bit decimal feature of scale %i as floats, as DuckDB writes a SUM', (bitWidth, scale) => {
    // -425, 7 and 3 * 2^70 + 1 in two's complement 32-bit words, least significant first.
    const ints = [-425n, 7n, 3n * 2n ** 70n + 1n];
    const per = bitWidth / 32;
    const words = new Uint32Array(ints.length * per);
    ints.forEach((v, i) => {
      for (let k = 0; k < per; k++) words[i * per + k] = Number(BigInt.asUintN(32, v >> BigInt(32 * k)));
    });
    const type = new Decimal(scale, 38, bitWidth);
    const t = new Table({
      device_id: vectorFromArray(['d', 'd', 'd'], new Utf8()),
      ts: vectorFromArray([T0, T0 + MIN, T0 + 2 * MIN], new TimestampMillisecond('UTC')),
      total: makeVector(makeData({ type, length: 3, nullCount: 0, data: words })),
    });
    const got = new WindowAggregates(window, [part('p', t)]).device('d', ['total'])!;
    expect(nums(got.x)).toEqual(ints.map((v) => Math.fround(Number(v) / 10 ** scale)));
  });

  it('names a null in an integer feature like a null float', () => {
    const t = new Table({
      device_id: vectorFromArray(['d', 'd'], new Utf8()),
      ts: vectorFromArray([T0, T0 + MIN], new TimestampMillisecond('UTC')),
      count: vectorFromArray([1n, null], new Int64()),
    });
    const err = thrown(() => new WindowAggregates(window, [part('p', t)]).device('d', ['count']));
    expect([err.file, err.device, err.field]).toEqual(['p', 'd', 'count']);
    expect(err.message).toMatch(/feature "count" is null at /);
  });

  it.each(['s', 'ms', 'us', 'ns'] as const)('reads Timestamp(%s) as epoch milliseconds', (unit) => {
    const t = table(deviceRows('d', 3, 0), { unit });
    const raw = (t.getChild('ts')!.data[0]!.values as BigInt64Array)[0]!;
    expect(raw).toBe(unit === 's' ? BigInt(T0 / 1000) : BigInt(T0) * PER_MS[unit]);
    const agg = new WindowAggregates(window, [part('p', t)]);
    expect(Array.from(agg.device('d', FEATURES)!.ts)).toEqual([T0, T0 + MIN, T0 + 2 * MIN]);
  });

  it('gathers into a shared arena exactly what it gathers alone, one device not overwriting another', () => {
    // 1,200 devices of 60 rows: more than one slab of `ts` (65,536 values), so one device crosses into a new buffer.
    const ids = Array.from({ length: 1200 }, (_, d) => `dev-${d}`);
    const agg = new WindowAggregates(window, [part('p0', table(concat(...ids.map((id, d) => deviceRows(id, 60, d)))))]);
    const arena = new RowsArena();
    const shared = ids.map((id) => agg.device(id, FEATURES, arena)!);
    ids.forEach((id, d) => {
      const alone = agg.device(id, FEATURES)!;
      expect(Array.from(shared[d]!.ts)).toEqual(Array.from(alone.ts));
      expect(Array.from(shared[d]!.tsNanos)).toEqual(Array.from(alone.tsNanos));
      expect(nums(shared[d]!.x)).toEqual(nums(alone.x));
      expect(shared[d]!.x[0]).toBe(d);
    });
    expect(new Set(shared.map((r) => r.ts.buffer)).size).toBe(2);
  });

  it("gives a released arena's buffers to the next arena, whose rows are its own devices' exactly", () => {
    const ids = Array.from({ length: 300 }, (_, d) => `dev-${d}`);
    const agg = new WindowAggregates(window, [part('p0', table(concat(...ids.map((id, d) => deviceRows(id, 60, d)))))]);
    const first = new RowsArena();
    const before = ids.slice(0, 150).map((id) => agg.device(id, FEATURES, first)!);
    first.release();
    const next = new RowsArena();
    // Other devices, in the reverse order: every value of the reused buffers is written again.
    const after = ids
      .slice(150)
      .reverse()
      .map((id) => agg.device(id, FEATURES, next)!);
    expect(after[0]!.ts.buffer).toBe(before[0]!.ts.buffer);
    expect(after[0]!.x.buffer).toBe(before[0]!.x.buffer);
    after.forEach((rows) => {
      const alone = agg.device(rows.device, FEATURES)!;
      expect(Array.from(rows.ts)).toEqual(Array.from(alone.ts));
      expect(Array.from(rows.tsNanos)).toEqual(Array.from(alone.tsNanos));
      expect(nums(rows.x)).toEqual(nums(alone.x));
    });
  });

  it('sorts rows by ts when a writer did not', () => {
    const rows = deviceRows('d', 4, 0);
    const order = [2, 0, 3, 1];
    const shuffled: Rows = {
      device: order.map((i) => rows.device[i]!),
      ts: order.map((i) => rows.ts[i]!),
      s00: order.map((i) => rows.s00[i]!),
      s01: order.map((i) => rows.s01[i]!),
    };
    const got = new WindowAggregates(window, [part('p', table(shuffled))]).device('d', FEATURES)!;
    expect(Array.from(got.ts)).toEqual([0, 1, 2, 3].map((i) => T0 + i * MIN));
    expect(nums(got.x)).toEqual([0, 0, 1, -1, 2, -2, 3, -3]);
  });

  it('drops and counts rows outside [startMs, endMs)', () => {
    const rows = deviceRows('d', 3, 0);
    rows.ts = [window.startMs - 1, window.startMs, window.endMs];
    const got = new WindowAggregates(window, [part('p', table(rows))]).device('d', FEATURES)!;
    expect(got.rows).toBe(1);
    expect(Array.from(got.ts)).toEqual([window.startMs]);
    expect(nums(got.x)).toEqual([1, -1]);
    expect(got.droppedOutsideWindow).toBe(2);
  });

  it('accepts nulls in feature columns a device does not use', () => {
    const rows = deviceRows('d', 2, 0);
    rows.s01 = [null, null];
    expect(Array.from(new WindowAggregates(window, [part('p', table(rows))]).device('d', ['s00'])!.x)).toEqual([0, 1]);
  });
});

describe('InvalidAggregates: whole-file problems', () => {
  const good = () => tableToIPC(table(deviceRows('d', 3, 0)), 'file');

  it('names the file for bytes that are not Arrow', () => {
    const err = thrown(() => readAggregatesPart('aggregates/window=x/part-00000.arrow', new Uint8Array(64).fill(7)));
    expect(err.file).toBe('aggregates/window=x/part-00000.arrow');
    expect(err.message).toContain('aggregates/window=x/part-00000.arrow');
    expect(err.device).toBeUndefined();
  });

  it('rejects empty bytes', () => {
    expect(thrown(() => readAggregatesPart('empty', new Uint8Array())).message).toMatch(/empty/);
  });

  it('rejects a truncated IPC file', () => {
    const bytes = good();
    for (const cut of [bytes.length - 1, bytes.length >> 1, 12]) {
      const err = thrown(() => readAggregatesPart('trunc', bytes.subarray(0, cut)));
      expect(err.file).toBe('trunc');
      expect(err.message).toMatch(/truncated/);
    }
  });

  it('rejects a truncated IPC stream, also one cut at a message boundary', () => {
    const t = table(deviceRows('d', 3, 0));
    const two = new Table([...t.batches, ...t.batches] as RecordBatch[]);
    const bytes = tableToIPC(two, 'stream');
    const oneBatch = tableToIPC(t, 'stream');
    // Dropping the end-of-stream marker of a valid stream leaves a shorter stream that arrow reads happily.
    for (const cut of [bytes.length - 8, oneBatch.length - 8, bytes.length - 20, 30]) {
      const err = thrown(() => readAggregatesPart('trunc.stream', bytes.subarray(0, cut)));
      expect(err.file).toBe('trunc.stream');
    }
  });

  it('requires a device_id column of strings or integers', () => {
    const missing = thrown(() => part('f', table(deviceRows('d', 1, 0), { omit: ['device_id'] })));
    expect([missing.file, missing.field]).toEqual(['f', 'device_id']);
    for (const type of [new Float64(), new Bool()]) {
      const wrong = thrown(() =>
        part(
          'f',
          new Table({
            device_id: vectorFromArray([1], type),
            ts: vectorFromArray([T0], new TimestampMillisecond()),
          }),
        ),
      );
      expect(wrong.field).toBe('device_id');
      expect(wrong.message).toMatch(new RegExp(`has type ${String(type)}, expected a string .* an integer`));
    }
  });

  it.each([
    ['Int8', () => new Int8(), [-7, 0, 127]],
    ['Int16', () => new Int16(), [-300, 0, 32767]],
    ['Uint32', () => new Uint32(), [0, 1, 4294967295]],
    ['Int64', () => new Int64(), [-(2n ** 63n), 9007199254740993n, 2n ** 63n - 1n]],
    ['Uint64', () => new Uint64(), [0n, 2n ** 32n, 2n ** 64n - 1n]],
    ['a Dictionary of Int64', () => new Dictionary(new Int64(), new Int8()), [-1n, 10234n, 9007199254740993n]],
  ])('reads %s device ids as their decimal strings, across record batches', (_, type, ids) => {
    // Two rows of device d in each batch, its rows in batches of the other devices between: equal ids join across
    // them. Minute m of the window has s00 = 10 d + m.
    const idType = type();
    const batch = (id: number | bigint, d: number, m: number) =>
      new Table({
        device_id: vectorFromArray([id, id], idType),
        ts: vectorFromArray([T0 + m * MIN, T0 + (m + 1) * MIN], new TimestampMillisecond()),
        s00: vectorFromArray([10 * d + m, 10 * d + m + 1], new Float32()),
      }).batches[0]!;
    // 6 batches (read by apache-arrow batch by batch) and 18 (joined into one first: ipc-coalesce.ts).
    for (const halves of [2, 6]) {
      const batches = Array.from({ length: halves }, (_, h) => ids.map((id, d) => batch(id, d, 2 * h))).flat();
      // Each batch its own dictionary: the stream format allows that, the file format does not.
      const format = idType instanceof Dictionary ? 'stream' : 'file';
      const p = part('serials', new Table(batches as RecordBatch[]), format);
      expect([...p.devices].sort()).toEqual(ids.map(String).sort());
      const agg = new WindowAggregates(window, [p]);
      ids.forEach((id, d) => {
        const minutes = Array.from({ length: 2 * halves }, (_, m) => 10 * d + m);
        expect(nums(agg.device(String(id), ['s00'])!.x)).toEqual(minutes);
      });
    }
  });

  it('refuses a Utf8View device id whose view points outside the data buffers, naming the file and column', () => {
    const long = 'turbine-north-sector-0001';
    const bytes = tableToIPC(table(deviceRows(long, 1, 0), { idType: new Utf8View() }), 'file');
    // The view: length 25, the first 4 bytes, then the data buffer's index, which is made one the batch lacks.
    const view = Buffer.from(bytes).indexOf(Buffer.concat([Buffer.from([25, 0, 0, 0]), Buffer.from('turb')]));
    expect(view).toBeGreaterThan(0);
    bytes[view + 8] = 9;
    const err = thrown(() => readAggregatesPart('f', bytes));
    expect([err.file, err.field]).toEqual(['f', 'device_id']);
    expect(err.message).toMatch(/column device_id is corrupt: .*row 0's view points outside the batch's data buffers/);
  });

  it('requires a Timestamp ts column, saying how to write epoch numbers, strings and dates as one', () => {
    const missing = thrown(() => part('f', table(deviceRows('d', 1, 0), { omit: ['ts'] })));
    expect([missing.file, missing.field]).toEqual(['f', 'ts']);
    for (const [ts, hint] of [
      [vectorFromArray([T0], new Float64()), /expected Timestamp: a number does not say its unit .*unit='ms'/],
      [vectorFromArray([BigInt(T0)], new Int64()), /expected Timestamp: a number does not say its unit/],
      [vectorFromArray(['2026-11-21 12:00:00'], new Utf8()), /expected Timestamp: strings are not parsed/],
      [vectorFromArray([T0], new DateDay()), /expected Timestamp: a date has no time of day/],
      [vectorFromArray([true], new Bool()), /has type Bool, expected Timestamp$/],
    ] as const) {
      const wrong = thrown(() => part('f', new Table({ device_id: vectorFromArray(['d'], new Utf8()), ts })));
      expect([wrong.file, wrong.field]).toEqual(['f', 'ts']);
      expect(wrong.message).toMatch(hint);
    }
  });

  it('rejects null device ids (the rows cannot be attributed)', () => {
    const rows = deviceRows('d', 2, 0);
    rows.device[1] = null;
    const err = thrown(() => part('f', table(rows)));
    expect([err.file, err.device, err.field]).toEqual(['f', undefined, 'device_id']);
  });

  it('fails every requested device, naming the file, when a window has an unreadable part', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetscore-aggregates-'));
    try {
      const store = new LocalStore(dir);
      await store.put(keys.aggregatesPart(window.id, 0), tableToIPC(table(deviceRows('a', 2, 0)), 'file'));
      await store.put(keys.aggregatesPart(window.id, 1), new Uint8Array(40).fill(1));
      const agg = await loadWindowAggregates(store, window);
      expect(agg.failedParts.map((e) => e.file)).toEqual([keys.aggregatesPart(window.id, 1)]);
      for (const device of ['a', 'b']) {
        const err = thrown(() => agg.device(device, FEATURES));
        expect([err.file, err.device]).toEqual([keys.aggregatesPart(window.id, 1), device]);
      }

      // Device-partitioned: `a` is whole in the readable part and scored; `b` may be in the unreadable one.
      const partitioned = new WindowAggregates(window, agg.parts, agg.failedParts, 'device-partitioned');
      expect(partitioned.device('a', FEATURES)!.rows).toBe(2);
      const err = thrown(() => partitioned.device('b', FEATURES));
      expect([err.file, err.device]).toEqual([keys.aggregatesPart(window.id, 1), 'b']);
      expect(err.message).toMatch(/no readable part holds rows of this device/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails a device found in two parts when the layout is device-partitioned, naming both files', () => {
    const p0 = part('p0', table(concat(deviceRows('a', 2, 0), deviceRows('b', 2, 0))));
    const p1 = part('p1', table(deviceRows('a', 2, 10, 5)));
    const partitioned = new WindowAggregates(window, [p0, p1], [], 'device-partitioned');
    const err = thrown(() => partitioned.device('a', FEATURES));
    expect([err.file, err.device, err.field]).toEqual(['p1', 'a', 'device_id']);
    expect(err.message).toMatch(/also in p0/);
    expect(partitioned.device('b', FEATURES)!.rows).toBe(2);
    // The same parts under `any` are one device's rows spread over two files.
    expect(new WindowAggregates(window, [p0, p1]).device('a', FEATURES)!.rows).toBe(4);
  });
});

describe('InvalidAggregates: one device', () => {
  it('names file, device and field for a missing or non-numeric feature, and only fails devices in that file', () => {
    const p0 = part('p0', table(deviceRows('a', 2, 0), { omit: ['s01'] }));
    const p1 = part('p1', table(deviceRows('b', 2, 0), { s01Type: new Bool() }));
    const p2 = part('p2', table(deviceRows('c', 2, 0)));
    const agg = new WindowAggregates(window, [p0, p1, p2]);
    const missing = thrown(() => agg.device('a', FEATURES));
    expect([missing.file, missing.device, missing.field]).toEqual(['p0', 'a', 's01']);
    const notFloat = thrown(() => agg.device('b', FEATURES));
    expect([notFloat.file, notFloat.device, notFloat.field]).toEqual(['p1', 'b', 's01']);
    expect(notFloat.message).toMatch(/has type Bool, expected a float, integer or decimal type/);
    expect(agg.device('a', ['s00'])!.rows).toBe(2);
    expect(agg.device('c', FEATURES)!.rows).toBe(2);
  });

  it.each([
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
    ['null', null],
  ] as const)('names file, device, field and the ts of the first bad row for %s values', (what, bad) => {
    const a = deviceRows('a', 5, 0);
    a.s01[3] = bad;
    a.s01[1] = bad;
    const b = deviceRows('b', 5, 0);
    const agg = new WindowAggregates(window, [part('p', table(concat(a, b)))]);
    const err = thrown(() => agg.device('a', FEATURES));
    expect([err.file, err.device, err.field, err.ts]).toEqual(['p', 'a', 's01', T0 + MIN]);
    expect(err.message).toContain(what);
    expect(err.message).toContain(new Date(T0 + MIN).toISOString());
    expect(agg.device('b', FEATURES)!.rows).toBe(5);
  });

  it('gives a model that handles missing values its NaN and null values as NaN; an infinite value still fails', () => {
    const a = deviceRows('a', 4, 0);
    a.s01[1] = NaN;
    a.s00[2] = null;
    const agg = new WindowAggregates(window, [part('p', table(a))]);
    const got = agg.device('a', FEATURES, undefined, 'model')!;
    const k = FEATURES.length;
    const cell = (r: number, f: string) => got.x[r * k + FEATURES.indexOf(f)]!;
    expect([cell(1, 's01'), cell(2, 's00')]).toEqual([NaN, NaN]);
    expect(cell(0, 's01')).toBe(Math.fround(a.s01[0] as number));
    expect(thrown(() => agg.device('a', FEATURES)).message).toMatch(/feature "s01" is NaN at /);
    a.s01[3] = Infinity;
    const infinite = new WindowAggregates(window, [part('p', table(a))]);
    const err = thrown(() => infinite.device('a', FEATURES, undefined, 'model'));
    expect([err.file, err.device, err.field, err.ts]).toEqual(['p', 'a', 's01', T0 + 3 * MIN]);
  });

  it('ignores bad values in rows outside the window', () => {
    const a = deviceRows('a', 2, 0);
    a.ts[0] = window.endMs + MIN;
    a.s00[0] = NaN;
    expect(new WindowAggregates(window, [part('p', table(a))]).device('a', FEATURES)!.rows).toBe(1);
  });

  it('reports a null ts for the device', () => {
    const a = deviceRows('a', 2, 0);
    a.ts[1] = null;
    const agg = new WindowAggregates(window, [part('p', table(concat(a, deviceRows('b', 1, 0))))]);
    const err = thrown(() => agg.device('a', FEATURES));
    expect([err.file, err.device, err.field]).toEqual(['p', 'a', 'ts']);
    expect(agg.device('b', FEATURES)!.rows).toBe(1);
  });

  it('reports duplicate (device, ts) rows within a file and across files', () => {
    const twice = concat(deviceRows('a', 3, 0), deviceRows('a', 1, 9, 1));
    const within = new WindowAggregates(window, [part('p', table(twice))]);
    const err = thrown(() => within.device('a', FEATURES));
    expect([err.file, err.device, err.field, err.ts]).toEqual(['p', 'a', 'ts', T0 + MIN]);

    const across = new WindowAggregates(window, [
      part('p0', table(deviceRows('a', 3, 0))),
      part('p1', table(deviceRows('a', 1, 0, 2))),
    ]);
    const err2 = thrown(() => across.device('a', FEATURES));
    expect([err2.device, err2.field, err2.ts]).toEqual(['a', 'ts', T0 + 2 * MIN]);
    expect(err2.message).toMatch(/p0/);
    expect(err2.message).toMatch(/p1/);
  });
});

describe('loadWindowAggregates', () => {
  it('reads every part of the window from the store and keeps only parts with wanted devices', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetscore-aggregates-'));
    try {
      const store = new LocalStore(dir);
      await store.put(keys.aggregatesPart(window.id, 0), tableToIPC(table(deviceRows('a', 2, 0)), 'file'));
      const b = tableToIPC(table(deviceRows('b', 3, 0), { dictionary: true }), 'stream');
      await store.put(keys.aggregatesPart(window.id, 1), b);
      await store.put(keys.aggregatesPart('2026-11-21T13', 0), tableToIPC(table(deviceRows('a', 2, 0)), 'file'));
      const all = await loadWindowAggregates(store, window);
      expect(all.parts.map((p) => p.file)).toEqual([0, 1].map((i) => keys.aggregatesPart(window.id, i)));
      expect(all.device('b', FEATURES)!.rows).toBe(3);
      const onlyB = await loadWindowAggregates(store, window, { devices: new Set(['b']) });
      expect(onlyB.parts.map((p) => p.file)).toEqual([keys.aggregatesPart(window.id, 1)]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
