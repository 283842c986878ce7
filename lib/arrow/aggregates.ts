/**
 * Reading a window's sensor aggregates: Arrow IPC part files (file or stream format, uncompressed or LZ4/ZSTD, from
 * any Arrow writer) or Parquet ones (read into Arrow IPC first) with the columns `device_id` (Utf8, LargeUtf8,
 * Utf8View, an integer read as its decimal string, or a Dictionary of them), `ts` (Timestamp of any unit and time
 * zone, kept exactly: whole epoch ms plus nanoseconds) and numeric feature columns (floats of any precision,
 * integers or decimals, read as floats; nullable). This module is the public face of lib/arrow's reading rooms;
 * each job lives in its own file:
 * - aggregate-parts.ts: which objects of a window are part files, and which names are refused;
 * - ipc-framing.ts and ipc-reader.ts: framing checks (a truncated file or stream is refused, never read short),
 *   and decoding with the LZ4-frame and ZSTD codecs; parquet.ts: Parquet into Arrow IPC;
 * - column-decoding.ts, timestamps.ts and aggregates-part.ts: one part decoded column-wise;
 * - window-aggregates.ts and device-rows.ts: a window across parts, and one device's rows;
 * - aggregates-cache.ts: a worker's cache of parsed parts, and `loadWindowAggregates` for tests and tools.
 *
 * This is the scorer's hot path (100k devices x 60 rows), so nothing here makes a JS object or string per row:
 * device ids are decoded once per run of equal ids, timestamps and features are copied column-wise from the
 * Arrow buffers into typed arrays.
 *
 * Errors and the unit they fail (all are `InvalidAggregates`, none is fixed by a retry):
 * - the whole part file: bytes that are not Arrow IPC, truncated or corrupt; no `device_id` or `ts` column, or
 *   either of the wrong type; a null `device_id` (the row cannot be attributed). `readAggregatesPart` throws
 *   these. An unreadable part cannot say which devices it held. Under the window's layout `any` (see
 *   `AGGREGATES_LAYOUTS`), `WindowAggregates.device` then fails every device it is asked for with that file
 *   named, instead of scoring partial data or calling a device "no data"; under `device-partitioned` it fails
 *   only the devices that no readable part holds, and scores the rest.
 * - one device: a null `ts`; a feature its model needs that is missing or not float; a NaN, Infinity or null
 *   feature value; two rows with the same `ts`. `WindowAggregates.device` throws these for that device only.
 *   A feature missing from one part only fails the devices that have rows in that part.
 * - neither: rows with `ts` outside `[window.startMs, window.endMs)` are dropped and counted.
 *
 * A stream-format part must end with the end-of-stream marker (every writer adds it on close), because a
 * stream cut at a message boundary is otherwise indistinguishable from a shorter one.
 */
export { listAggregateParts } from './window-input';
export { AggregatesCache, loadWindowAggregates, type LoadAggregatesOptions } from './aggregates-cache';
export { InvalidAggregates, type AggregatesErrorContext } from '../shared/errors';
export {
  AggregatesPart,
  DEVICE_COLUMN,
  readAggregatesPart,
  TS_COLUMN,
  type FeatureChunk,
  type FeatureColumn,
} from './aggregates-part';
export type { DeviceRows } from './device-rows';
export { WindowAggregates } from './window-aggregates';
