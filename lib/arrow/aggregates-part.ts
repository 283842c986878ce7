/**
 * One aggregates part file decoded: rows grouped into runs of equal `device_id`, timestamps as a typed array, and
 * feature columns read lazily (only those a model asks for). Problems that fail the whole file are thrown here;
 * device-level ones are left for `WindowAggregates.device`.
 */
import { DataType, tableToIPC, type Data, type Table, type TimeUnit, type Vector } from 'apache-arrow';
import { TextDecoder } from 'node:util';
import { InvalidAggregates, messageOf } from '../shared/errors';
import {
  deviceRunsFromDictionary,
  deviceRunsFromIntegers,
  deviceRunsFromStrings,
  featureValues,
  isDeviceIdType,
  isNumeric,
  isString,
  readTimestamps,
  valueType,
} from './column-decoding';
import { checkFraming } from './ipc-framing';
import { isParquet, parquetToIpc } from './parquet';
import { coalescedTable } from './ipc-coalesce';
import { readIpcTable } from './ipc-reader';
import { isSubMillisecond, type TimestampType } from './timestamps';

/** The device id column of an aggregates file. */
export const DEVICE_COLUMN = 'device_id';
/** The timestamp column of an aggregates file. */
export const TS_COLUMN = 'ts';

/** A feature column as stored in one record batch: values already start at the batch's first row. */
export interface FeatureChunk {
  values: Float32Array | Float64Array;
  /** Validity bitmap (bit `offset + i`), or null when the chunk has no nulls. */
  nullBitmap: Uint8Array | null;
  offset: number;
}

/** What a part knows about one feature column: its chunks, or why it cannot be used. */
export type FeatureColumn = { ok: true; chunks: FeatureChunk[] } | { ok: false; reason: string };

/**
 * A decoded part in the form that crosses to another thread of the worker without a copy (shard-threads.ts: one
 * thread parses a part, the others take it): uncompressed Arrow IPC whose columns are views into it, and the decoded
 * arrays, all in SharedArrayBuffers; the device runs as columns.
 */
export interface SharedPart {
  file: string;
  ipc: Uint8Array;
  tsType: TimestampType;
  /** Bytes of `ipc`, what {@link AggregatesPart.heldBytes} counts of it. */
  byteLength: number;
  ts: Float64Array;
  tsNanos: Int32Array | null;
  runStart: Int32Array;
  runEnd: Int32Array;
  runBatch: Int32Array;
  batchStart: Int32Array;
  /** Device ids in order of first appearance: device i's runs are `deviceRuns[deviceRunStart[i], deviceRunStart[i + 1])`. */
  devices: string[];
  deviceRunStart: Int32Array;
  deviceRuns: Int32Array;
}

/** The typed arrays decoded from a part's table (timestamps, runs, batch starts), as a part and a shared part hold them. */
type DecodedArrays = Pick<
  DecodedPart,
  'ts' | 'tsNanos' | 'runStart' | 'runEnd' | 'runBatch' | 'batchStart' | 'deviceRunStart' | 'deviceRuns'
>;

/** Bytes of the typed arrays decoded from a part's table. */
export function decodedArrayBytes(d: DecodedArrays): number {
  const arrays = [d.ts, d.tsNanos, d.runStart, d.runEnd, d.runBatch, d.batchStart, d.deviceRunStart, d.deviceRuns];
  return arrays.reduce((sum, a) => sum + (a?.byteLength ?? 0), 0);
}

/** The parsed, per-row-object-free form of a part; built by `readAggregatesPart`. */
interface DecodedPart {
  ts: Float64Array;
  tsNanos: Int32Array | null;
  runStart: Int32Array;
  runEnd: Int32Array;
  runBatch: Int32Array;
  batchStart: Int32Array;
  /** Device ids in order of first appearance; device i's runs are `deviceRuns[deviceRunStart[i], deviceRunStart[i + 1])`. */
  devices: string[];
  /** Each device id's number in `devices`. */
  deviceNumbers: Map<string, number>;
  deviceRunStart: Int32Array;
  deviceRuns: Int32Array;
}

