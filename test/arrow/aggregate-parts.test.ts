import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  compressionRegistry,
  CompressionType,
  Float32,
  RecordBatchFileWriter,
  RecordBatchStreamWriter,
  Table,
  tableToIPC,
  TimestampMillisecond,
  Utf8,
  vectorFromArray,
} from 'apache-arrow';
import { compress as lz4Compress } from 'lz4js';
import { listAggregateParts } from '../../lib/arrow/window-input';
import {
  type InvalidAggregates,
  loadWindowAggregates,
  readAggregatesPart,
  WindowAggregates,
} from '../../lib/arrow/aggregates';
import { registerIpcCodecs } from '../../lib/arrow/ipc-reader';
import { parquetToIpc, streamToParquet } from '../../lib/arrow/parquet';
import { keys } from '../../lib/shared/keys';
import { LocalStore } from '../../lib/store/local-store';
import { parseWindow } from '../../lib/shared/window';

const window = parseWindow('2026-11-21T12');
const prefix = keys.aggregatesPrefix(window.id);

/** `n` rows of `device` a second apart from the window's start; s00 = i % 2 + 1, s01 = i % 2 + 3. */
function rows(device: string, n = 2): Table {
  const i = Array.from({ length: n }, (_, j) => j);
  return new Table({
    device_id: vectorFromArray(
      i.map(() => device),
      new Utf8(),
    ),
    ts: vectorFromArray(
      i.map((j) => window.startMs + j * 1000),
      new TimestampMillisecond('UTC'),
    ),
    s00: vectorFromArray(
      i.map((j) => (j % 2) + 1),
      new Float32(),
    ),
    s01: vectorFromArray(
      i.map((j) => (j % 2) + 3),
      new Float32(),
    ),
  });
}

