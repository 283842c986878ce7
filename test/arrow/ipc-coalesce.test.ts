/**
 * A part of many small record batches read as one (lib/arrow/ipc-coalesce.ts): every column's values and nulls as
 * apache-arrow reads them batch by batch, in the file and stream formats, uncompressed, LZ4- and ZSTD-compressed, with
 * large strings and string views joined as plain strings; the same
 * device rows through the aggregates reader; and the parts it leaves to apache-arrow (few batches, a dictionary,
 * a nested column, a damaged footer).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Bool,
  compressionRegistry,
  CompressionType,
  Dictionary,
  Field,
  Float32,
  Float64,
  Int32,
  Int64,
  List,
  RecordBatchFileWriter,
  RecordBatchStreamWriter,
  Table,
  TimestampMicrosecond,
  TimestampMillisecond,
  Utf8,
  vectorFromArray,
  type Vector,
} from 'apache-arrow';
import { compress as lz4Compress } from 'lz4js';
import { partFromShared, readAggregatesPart, readSharedPart } from '../../lib/arrow/aggregates-part';
import { gatherDeviceRows } from '../../lib/arrow/device-rows';
import { COALESCE_MIN_BATCHES, coalescedTable } from '../../lib/arrow/ipc-coalesce';
import { readIpcTable, registerIpcCodecs } from '../../lib/arrow/ipc-reader';
import { parseWindow } from '../../lib/shared/window';

const window = parseWindow('2026-11-21T12');
/** Batches of uneven lengths (not multiples of 8: validity bits land mid-byte), one device each. */
const LENGTHS = [1, 7, 60, 13, 0, 60, 9, 2, 31, 60, 5, 17, 60, 3, 60, 11, 8, 60, 1, 23];

/** The columns of a part: every type a joined column takes, nulls in some. */
const TYPES = {
  device_id: new Utf8(),
  ts: new TimestampMillisecond('UTC'),
  s00: new Float32(),
  s01: new Float64(),
  count: new Int64(),
  code: new Int32(),
  ok: new Bool(),
  site: new Utf8(),
  at: new TimestampMicrosecond(),
};
type Columns = Record<keyof typeof TYPES, unknown[]>;

/** One device's `n` rows, with nulls where `(i + seed) % 5 === 0` in the nullable columns. */
function rowsOf(device: string, n: number, seed: number): Columns {
  const i = Array.from({ length: n }, (_, j) => j);
  const holed = <T>(f: (j: number) => T) => i.map((j) => ((j + seed) % 5 === 0 ? null : f(j)));
  return {
    device_id: i.map(() => device),
    ts: i.map((j) => window.startMs + (seed * 100 + j) * 1_000),
    s00: holed((j) => j * 0.5 + seed),
    s01: i.map((j) => Math.sin(j + seed)),
    count: holed((j) => BigInt(j * 1_000_003 + seed)),
    code: i.map((j) => j - seed),
    ok: holed((j) => (j + seed) % 3 === 0),
    site: holed((j) => `site-${(j * seed) % 7}é`),
    at: i.map((j) => window.startMs + j * 1_000 + 0.5),
  };
}

/** A table of one record batch holding `columns`. */
function tableOf(columns: Columns): Table {
  const names = Object.keys(TYPES) as (keyof typeof TYPES)[];
  return new Table(Object.fromEntries(names.map((k) => [k, vectorFromArray(columns[k], TYPES[k])])));
}

/** One device's batch (devices dev-0 to dev-3 in turn) per length. */
function manyBatches(lengths: readonly number[] = LENGTHS): Table {
  const [first, ...rest] = lengths.map((n, k) => tableOf(rowsOf(`dev-${k % 4}`, n, k)));
  return first!.concat(...rest);
}

/** The rows of {@link manyBatches} in one record batch. */
function oneBatch(lengths: readonly number[] = LENGTHS): Table {
  const all = lengths.map((n, k) => rowsOf(`dev-${k % 4}`, n, k));
  const names = Object.keys(TYPES) as (keyof typeof TYPES)[];
  return tableOf(Object.fromEntries(names.map((k) => [k, all.flatMap((c) => c[k])])) as Columns);
}

/** Every column's type, as apache-arrow names it. */
function typesOf(table: Table): string[] {
  return table.schema.fields.map((f) => String(f.type));
}

/** Every column's values, nulls included, as apache-arrow reads them. */
function columns(table: Table): Record<string, unknown[]> {
  return Object.fromEntries(table.schema.fields.map((f) => [f.name, [...table.getChild(f.name)!]]));
}

beforeAll(() => registerIpcCodecs());