/**
 * One decoded part file. Rows are grouped into runs of equal `device_id` (split at record batch boundaries);
 * a device may have several runs in a part, and rows in several parts.
 */
export class AggregatesPart {
  /** Whole epoch milliseconds of every row, floored (NaN where `ts` is null). */
  readonly ts: Float64Array;
  /** Nanoseconds within the millisecond of every row (0 to 999,999), or null when the unit is s or ms. */
  readonly tsNanos: Int32Array | null;
  /** Per run: first row (inclusive) and end row (exclusive) within the part, and the record batch. */
  readonly runStart: Int32Array;
  readonly runEnd: Int32Array;
  readonly runBatch: Int32Array;
  /**
   * The runs of device number d ({@link deviceNumber}) are `deviceRuns[deviceRunStart[d], deviceRunStart[d + 1])`:
   * no array a device, in a part that 2,000 devices and two threads each read every hour.
   */
  readonly deviceRunStart: Int32Array;
  readonly deviceRuns: Int32Array;
  private readonly deviceList: string[];
  private readonly deviceNumbers: Map<string, number>;
  /** The row of the part where each record batch starts. */
  readonly batchStart: Int32Array;
  private readonly featureCache = new Map<string, FeatureColumn>();
  /** Bytes of the typed arrays decoded from the table: timestamps, runs, batch starts. */
  private readonly decodedBytes: number;
  /** Bytes of feature columns converted to floats so far (integers, decimals, float16). */
  private convertedBytes = 0;
  /** Called when a feature converted to floats made the part hold more (its cache weighs it again). */
  onGrow?: () => void;

  /** @internal use `readAggregatesPart`. */
  constructor(
    /** The part's store key, named in every error. */
    readonly file: string,
    /** The Arrow table the part was read as (its columns views into the part's bytes where not converted). */
    readonly table: Table,
    decoded: DecodedPart,
    /** The `ts` column's unit and time zone, which the predictions of its rows keep. */
    readonly tsType: TimestampType,
    /** Bytes of the Arrow IPC it was read from (a Parquet part's once decoded); see `heldBytes`. */
    readonly byteLength: number,
  ) {
    this.ts = decoded.ts;
    this.tsNanos = decoded.tsNanos;
    this.runStart = decoded.runStart;
    this.runEnd = decoded.runEnd;
    this.runBatch = decoded.runBatch;
    this.deviceRunStart = decoded.deviceRunStart;
    this.deviceRuns = decoded.deviceRuns;
    this.deviceList = decoded.devices;
    this.deviceNumbers = decoded.deviceNumbers;
    this.batchStart = decoded.batchStart;
    this.decodedBytes = decodedArrayBytes(decoded);
  }

  /**
   * What a cache weighs the part by: the Arrow it was read from, the typed arrays decoded from it, and the feature
   * columns converted to floats so far (a converted int64 column holds as much again as its Arrow).
   */
  get heldBytes(): number {
    return this.byteLength + this.decodedBytes + this.convertedBytes;
  }

  /** Number of rows in the part. */
  get rows(): number {
    return this.ts.length;
  }

  /** The distinct device ids in the part, in order of first appearance. Untrusted data: validate before use. */
  get devices(): string[] {
    return [...this.deviceList];
  }

  /** The number of `device` in the part, whose runs {@link deviceRunStart} locates; -1 when it has none of its rows. */
  deviceNumber(device: string): number {
    return this.deviceNumbers.get(device) ?? -1;
  }

  /** The columns other than `device_id` and `ts`, whatever their type. */
  get featureNames(): string[] {
    return this.table.schema.fields.map((f) => f.name).filter((n) => n !== DEVICE_COLUMN && n !== TS_COLUMN);
  }

  /** A feature column's chunks, or why it cannot be used (missing, not numeric). Cached per name. */
  feature(name: string): FeatureColumn {
    let col = this.featureCache.get(name);
    if (!col) {
      col = this.readFeature(name);
      this.featureCache.set(name, col);
    }
    return col;
  }

