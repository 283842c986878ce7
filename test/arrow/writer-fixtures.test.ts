/**
 * One window's aggregates as other writers write them by default (scripts/make-arrow-fixtures.py: polars 2.1 with its
 * Utf8View ids and Categorical, pandas 3.1's feather, a DuckDB 2.0 aggregation, and each one's Parquet), read to the
 * same rows: ids, times and features, a count among them (Int64; DuckDB's SUM makes it a decimal128(38, 0) in
 * Arrow and a double in Parquet); and the same rows keyed by integer serial numbers, as pandas writes them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readAggregatesPart, WindowAggregates } from '../../lib/arrow/aggregates';
import { partFromShared, readSharedPart, type AggregatesPart } from '../../lib/arrow/aggregates-part';
import { parseWindow } from '../../lib/shared/window';

const DIR = join(__dirname, '..', 'fixtures', 'arrow');
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as {
  window: string;
  devices: Record<string, [number, number, number, number][]>;
};
const FEATURES = ['s0', 's1', 'events'];

/**
 * The part as one shard thread reads it for the others and another takes it (lib/scoring/part-exchange.ts): in
 * shared memory, compressed and Parquet parts as the uncompressed Arrow IPC of their table.
 */
function takenFromAnotherThread(file: string, bytes: Uint8Array): AggregatesPart {
  const { shared } = readSharedPart(file, bytes);
  for (const a of [shared.ipc, shared.ts, shared.runStart, shared.deviceRuns])
    expect(a.buffer).toBeInstanceOf(SharedArrayBuffer);
  return partFromShared(structuredClone(shared));
}

const READS = [
  ['', readAggregatesPart],
  [', taken from another thread', takenFromAnotherThread],
] as const;

describe.each(READS)('%s', (_, read) => {
  it.each([
    'polars-default.arrow',
    'polars-categorical.arrows',
    'pandas-default.feather',
    'duckdb-aggregates.arrow',
    'polars-default.parquet',
    'pandas-default.parquet',
    'duckdb-aggregates.parquet',
  ])('reads %s to the rows its writer was given', (file) => {
    const part = read(file, readFileSync(join(DIR, file)));
    expect([...part.devices].sort()).toEqual(Object.keys(expected.devices).sort());
    const window = new WindowAggregates(parseWindow(expected.window), [part]);
    for (const [device, rows] of Object.entries(expected.devices)) {
      const got = window.device(device, FEATURES)!;
      expect(Array.from(got.ts)).toEqual(rows.map((r) => r[0]));
      expect(Array.from(got.x)).toEqual(Array.from(Float32Array.from(rows.flatMap((r) => r.slice(1)))));
    }
  });
});

const serials = JSON.parse(readFileSync(join(DIR, 'expected-serial.json'), 'utf8')) as Record<string, string>;

it.each(['pandas-serial-ids.feather', 'pandas-serial-ids.parquet', 'pandas-serial-categorical.feather'])(
  'reads %s: integer device ids (int64, one past 2^53, or a category of them) as their decimal strings',
  (file) => {
    const part = readAggregatesPart(file, readFileSync(join(DIR, file)));
    expect([...part.devices].sort()).toEqual(Object.keys(serials).sort());
    const window = new WindowAggregates(parseWindow(expected.window), [part]);
    for (const [serial, device] of Object.entries(serials)) {
      const rows = expected.devices[device]!;
      const got = window.device(serial, FEATURES)!;
      expect(Array.from(got.ts)).toEqual(rows.map((r) => r[0]));
      expect(Array.from(got.x)).toEqual(Array.from(Float32Array.from(rows.flatMap((r) => r.slice(1)))));
    }
  },
);