describe.each(['file', 'stream'] as const)('the %s format', (format) => {
  const Writer = format === 'file' ? RecordBatchFileWriter : RecordBatchStreamWriter;

  it("joins many batches into one with every column's values and nulls as apache-arrow reads them", () => {
    const bytes = Writer.writeAll(manyBatches()).toUint8Array(true);
    const reference = readIpcTable(bytes);
    expect(reference.batches.length).toBeGreaterThanOrEqual(COALESCE_MIN_BATCHES);
    const joined = coalescedTable(bytes)!;
    expect(joined.batches).toHaveLength(1);
    expect(joined.numRows).toBe(LENGTHS.reduce((a, b) => a + b, 0));
    expect(typesOf(joined)).toEqual(typesOf(reference));
    expect(columns(joined)).toEqual(columns(reference));
    expect(joined.getChild('s00')!.nullCount).toBe(reference.getChild('s00')!.nullCount);
  });

  it('joins LZ4-frame compressed batches', () => {
    // apache-arrow writes compressed IPC through the registry's encoder; fleetscore only registers decoders.
    const codec = compressionRegistry.get(CompressionType.LZ4_FRAME)!;
    compressionRegistry.set(CompressionType.LZ4_FRAME, { ...codec, encode: (data) => lz4Compress(data) });
    const lengths = LENGTHS.map((n) => n * 20);
    const bytes = Writer.writeAll(manyBatches(lengths), { compressionType: CompressionType.LZ4_FRAME }).toUint8Array(
      true,
    );
    expect(Buffer.from(bytes).includes(Buffer.from([0x04, 0x22, 0x4d, 0x18]))).toBe(true); // an LZ4 frame's magic
    const joined = coalescedTable(bytes)!;
    expect(joined.batches).toHaveLength(1);
    expect(columns(joined)).toEqual(columns(readIpcTable(bytes)));
  });
});

test("joins ZSTD-compressed batches as pyarrow writes them, pandas' large strings and polars' string views as Utf8", () => {
  // Written by pyarrow 26 (scripts/make-arrow-fixtures.py): 200 rows of 20 devices in 20 batches; device_id a
  // large_string, site a string_view of short (inline) and long values with nulls, s00 null every 7th row.
  const bytes = readFileSync(join(__dirname, '..', 'fixtures', 'arrow', 'many-batches-zstd.arrow'));
  const reference = readIpcTable(bytes);
  expect(reference.batches).toHaveLength(20);
  // The columns other than the strings keep their types; large strings and views are joined as Utf8.
  const kept = ['Timestamp<MILLISECOND, UTC>', 'Float32', 'Int64'];
  expect(typesOf(reference)).toEqual(['LargeUtf8', ...kept, 'Utf8View']);
  const joined = coalescedTable(bytes)!;
  expect(joined.batches).toHaveLength(1);
  expect(typesOf(joined)).toEqual(['Utf8', ...kept, 'Utf8']);
  expect(columns(joined)).toEqual(columns(reference));
  expect(joined.getChild('s00')!.nullCount).toBe(29);
  expect(joined.getChild('site')!.get(1)).toBe('north-sector-compressor-1');
  expect(joined.getChild('site')!.nullCount).toBe(23);
});

test('a part of many batches gives the same device rows as the same rows in one batch, taken by another thread too', () => {
  const many = manyBatches();
  const one = oneBatch();
  expect(one.batches).toHaveLength(1);
  const manyBytes = RecordBatchFileWriter.writeAll(many).toUint8Array(true);
  const joined = readAggregatesPart('many.arrow', manyBytes);
  // As another shard thread takes it from the one that read it: the joined table's own Arrow, in shared memory.
  const taken = partFromShared(readSharedPart('many.arrow', manyBytes).shared);
  const single = readAggregatesPart('one.arrow', RecordBatchFileWriter.writeAll(one).toUint8Array(true));
  const range = { startMs: window.startMs, endMs: window.endMs };
  for (const device of ['dev-0', 'dev-1', 'dev-2', 'dev-3']) {
    const b = gatherDeviceRows([single], device, ['s01', 'code'], range);
    for (const part of [joined, taken]) {
      const a = gatherDeviceRows([part], device, ['s01', 'code'], range);
      expect(a.rows).toBeGreaterThan(0);
      expect([a.rows, [...a.ts], [...a.x]]).toEqual([b.rows, [...b.ts], [...b.x]]);
    }
  }
});

test('parts it leaves to apache-arrow: few batches, a dictionary column, a nested column, a damaged footer', () => {
  const few = RecordBatchFileWriter.writeAll(manyBatches(LENGTHS.slice(0, COALESCE_MIN_BATCHES - 1))).toUint8Array(
    true,
  );
  expect(coalescedTable(few)).toBeUndefined();

  const withColumn = (name: string, make: (n: number) => Vector) => {
    const tables = LENGTHS.map((n, k) => tableOf(rowsOf(`dev-${k}`, n, k)).assign(new Table({ [name]: make(n) })));
    return RecordBatchStreamWriter.writeAll(tables[0]!.concat(...tables.slice(1))).toUint8Array(true);
  };
  const dictionary = withColumn('kind', (n) =>
    vectorFromArray(
      Array.from({ length: n }, (_, j) => (j % 2 ? 'a' : 'b')),
      new Dictionary(new Utf8(), new Int32()),
    ),
  );
  expect(readIpcTable(dictionary).batches.length).toBeGreaterThanOrEqual(COALESCE_MIN_BATCHES);
  expect(coalescedTable(dictionary)).toBeUndefined();
  const nested = withColumn('readings', (n) =>
    vectorFromArray(
      Array.from({ length: n }, (_, j) => [j, j + 1]),
      new List(new Field('item', new Float64())),
    ),
  );
  expect(coalescedTable(nested)).toBeUndefined();

  // A footer whose record-batch block points nowhere: apache-arrow reads (or refuses) the part, not this.
  const bytes = RecordBatchFileWriter.writeAll(manyBatches()).toUint8Array(true);
  const damaged = bytes.slice();
  const footerLength = new DataView(damaged.buffer).getInt32(damaged.length - 10, true);
  damaged.fill(0xff, damaged.length - 10 - footerLength, damaged.length - 10);
  expect(coalescedTable(damaged)).toBeUndefined();
});