  /** Row of the part where record batch `batch` starts. */
  batchOffset(batch: number): number {
    return this.batchStart[batch] ?? 0;
  }

  private readFeature(name: string): FeatureColumn {
    const field = this.table.schema.fields.find((f) => f.name === name);
    if (!field || name === DEVICE_COLUMN || name === TS_COLUMN) {
      return { ok: false, reason: 'is not a column of the file' };
    }
    if (!isNumeric(field)) {
      return { ok: false, reason: `has type ${String(field.type)}, expected a float, integer or decimal type` };
    }
    const vector: Vector | null = this.table.getChild(name);
    if (!vector) return { ok: false, reason: 'is not a column of the file' };
    let converted = 0;
    const chunks = vector.data.map((d: Data) => {
      const values = featureValues(d);
      if (values !== d.values) converted += values.byteLength;
      return { values, nullBitmap: d.nullCount > 0 ? (d.nullBitmap ?? null) : null, offset: d.offset };
    });
    if (converted > 0) {
      this.convertedBytes += converted;
      this.onGrow?.();
    }
    return { ok: true, chunks };
  }
}

/**
 * Decodes one part file's bytes (Arrow IPC file or stream format, or Parquet, told apart by their bytes). Throws
 * `InvalidAggregates` naming `file` for problems that fail the whole file (see lib/arrow/aggregates.ts);
 * device-level problems are found later, only for the devices asked for.
 */
export function readAggregatesPart(file: string, bytes: Uint8Array): AggregatesPart {
  checkFraming(file, bytes);
  let ipc = bytes;
  if (isParquet(bytes)) {
    try {
      ipc = parquetToIpc(bytes);
    } catch (err) {
      const reason = messageOf(err);
      throw new InvalidAggregates(
        `is not readable Parquet (corrupt or truncated): ${reason}`,
        { file },
        { cause: err },
      );
    }
  }
  const table = tableOf(file, ipc);
  const tsType = checkSchema(file, table);
  return new AggregatesPart(file, table, decodeRows(file, table, tsType.unit), tsType, ipc.byteLength);
}

/**
 * Decodes one part file's bytes as {@link readAggregatesPart} does (and throws as it does), in shared memory: the
 * part, and its {@link SharedPart} for the worker's other threads. A part whose columns are not views of its bytes
 * (compressed bodies, many small record batches read as one, Parquet) is shared as the uncompressed Arrow IPC of its
 * table, so no thread decompresses it again.
 */
export function readSharedPart(file: string, bytes: Uint8Array): { part: AggregatesPart; shared: SharedPart } {
  const parsed = readAggregatesPart(file, sharedCopy(bytes));
  const table = parsed.table;
  const views = viewsOf(table, bytes.byteLength) ?? undefined;
  const ipc = views ?? sharedCopy(tableToIPC(table, 'stream'));
  const shared: SharedPart = {
    file,
    ipc,
    tsType: parsed.tsType,
    byteLength: ipc.byteLength,
    ts: sharedCopy(parsed.ts),
    tsNanos: parsed.tsNanos && sharedCopy(parsed.tsNanos),
    runStart: sharedCopy(parsed.runStart),
    runEnd: sharedCopy(parsed.runEnd),
    runBatch: sharedCopy(parsed.runBatch),
    batchStart: sharedCopy(parsed.batchStart),
    devices: parsed.devices,
    deviceRunStart: sharedCopy(parsed.deviceRunStart),
    deviceRuns: sharedCopy(parsed.deviceRuns),
  };
  return { part: partFromShared(shared, views ? table : undefined), shared };
}

/** The part another thread read ({@link readSharedPart}); `table` when the caller has it read already. */
export function partFromShared(shared: SharedPart, table = tableOf(shared.file, shared.ipc)): AggregatesPart {
  const decoded: DecodedPart = { ...shared, deviceNumbers: numbered(shared.devices) };
  return new AggregatesPart(shared.file, table, decoded, shared.tsType, shared.byteLength);
}