let dir: string;
let store: LocalStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-parts-'));
  store = new LocalStore(dir);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the parts of a window', () => {
  it('are every object but names (and folders) starting with _ or ., sorted', async () => {
    for (const name of ['part-0.arrow', 'b/part-2.arrows', 'part-1.feather', 'notes.csv']) {
      await store.put(`${prefix}${name}`, tableToIPC(rows('d'), 'file'));
    }
    for (const name of ['_SUCCESS', '.part-0.arrow.crc', '_temporary/0/part-9.arrow', '.hidden/x.arrow']) {
      await store.put(`${prefix}${name}`, 'x');
    }
    await store.put(keys.aggregatesPart('2026-11-21T13', 0), 'other window');
    const names = (await listAggregateParts(store, window)).map((k) => k.slice(prefix.length));
    expect(names).toEqual(['b/part-2.arrows', 'notes.csv', 'part-0.arrow', 'part-1.feather']);
  });

  it('are read under every Arrow IPC and Parquet name, whatever the format, and refused by name otherwise', async () => {
    await store.put(`${prefix}a.feather`, tableToIPC(rows('a'), 'file'));
    await store.put(`${prefix}b.arrows`, tableToIPC(rows('b'), 'stream'));
    await store.put(`${prefix}c.ipc`, tableToIPC(rows('c'), 'stream'));
    await store.put(`${prefix}d.IPC`, tableToIPC(rows('d'), 'file'));
    await store.put(`${prefix}e.parquet`, streamToParquet(tableToIPC(rows('e'), 'stream')));
    const agg = await loadWindowAggregates(store, window);
    expect(agg.failedParts).toEqual([]);
    for (const device of ['a', 'b', 'c', 'd', 'e']) expect(agg.device(device, ['s00', 's01'])!.rows).toBe(2);

    await store.put(`${prefix}f.csv`, 'device_id,ts,s00,s01');
    const refused = await loadWindowAggregates(store, window);
    expect(refused.failedParts.map((e) => e.file)).toEqual([`${prefix}f.csv`]);
    expect(refused.failedParts[0]!.message).toMatch(/f\.csv: is not named as an Arrow IPC or Parquet part/);
    // Under the default layout every device may have rows in it: each fails, naming the file.
    const err = (() => {
      try {
        refused.device('a', ['s00']);
      } catch (e) {
        return e as InvalidAggregates;
      }
      throw new Error('expected InvalidAggregates');
    })();
    expect([err.file, err.device]).toEqual([`${prefix}f.csv`, 'a']);
    // Device-partitioned: the devices of readable parts are scored.
    const partitioned = new WindowAggregates(window, refused.parts, refused.failedParts, 'device-partitioned');
    expect(partitioned.device('a', ['s00'])!.rows).toBe(2);
  });

  it('reads Parquet bytes under an Arrow name, and refuses Feather v1 and Parquet cut short or corrupt', () => {
    const parquet = streamToParquet(tableToIPC(rows('p', 3), 'stream'));
    const part = readAggregatesPart('p.arrow', parquet);
    expect(new WindowAggregates(window, [part]).device('p', ['s01'])!.rows).toBe(3);
    // Weighed by the Arrow it decodes to, not by the compressed Parquet.
    expect(part.byteLength).toBe(parquetToIpc(parquet).byteLength);
    // Read in one record batch, not the Parquet reader's default of 1,024 rows each (decoded batch by batch).
    const large = readAggregatesPart('l.parquet', streamToParquet(tableToIPC(rows('l', 3000), 'stream')));
    const chunks = large.feature('s01');
    expect(chunks.ok && chunks.chunks.length).toBe(1);
    expect(new WindowAggregates(window, [large]).device('l', ['s01'])!.rows).toBe(3000);
    const feather1 = new Uint8Array([0x46, 0x45, 0x41, 0x31, 0, 0, 0, 0, 0x46, 0x45, 0x41, 0x31]);
    expect(() => readAggregatesPart('p.feather', feather1)).toThrow(/p\.feather: is Feather v1 .* Feather v2/);
    const cut = parquet.subarray(0, parquet.length - 10);
    expect(() => readAggregatesPart('p.parquet', cut)).toThrow(/p\.parquet: is a truncated Parquet file/);
    const corrupt = new Uint8Array([0x50, 0x41, 0x52, 0x31, 1, 2, 3, 4, 0x50, 0x41, 0x52, 0x31]);
    expect(() => readAggregatesPart('p.parquet', corrupt)).toThrow(/p\.parquet: is not readable Parquet/);
  });

  it.each(['file', 'stream'] as const)('reads LZ4-frame compressed IPC (%s format)', (format) => {
    registerIpcCodecs();
    // apache-arrow writes compressed IPC through the registry's encoder; fleetscore only registers decoders.
    const codec = compressionRegistry.get(CompressionType.LZ4_FRAME)!;
    compressionRegistry.set(CompressionType.LZ4_FRAME, { ...codec, encode: (data) => lz4Compress(data) });
    const Writer = format === 'file' ? RecordBatchFileWriter : RecordBatchStreamWriter;
    // Compressible columns: the writer keeps a buffer uncompressed when LZ4 would not make it smaller.
    const bytes = Writer.writeAll(rows('z', 1000), { compressionType: CompressionType.LZ4_FRAME }).toUint8Array(true);
    expect(Buffer.from(bytes).includes(Buffer.from([0x04, 0x22, 0x4d, 0x18]))).toBe(true); // an LZ4 frame's magic
    const agg = new WindowAggregates(window, [readAggregatesPart('z.arrow', bytes)]);
    const got = agg.device('z', ['s00', 's01'])!;
    expect(got.rows).toBe(1000);
    expect(Array.from(got.x.subarray(1990))).toEqual([2, 4, 1, 3, 2, 4, 1, 3, 2, 4]); // rows 995 to 999
    expect(got.ts[999]).toBe(window.startMs + 999_000);
  });

  it("finds each device's parts whichever windows were read before on the thread", () => {
    const part = (file: string, ...devices: string[]) =>
      readAggregatesPart(
        file,
        RecordBatchFileWriter.writeAll(rows(devices[0]!).concat(...devices.slice(1).map((d) => rows(d)))).toUint8Array(
          true,
        ),
      );
    const a = part('a.arrow', 'x', 'w');
    const b = part('b.arrow', 'y', 'z');
    const both = new WindowAggregates(window, [a, b]);
    expect(both.device('x', ['s00'])!.rows).toBe(2);
    expect(both.device('y', ['s00'])!.rows).toBe(2);
    // Another window over some of the same parsed parts must not see the first one's index.
    const onlyB = new WindowAggregates(window, [b]);
    expect(onlyB.device('x', ['s00'])).toBeUndefined();
    expect(onlyB.device('z', ['s00'])!.rows).toBe(2);
    // Two windows over the same parts share it and answer alike.
    expect(new WindowAggregates(window, [a, b]).device('w', ['s00'])!.rows).toBe(2);
    expect(both.device('nobody', ['s00'])).toBeUndefined();
  });
});
