import {
  Bool,
  Float32,
  Table,
  tableFromIPC,
  tableToIPC,
  TimestampMillisecond,
  Utf8,
  vectorFromArray,
} from 'apache-arrow';
import {
  decodePredictions,
  encodePredictions,
  predictionRows,
  PredictionsBuilder,
  type PredictionColumns,
} from '../../lib/arrow/predictions';
import { InvalidPredictions } from '../../lib/shared/errors';

const T0 = Date.UTC(2026, 10, 21, 12);
const MIN = 60_000;

function sample(): PredictionColumns {
  return {
    runs: [
      { device: 'dev-00001', modelVersion: 'v0001', rows: 3 },
      { device: 'dev-00002', modelVersion: 'v0007', rows: 2 },
      { device: 'dev-00001', modelVersion: 'v0002', rows: 1 },
    ],
    ts: Float64Array.from([0, 1, 2, 0, 1, 5], (m) => T0 + m * MIN),
    score: Float32Array.from([0.5, 1.25, 99.5, 3, 4, 0.125]),
    isAnomaly: Uint8Array.from([0, 0, 1, 0, 1, 0]),
  };
}

describe('encodePredictions / decodePredictions', () => {
  it('round-trips columns and device runs', () => {
    const columns = sample();
    expect(decodePredictions(encodePredictions(columns))).toEqual(columns);
  });

  it('writes the documented schema as an IPC file any Arrow reader understands', () => {
    const bytes = encodePredictions(sample());
    expect(Buffer.from(bytes.subarray(0, 6)).toString('latin1')).toBe('ARROW1');
    const table = tableFromIPC(bytes);
    expect(table.schema.fields.map((f) => [f.name, String(f.type), f.nullable])).toEqual([
      ['device_id', 'Utf8', false],
      ['ts', 'Timestamp<MILLISECOND, UTC>', false],
      ['score', 'Float32', false],
      ['is_anomaly', 'Bool', false],
      ['model_version', 'Utf8', false],
    ]);
    expect(table.getChild('device_id')!.toArray()).toEqual([1, 1, 1, 2, 2, 1].map((d) => `dev-0000${d}`));
    expect(table.getChild('ts')!.get(5)).toBe(T0 + 5 * MIN);
    const flags = Array.from(table.getChild('is_anomaly')!.toArray() as boolean[]);
    expect(flags).toEqual([false, false, true, false, true, false]);
    expect(table.nullCount).toBe(0);
  });

  it('encodes an empty shard', () => {
    const empty: PredictionColumns = {
      runs: [],
      ts: new Float64Array(),
      score: new Float32Array(),
      isAnomaly: new Uint8Array(),
    };
    expect(decodePredictions(encodePredictions(empty))).toEqual(empty);
  });

  it('rejects runs that do not cover the columns, and columns of different lengths', () => {
    const bad = sample();
    bad.runs[0]!.rows = 2;
    expect(() => encodePredictions(bad)).toThrow(InvalidPredictions);
    expect(() => encodePredictions({ ...sample(), score: new Float32Array(2) })).toThrow(/6, 2 and 6/);
  });

  it('decodes a predictions file written by another Arrow writer (stream format, several batches)', () => {
    const part = (devices: string[], ts: number[]) =>
      new Table({
        device_id: vectorFromArray(devices, new Utf8()),
        ts: vectorFromArray(ts, new TimestampMillisecond('UTC')),
        score: vectorFromArray(
          ts.map((_, i) => i + 0.5),
          new Float32(),
        ),
        is_anomaly: vectorFromArray(
          ts.map((_, i) => i % 2 === 1),
          new Bool(),
        ),
        model_version: vectorFromArray(
          devices.map(() => 'v0001'),
          new Utf8(),
        ),
      });
    const a = part(['d1', 'd1'], [T0, T0 + MIN]);
    const b = part(['d1', 'd2'], [T0 + 2 * MIN, T0]);
    const got = decodePredictions(tableToIPC(a.concat(b), 'stream'));
    expect(got.runs).toEqual([
      { device: 'd1', modelVersion: 'v0001', rows: 3 },
      { device: 'd2', modelVersion: 'v0001', rows: 1 },
    ]);
    expect(Array.from(got.isAnomaly)).toEqual([0, 1, 0, 1]);
    expect(Array.from(got.score)).toEqual([0.5, 1.5, 0.5, 1.5]);
  });

  it('names the file and column of a file that is not predictions', () => {
    const other = tableToIPC(new Table({ device_id: vectorFromArray(['d'], new Utf8()) }), 'file');
    const err = (() => {
      try {
        decodePredictions(other, 'predictions/window=x/shard-00000.arrow');
      } catch (e) {
        return e as InvalidPredictions;
      }
      throw new Error('expected an error');
    })();
    expect(err).toBeInstanceOf(InvalidPredictions);
    expect([err.file, err.field]).toEqual(['predictions/window=x/shard-00000.arrow', 'ts']);
    expect(() => decodePredictions(new Uint8Array(32).fill(3), 'f')).toThrow(/^f: /);
  });
});

describe('PredictionsBuilder', () => {
  it('appends device by device and merges consecutive runs of the same device and version', () => {
    const b = new PredictionsBuilder();
    const n = 700; // past the initial capacity, so the buffers grow
    for (let d = 0; d < 3; d++) {
      const ts = Float64Array.from({ length: n }, (_, i) => T0 + i * MIN);
      const score = Float32Array.from({ length: n }, (_, i) => d * 1000 + i);
      const isAnomaly = Uint8Array.from({ length: n }, (_, i) => (i % 100 === 0 ? 1 : 0));
      b.append(`dev-${d}`, 'v0001', ts, score, isAnomaly);
    }
    b.append('dev-2', 'v0001', Float64Array.of(T0 + n * MIN), Float32Array.of(-1), Uint8Array.of(1));
    b.append('dev-3', 'v0001', new Float64Array(), new Float32Array(), new Uint8Array());
    expect(b.rows).toBe(3 * n + 1);
    const decoded = decodePredictions(b.encode());
    expect(decoded.runs).toEqual([
      { device: 'dev-0', modelVersion: 'v0001', rows: n },
      { device: 'dev-1', modelVersion: 'v0001', rows: n },
      { device: 'dev-2', modelVersion: 'v0001', rows: n + 1 },
    ]);
    expect(decoded.score[n + 5]).toBe(1005);
    expect(decoded.score[3 * n]).toBe(-1);
    const rows = [...predictionRows(decoded)];
    expect(rows).toHaveLength(3 * n + 1);
    expect(rows[2 * n + 100]).toEqual({
      device: 'dev-2',
      modelVersion: 'v0001',
      ts: T0 + 100 * MIN,
      score: 2100,
      isAnomaly: true,
    });
    expect(rows.filter((r) => r.isAnomaly)).toHaveLength(3 * 7 + 1);
  });

  it('refuses columns of different lengths', () => {
    const builder = new PredictionsBuilder();
    expect(() => builder.append('d', 'v', new Float64Array(2), new Float32Array(1), new Uint8Array(2))).toThrow(
      InvalidPredictions,
    );
  });
});