/** Each id's index in `ids`. */
function numbered(ids: readonly string[]): Map<string, number> {
  const numbers = new Map<string, number>();
  for (let i = 0; i < ids.length; i++) numbers.set(ids[i]!, i);
  return numbers;
}

/** `bytes` in a SharedArrayBuffer of their own. */
function sharedCopy<T extends Uint8Array | Int32Array | Float64Array>(bytes: T): T {
  const copy = new (bytes.constructor as new (buffer: SharedArrayBuffer) => T)(new SharedArrayBuffer(bytes.byteLength));
  copy.set(bytes);
  return copy;
}

/**
 * The shared bytes every column of `table` views (the IPC it was read from, `byteLength` long), or null when any
 * column holds its own (decompressed, coalesced or converted from Parquet).
 */
function viewsOf(table: Table, byteLength: number): Uint8Array | null {
  let buffer: ArrayBufferLike | undefined;
  const same = (a: ArrayBufferView | undefined | null) => {
    if (!a || a.byteLength === 0) return true;
    buffer ??= a.buffer;
    return a.buffer === buffer;
  };
  const all = (d: Data): boolean =>
    same(d.values as ArrayBufferView | undefined) &&
    same(d.valueOffsets as ArrayBufferView | undefined) &&
    same(d.nullBitmap) &&
    (d.dictionary?.data.every(all) ?? true) &&
    d.children.every(all);
  for (const batch of table.batches) if (!all(batch.data)) return null;
  if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength !== byteLength) return null;
  return new Uint8Array(buffer);
}

/** Reads Arrow IPC bytes into a table; throws `InvalidAggregates` naming `file` when they are not readable. */
function tableOf(file: string, ipc: Uint8Array): Table {
  try {
    // Many small record batches are read as one (ipc-coalesce.ts); any other part as apache-arrow reads it.
    return coalescedTable(ipc) ?? readIpcTable(ipc);
  } catch (err) {
    const reason = messageOf(err);
    throw new InvalidAggregates(
      `is not readable Arrow IPC (corrupt or truncated): ${reason}`,
      { file },
      { cause: err },
    );
  }
}

/** Checks the columns every part needs (no duplicates, `device_id` a string, `ts` a timestamp); returns ts's type. */
function checkSchema(file: string, table: Table): TimestampType {
  const names = table.schema.fields.map((f) => f.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) {
    throw new InvalidAggregates(`has the column ${JSON.stringify(dup)} twice`, { file, field: dup });
  }
  const deviceField = table.schema.fields.find((f) => f.name === DEVICE_COLUMN);
  if (!deviceField) {
    const message = `has no ${DEVICE_COLUMN} column (columns: ${names.join(', ')})`;
    throw new InvalidAggregates(message, { file, field: DEVICE_COLUMN });
  }
  if (!isDeviceIdType(deviceField.type as DataType)) {
    throw new InvalidAggregates(
      `column ${DEVICE_COLUMN} has type ${String(deviceField.type)}, expected a string (Utf8, LargeUtf8, Utf8View), ` +
        `an integer, or a Dictionary of them`,
      { file, field: DEVICE_COLUMN },
    );
  }
  const tsField = table.schema.fields.find((f) => f.name === TS_COLUMN);
  if (!tsField) {
    const message = `has no ${TS_COLUMN} column (columns: ${names.join(', ')})`;
    throw new InvalidAggregates(message, { file, field: TS_COLUMN });
  }
  if (!DataType.isTimestamp(tsField.type)) {
    const hint = timestampHint(tsField.type as DataType);
    const message = `column ${TS_COLUMN} has type ${String(tsField.type)}, expected Timestamp${hint}`;
    throw new InvalidAggregates(message, { file, field: TS_COLUMN });
  }
  const { unit, timezone } = tsField.type as { unit: TimeUnit; timezone?: string | null };
  return { unit, timezone: timezone ?? null };
}

