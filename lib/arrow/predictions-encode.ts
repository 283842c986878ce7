/**
 * Encoding predictions: the documented schema built column-wise from typed arrays and device runs (no JS object or
 * string per row), as an Arrow IPC file or as Parquet.
 */
import {
  Bool,
  Float32,
  Field,
  makeData,
  RecordBatch,
  Schema,
  Struct,
  Table,
  tableToIPC,
  Timestamp,
  TimeUnit,
  Utf8,
  type Data,
} from 'apache-arrow';
import { InvalidPredictions } from '../shared/errors';
import {
  PREDICTION_COLUMNS,
  type PredictionColumns,
  type PredictionRun,
  type PredictionsFormat,
} from './predictions-columns';
import { streamToParquet } from './parquet';
import { encodeTimestamp, MILLISECONDS_UTC } from './timestamps';

/** Encodes predictions as an Arrow IPC file (the format with a footer, so a reader can tell it is complete). */
export function encodePredictions(columns: PredictionColumns): Uint8Array {
  return tableToIPC(predictionsTable(columns), 'file');
}

/** The predictions as an Arrow table of the documented schema; throws `InvalidPredictions` for columns that do not fit. */
function predictionsTable(columns: PredictionColumns): Table {
  const { runs, ts, score, isAnomaly } = columns;
  const n = ts.length;
  if (score.length !== n || isAnomaly.length !== n) {
    throw new InvalidPredictions(`ts, score and isAnomaly have ${n}, ${score.length} and ${isAnomaly.length} values`);
  }
  let total = 0;
  for (const r of runs) {
    if (!Number.isInteger(r.rows) || r.rows < 0) {
      throw new InvalidPredictions(`device ${r.device}: run of ${r.rows} rows`);
    }
    total += r.rows;
  }
  if (total !== n) throw new InvalidPredictions(`runs cover ${total} rows, the columns have ${n}`);

  const { unit, timezone } = columns.tsType ?? MILLISECONDS_UTC;
  const tsValues = new BigInt64Array(n);
  const tsWords = new Int32Array(tsValues.buffer);
  for (let i = 0; i < n; i++) {
    const t = ts[i]!;
    const nanos = columns.tsNanos?.[i] ?? 0;
    if (!Number.isInteger(t) || !encodeTimestamp(t, nanos, unit, tsWords, i)) {
      throw new InvalidPredictions(
        `ts[${i}] is ${t} ms + ${nanos} ns, not a whole ${TimeUnit[unit].toLowerCase()}`,
        undefined,
        'ts',
      );
    }
  }
  const bits = new Uint8Array((n + 7) >> 3);
  for (let i = 0; i < n; i++) if (isAnomaly[i]) bits[i >> 3]! |= 1 << (i & 7);

  const children: Data[] = [
    repeatedStrings(runs, (r) => r.device),
    makeData({ type: new Timestamp(unit, timezone), length: n, nullCount: 0, data: tsValues }),
    makeData({ type: new Float32(), length: n, nullCount: 0, data: score }),
    makeData({ type: new Bool(), length: n, nullCount: 0, data: bits }),
    repeatedStrings(runs, (r) => r.modelVersion),
  ];
  // Declared non-nullable: every row has every value, and readers (pyarrow, DuckDB) can rely on it.
  const schema = new Schema(PREDICTION_COLUMNS.map((name, i) => new Field(name, children[i]!.type, false)));
  const struct = makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children });
  return new Table(schema, new RecordBatch(schema, struct));
}

/** A Utf8 column that repeats each run's string `rows` times, built from bytes (no encoder call for an ASCII string). */
function repeatedStrings(runs: readonly PredictionRun[], pick: (r: PredictionRun) => string): Data<Utf8> {
  // Each run's string: itself when ASCII (its characters are its bytes), else its UTF-8 bytes.
  const values = runs.map((r) => asciiOrBytes(pick(r)));
  let rows = 0;
  let bytes = 0;
  runs.forEach((r, i) => {
    rows += r.rows;
    bytes += r.rows * values[i]!.length;
  });
  const offsets = new Int32Array(rows + 1);
  const data = new Uint8Array(bytes);
  let row = 0;
  let at = 0;
  runs.forEach((r, i) => {
    const value = values[i]!;
    const n = value.length;
    if (r.rows === 0) return;
    // The run's first copy byte by byte (ids are a few bytes, where `data.set` costs more per call than the copy),
    // then the copies made so far doubled with `copyWithin`: about log2(rows) calls per run.
    const from = at;
    if (typeof value === 'string') for (let b = 0; b < n; b++) data[at++] = value.charCodeAt(b);
    else for (let b = 0; b < n; b++) data[at++] = value[b]!;
    for (let done = 1; done < r.rows;) {
      const more = Math.min(done, r.rows - done);
      data.copyWithin(at, from, from + more * n);
      at += more * n;
      done += more;
    }
    for (let j = 0; j < r.rows; j++) offsets[++row] = from + (j + 1) * n;
  });
  return makeData({ type: new Utf8(), length: rows, nullCount: 0, valueOffsets: offsets, data });
}

const encoder = new TextEncoder();

/** `s` itself when every character is ASCII (one byte each in UTF-8), else its UTF-8 bytes. */
function asciiOrBytes(s: string): string | Uint8Array {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return encoder.encode(s);
  return s;
}

/** Encodes predictions in `format`: Arrow IPC file format, or Parquet with the same schema. */
export function encodePredictionsAs(columns: PredictionColumns, format: PredictionsFormat): Uint8Array {
  const table = predictionsTable(columns);
  return format === 'parquet' ? streamToParquet(tableToIPC(table, 'stream')) : tableToIPC(table, 'file');
}
