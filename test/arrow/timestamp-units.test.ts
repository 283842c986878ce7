import {
  Float32,
  Table,
  tableFromIPC,
  tableToIPC,
  TimestampMicrosecond,
  TimestampMillisecond,
  TimestampNanosecond,
  TimeUnit,
  Utf8,
  vectorFromArray,
  type DataType,
} from 'apache-arrow';
import { readAggregatesPart, WindowAggregates } from '../../lib/arrow/aggregates';
import {
  decodePredictions,
  encodePredictionsAs,
  PredictionsBuilder,
  readPredictions,
} from '../../lib/arrow/predictions';
import { parseWindow } from '../../lib/shared/window';

const window = parseWindow('2026-11-21T12');
const T0 = window.startMs;

/** A part with one device's rows at `ns` nanoseconds past T0, in a ts column of `type` (raw int64 values). */
function part(file: string, type: DataType, perNs: bigint, ns: bigint[]): ReturnType<typeof readAggregatesPart> {
  const raw = BigInt64Array.from(ns, (n) => (BigInt(T0) * 1_000_000n + n) / perNs);
  const ts = vectorFromArray(
    Array.from(ns, () => 0),
    type,
  );
  (ts.data[0]!.values as BigInt64Array).set(raw);
  const table = new Table({
    device_id: vectorFromArray(
      ns.map(() => 'd'),
      new Utf8(),
    ),
    ts,
    s00: vectorFromArray(
      ns.map((_, i) => i),
      new Float32(),
    ),
  });
  return readAggregatesPart(file, tableToIPC(table, 'file'));
}

describe('timestamps of any unit, kept exactly', () => {
  it('reads microsecond and nanosecond times exactly: 1 ns apart is two rows, sorted, not a duplicate', () => {
    const ns = [500_123_456_789n, 500_123_456_788n, 500_123_457_789n];
    const agg = new WindowAggregates(window, [part('p', new TimestampNanosecond(), 1n, ns)]);
    const rows = agg.device('d', ['s00'])!;
    expect(Array.from(rows.ts)).toEqual([T0 + 500_123, T0 + 500_123, T0 + 500_123]);
    expect(Array.from(rows.tsNanos)).toEqual([456_788, 456_789, 457_789]);
    expect(Array.from(rows.x)).toEqual([1, 0, 2]);
    expect(agg.tsType).toEqual({ unit: TimeUnit.NANOSECOND, timezone: null });

    const same = new WindowAggregates(window, [part('q', new TimestampNanosecond(), 1n, [7n, 7n])]);
    expect(() => same.device('d', ['s00'])).toThrow(/two rows have the same ts 2026-11-21T12:00:00\.000000007Z/);
  });

  it('takes the finest unit of a window and UTC when the parts disagree on the zone', () => {
    const us = part('us', new TimestampMicrosecond('UTC'), 1000n, [1000n]);
    const ms = part('ms', new TimestampMillisecond('Europe/Berlin'), 1_000_000n, [2_000_000n]);
    expect(new WindowAggregates(window, [us]).tsType).toEqual({ unit: TimeUnit.MICROSECOND, timezone: 'UTC' });
    expect(new WindowAggregates(window, [ms, us]).tsType).toEqual({ unit: TimeUnit.MICROSECOND, timezone: 'UTC' });
    expect(new WindowAggregates(window, [ms]).tsType).toEqual({
      unit: TimeUnit.MILLISECOND,
      timezone: 'Europe/Berlin',
    });
  });

  it.each(['arrow', 'parquet'] as const)(
    'writes predictions in the input unit and zone, exactly (%s)',
    async (format) => {
      const agg = new WindowAggregates(window, [
        part('p', new TimestampMicrosecond('UTC'), 1000n, [1_000n, 61_000_123_000n]),
      ]);
      const rows = agg.device('d', ['s00'])!;
      const builder = new PredictionsBuilder(agg.tsType);
      builder.append('d', 'v0001', rows.ts, Float32Array.of(0.5, 9), Uint8Array.of(0, 1), rows.tsNanos);
      const bytes = encodePredictionsAs(builder.columns(), format);
      const decoded = readPredictions(bytes, 'f');
      expect(decoded.tsType).toEqual({ unit: TimeUnit.MICROSECOND, timezone: 'UTC' });
      expect(Array.from(decoded.ts)).toEqual(Array.from(rows.ts));
      expect(Array.from(decoded.tsNanos!)).toEqual([1_000, 123_000]);
      expect(Array.from(decoded.score)).toEqual([0.5, 9]);
      if (format === 'arrow') {
        const raw = tableFromIPC(bytes).getChild('ts')!.data[0]!.values as BigInt64Array;
        expect(Array.from(raw)).toEqual([BigInt(T0) * 1000n + 1n, BigInt(T0) * 1000n + 61_000_123n]);
      } else {
        expect(Buffer.from(bytes.subarray(0, 4)).toString('latin1')).toBe('PAR1');
        expect(() => decodePredictions(bytes, 'f')).toThrow(/^f: not a readable Arrow IPC file/);
      }
    },
  );

  it('keeps the default milliseconds in UTC for a millisecond window, and round-trips Parquet', async () => {
    const builder = new PredictionsBuilder();
    builder.append('d', 'v1', Float64Array.of(T0, T0 + 60_000), Float32Array.of(1, 2), Uint8Array.of(0, 0));
    const columns = builder.columns();
    expect(columns.tsType).toBeUndefined();
    expect(readPredictions(encodePredictionsAs(columns, 'parquet'))).toEqual(columns);
  });
});