/** How to write a `ts` column of the wrong type as a Timestamp, for the types producers use by mistake. */
function timestampHint(type: DataType): string {
  if (DataType.isInt(type) || DataType.isFloat(type)) {
    // An epoch number does not say its unit: seconds and milliseconds both make plausible times.
    return (
      ': a number does not say its unit (seconds? milliseconds?); write the column as a timestamp of that unit ' +
      "(pandas: pd.to_datetime(df.ts, unit='ms'); polars: pl.from_epoch('ts', time_unit='ms'); pyarrow: " +
      "pc.cast(ts, pa.timestamp('ms')))"
    );
  }
  if (isString(valueType(type))) {
    return (
      ': strings are not parsed; write the column as a timestamp (pandas: pd.to_datetime(df.ts); polars: ' +
      "pl.col('ts').str.to_datetime())"
    );
  }
  if (DataType.isDate(type)) return ': a date has no time of day; a window is an hour';
  return '';
}

/** Timestamps and device runs of every record batch, column-wise. */
function decodeRows(file: string, table: Table, unit: TimeUnit): DecodedPart {
  const deviceVector = table.getChild(DEVICE_COLUMN) as Vector;
  const tsVector = table.getChild(TS_COLUMN) as Vector;
  const ts = new Float64Array(table.numRows);
  const tsNanos = isSubMillisecond(unit) ? new Int32Array(table.numRows) : null;
  const runStart: number[] = [];
  const runEnd: number[] = [];
  const runBatch: number[] = [];
  /** The device number of each run. */
  const runDevice: number[] = [];
  const devices: string[] = [];
  const deviceNumbers = new Map<string, number>();
  const batchStart = new Int32Array(deviceVector.data.length);
  const decoder = new TextDecoder('utf-8', { fatal: true });

  const addRun = (device: string, start: number, end: number, batch: number) => {
    const id = runStart.length;
    runStart.push(start);
    runEnd.push(end);
    runBatch.push(batch);
    let d = deviceNumbers.get(device);
    if (d === undefined) {
      d = devices.length;
      devices.push(device);
      deviceNumbers.set(device, d);
    }
    runDevice[id] = d;
  };

  let row = 0;
  for (let b = 0; b < deviceVector.data.length; b++) {
    const dev = deviceVector.data[b] as Data;
    const tsd = tsVector.data[b] as Data;
    if (!dev || !tsd || dev.length !== tsd.length) {
      throw new InvalidAggregates(`record batch ${b} has columns of different lengths`, { file });
    }
    batchStart[b] = row;
    if (dev.nullCount > 0) {
      throw new InvalidAggregates(`${dev.nullCount} rows have a null ${DEVICE_COLUMN}`, { file, field: DEVICE_COLUMN });
    }
    readTimestamps(tsd, unit, ts, tsNanos, row);
    try {
      if (DataType.isDictionary(dev.type)) deviceRunsFromDictionary(dev, row, b, addRun);
      else if (DataType.isInt(dev.type)) deviceRunsFromIntegers(dev, row, b, addRun);
      else deviceRunsFromStrings(dev, row, b, decoder, addRun);
    } catch (err) {
      if (err instanceof InvalidAggregates) throw err;
      const context = { file, field: DEVICE_COLUMN };
      throw new InvalidAggregates(`column ${DEVICE_COLUMN} is corrupt: ${String(err)}`, context, { cause: err });
    }
    row += dev.length;
  }
  // Each device's runs together, in run order: counted, then placed.
  const deviceRunStart = new Int32Array(devices.length + 1);
  for (const d of runDevice) deviceRunStart[d + 1]!++;
  for (let d = 0; d < devices.length; d++) deviceRunStart[d + 1]! += deviceRunStart[d]!;
  const deviceRuns = new Int32Array(runDevice.length);
  const next = deviceRunStart.slice(0, devices.length);
  runDevice.forEach((d, id) => (deviceRuns[next[d]!++] = id));
  return {
    ts,
    tsNanos,
    runStart: Int32Array.from(runStart),
    runEnd: Int32Array.from(runEnd),
    runBatch: Int32Array.from(runBatch),
    batchStart,
    devices,
    deviceNumbers,
    deviceRunStart,
    deviceRuns,
  };
}
