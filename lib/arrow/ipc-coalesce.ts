/**
 * Reading an Arrow IPC part of many small record batches as one batch. A producer that writes a record batch per
 * device (pyarrow's `write_table` on a table concatenated from per-device tables, a streaming writer flushed per
 * device) gives a part of 2,000 batches of 60 rows; apache-arrow spends 30 to 130 µs on each batch (its visitors
 * build objects per column per batch), so such a window took a warm 10,000-device run 2.3 s against 1.0 s for the
 * same rows in one batch a part (2026-12-06). Here the record batches' messages are read directly (the flatbuffer
 * fields of the IPC format's Message, RecordBatch and Footer tables), each column's buffers from every batch are
 * joined (values appended, validity bits shifted into place, string offsets rebased) and apache-arrow wraps the
 * result as one record batch of the part's schema, which the rest of the reading treats as any one-batch part.
 *
 * Only flat columns are joined: strings and binaries (plain, large as pandas writes them, or views as polars does;
 * the large and view ones joined as plain Utf8 or Binary), and fixed-width types (integers, floats, timestamps,
 * dates, times, durations, decimals, booleans, fixed-size binaries), uncompressed or LZ4-frame or ZSTD compressed. A
 * part with dictionaries (a categorical column), a nested column, or anything this does not expect is left to
 * apache-arrow (undefined), which reads it batch by batch and reports what is wrong with it, and so is a part of few
 * batches (where the join saves nothing).
 */
import {
  Binary,
  compressionRegistry,
  DataType,
  DateUnit,
  Field,
  makeData,
  RecordBatch,
  RecordBatchReader,
  Schema,
  Struct,
  Table,
  Utf8,
  type Data,
} from 'apache-arrow';
import { isIpcFile } from './ipc-framing';
import { registerIpcCodecs } from './ipc-reader';

/** Parts of fewer record batches are read by apache-arrow as they are. */
export const COALESCE_MIN_BATCHES = 16;

/** Message header types (Message.fbs). */
const SCHEMA = 1;
const DICTIONARY_BATCH = 2;
const RECORD_BATCH = 3;
/** BodyCompression.codec to apache-arrow's CompressionType (the same numbers: LZ4_FRAME 0, ZSTD 1). */
const CODECS = [0, 1];

/** A little-endian flatbuffer: tables by position, their fields by index. */
class Flatbuffer {
  private readonly view: DataView;

  constructor(bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Position of the root table. */
  root(): number {
    return this.u32(0);
  }

  /** Position of field `index` of the table at `table`, or undefined when the table leaves it out. */
  field(table: number, index: number): number | undefined {
    const vtable = table - this.view.getInt32(table, true);
    const slot = 4 + 2 * index;
    if (slot >= this.view.getUint16(vtable, true)) return undefined;
    const at = this.view.getUint16(vtable + slot, true);
    return at === 0 ? undefined : table + at;
  }

  /** The table, vector or string an offset field points to. */
  deref(at: number): number {
    return at + this.u32(at);
  }

  u8(at: number): number {
    return this.view.getUint8(at);
  }

  u32(at: number): number {
    return this.view.getUint32(at, true);
  }

  /** A non-negative int64 as a number (lengths and offsets); throws past 2^53 or below 0. */
  i64(at: number): number {
    const high = this.view.getInt32(at + 4, true);
    if (high < 0 || high >= 0x200000) throw new Error('int64 out of range');
    return high * 0x100000000 + this.view.getUint32(at, true);
  }
}

/** One record batch of the part: its rows, field nodes, buffers (body-relative) and compression codec. */
interface BatchMessage {
  length: number;
  /** Per field node, two numbers: its length and null count. */
  nodes: Float64Array;
  /** Per buffer, two numbers: its offset in the body and its length. */
  buffers: Float64Array;
  /** apache-arrow's CompressionType, or undefined for uncompressed buffers. */
  codec: number | undefined;
  /** Data buffers of each string-view or binary-view column, in column order. */
  variadic: number[];
  /** The batch's body within the part's bytes. */
  body: Uint8Array;
}

/** A message at `at`: its flatbuffer and body, and where the next one starts; undefined at the end of a stream. */
function messageAt(bytes: Uint8Array, at: number): { fb: Flatbuffer; body: Uint8Array; next: number } | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let meta = at + 4;
  let length = view.getUint32(at, true);
  if (length === 0xffffffff) {
    length = view.getInt32(at + 4, true);
    meta = at + 8;
  }
  if (length === 0) return undefined;
  if (length < 0 || meta + length > bytes.length) throw new Error('message past the end');
  const fb = new Flatbuffer(bytes.subarray(meta, meta + length));
  const bodyAt = meta + length;
  const bodyLengthField = fb.field(fb.root(), 3);
  const bodyLength = bodyLengthField === undefined ? 0 : fb.i64(bodyLengthField);
  if (bodyAt + bodyLength > bytes.length) throw new Error('message body past the end');
  return { fb, body: bytes.subarray(bodyAt, bodyAt + bodyLength), next: bodyAt + bodyLength };
}

/** The message's header type and position. */
function headerOf(fb: Flatbuffer): { type: number; at: number } | undefined {
  const root = fb.root();
  const typeField = fb.field(root, 1);
  const headerField = fb.field(root, 2);
  if (typeField === undefined || headerField === undefined) return undefined;
  return { type: fb.u8(typeField), at: fb.deref(headerField) };
}

/** The RecordBatch table at `at` with its body. */
function recordBatch(fb: Flatbuffer, at: number, body: Uint8Array): BatchMessage {
  const lengthField = fb.field(at, 0);
  // A vector of structs of two int64s (FieldNode, Buffer), flat.
  const pairs = (index: number) => {
    const field = fb.field(at, index);
    if (field === undefined) return new Float64Array(0);
    const v = fb.deref(field);
    const out = new Float64Array(2 * fb.u32(v));
    for (let i = 0; i < out.length; i++) out[i] = fb.i64(v + 4 + 8 * i);
    return out;
  };
  const compression = fb.field(at, 3);
  let codec: number | undefined;
  if (compression !== undefined) {
    const table = fb.deref(compression);
    const codecField = fb.field(table, 0);
    codec = CODECS[codecField === undefined ? 0 : fb.u8(codecField)];
    if (codec === undefined) throw new Error('unknown compression codec');
  }
  const variadicField = fb.field(at, 4);
  const variadic: number[] = [];
  if (variadicField !== undefined) {
    const v = fb.deref(variadicField);
    for (let i = 0; i < fb.u32(v); i++) variadic.push(fb.i64(v + 4 + 8 * i));
  }
  return {
    length: lengthField === undefined ? 0 : fb.i64(lengthField),
    nodes: pairs(1),
    buffers: pairs(2),
    codec,
    variadic,
    body,
  };
}

/** The record batches of an IPC file (by its footer) or stream; undefined when the part has dictionaries. */
function recordBatches(bytes: Uint8Array): BatchMessage[] | undefined {
  const batches: BatchMessage[] = [];
  if (isIpcFile(bytes)) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const footerLength = view.getInt32(bytes.length - 10, true);
    const footerAt = bytes.length - 10 - footerLength;
    if (footerLength <= 0 || footerAt < 8) throw new Error('footer past the start');
    const footer = new Flatbuffer(bytes.subarray(footerAt, footerAt + footerLength));
    const blocks = (index: number) => {
      const field = footer.field(footer.root(), index);
      if (field === undefined) return [];
      const v = footer.deref(field);
      return Array.from({ length: footer.u32(v) }, (_, i) => footer.i64(v + 4 + 24 * i));
    };
    if (blocks(2).length > 0) return undefined;
    for (const offset of blocks(3)) {
      const message = messageAt(bytes, offset);
      const header = message && headerOf(message.fb);
      if (!message || header?.type !== RECORD_BATCH) throw new Error('a footer block is not a record batch');
      batches.push(recordBatch(message.fb, header.at, message.body));
    }
    return batches;
  }
  for (let at = 0; at < bytes.length;) {
    const message = messageAt(bytes, at);
    if (!message) break;
    const header = headerOf(message.fb);
    if (header?.type === DICTIONARY_BATCH) return undefined;
    if (header?.type === RECORD_BATCH) batches.push(recordBatch(message.fb, header.at, message.body));
    else if (header?.type !== SCHEMA) throw new Error(`message of type ${header?.type}`);
    at = message.next;
  }
  return batches;
}

/**
 * How a flat column lays out its buffers after the validity bitmap: fixed-width values, offsets (32 or 64 bits) and
 * data, or 16-byte views and the data buffers they point into.
 */
type Layout = { kind: 'fixed'; bitWidth: number } | { kind: 'offsets'; bytes: 4 | 8 } | { kind: 'views' };

/** The layout of a column this joins, or undefined (nested, dictionary, null, ...). */
function layoutOf(type: DataType): Layout | undefined {
  if (DataType.isDictionary(type)) return undefined;
  if (DataType.isUtf8(type) || DataType.isBinary(type)) return { kind: 'offsets', bytes: 4 };
  if (DataType.isLargeUtf8(type) || DataType.isLargeBinary(type)) return { kind: 'offsets', bytes: 8 };
  if (DataType.isUtf8View(type) || DataType.isBinaryView(type)) return { kind: 'views' };
  if (DataType.isBool(type)) return { kind: 'fixed', bitWidth: 1 };
  if (DataType.isInt(type)) return { kind: 'fixed', bitWidth: type.bitWidth };
  if (DataType.isFloat(type)) return { kind: 'fixed', bitWidth: [16, 32, 64][type.precision]! };
  if (DataType.isTimestamp(type) || DataType.isDuration(type)) return { kind: 'fixed', bitWidth: 64 };
  if (DataType.isDate(type)) return { kind: 'fixed', bitWidth: type.unit === DateUnit.DAY ? 32 : 64 };
  if (DataType.isTime(type)) return { kind: 'fixed', bitWidth: type.bitWidth };
  if (DataType.isDecimal(type)) return { kind: 'fixed', bitWidth: type.bitWidth };
  if (DataType.isFixedSizeBinary(type)) return { kind: 'fixed', bitWidth: 8 * type.byteWidth };
  return undefined;
}

/**
 * The field as joined: large and view strings (and binaries) become plain Utf8 (Binary) with 32-bit offsets, which
 * every reader of a part takes as it takes those; other fields keep their type.
 */
function joinedField(field: Field, layout: Layout): Field {
  if (layout.kind === 'fixed' || (layout.kind === 'offsets' && layout.bytes === 4)) return field;
  const type = field.type as DataType;
  const text = DataType.isLargeUtf8(type) || DataType.isUtf8View(type);
  return new Field(field.name, text ? new Utf8() : new Binary(), field.nullable, field.metadata);
}

/** Buffer `index` of a batch, decompressed when the batch is compressed (an 8-byte length, -1 for stored as is). */
function bufferOf(batch: BatchMessage, index: number): Uint8Array {
  if (2 * index + 1 >= batch.buffers.length) throw new Error('fewer buffers than columns need');
  const offset = batch.buffers[2 * index]!;
  const end = offset + batch.buffers[2 * index + 1]!;
  if (end > batch.body.length) throw new Error('buffer past its body');
  const raw = batch.body.subarray(offset, end);
  if (batch.codec === undefined || raw.length === 0) return raw;
  // The prefix is the uncompressed length, or -1 for a buffer stored as is. Only -1 is read, as apache-arrow does:
  // its own writer puts the compressed length there. The column's length checks catch a short buffer.
  const stored = new DataView(raw.buffer, raw.byteOffset, 8).getBigInt64(0, true);
  return stored === -1n ? raw.subarray(8) : compressionRegistry.get(batch.codec)!.decode!(raw.subarray(8));
}

/** Copies `length` bits from `src` (from bit 0) to `dst` at bit `at`; all ones for a batch without a bitmap. */
function copyBits(dst: Uint8Array, at: number, src: Uint8Array | undefined, length: number): void {
  for (let i = 0; i < length; i++) {
    const set = src === undefined || (src[i >> 3]! & (1 << (i & 7))) !== 0;
    if (set) dst[(at + i) >> 3]! |= 1 << ((at + i) & 7);
  }
}

/** makeData's argument: it is overloaded per type, and a column's type is known only when the part is read. */
type DataProps = Parameters<typeof makeData>[0];

/** Where a column's buffers are in one batch: its first (the validity bitmap), and a view column's data buffers. */
interface ColumnBuffers {
  first: number;
  dataBuffers: number;
}

/**
 * Column `c` of every batch joined: one Data of the joined field's type (see {@link joinedField}); `at[b]` says
 * where its buffers are in batch `b`.
 */
function joinColumn(
  field: Field,
  layout: Layout,
  batches: readonly BatchMessage[],
  c: number,
  at: readonly ColumnBuffers[],
): Data {
  const total = batches.reduce((n, b) => n + b.nodes[2 * c]!, 0);
  const nullCount = batches.reduce((n, b) => n + b.nodes[2 * c + 1]!, 0);
  let nullBitmap: Uint8Array | undefined;
  if (nullCount > 0) {
    nullBitmap = new Uint8Array(Math.ceil(total / 8));
    let row = 0;
    batches.forEach((b, k) => {
      const n = b.nodes[2 * c]!;
      copyBits(nullBitmap!, row, b.nodes[2 * c + 1]! > 0 ? bufferOf(b, at[k]!.first) : undefined, n);
      row += n;
    });
  }
  const type = field.type as DataType;
  if (layout.kind === 'fixed') {
    const values = new Uint8Array(Math.ceil((total * layout.bitWidth) / 8));
    let row = 0;
    batches.forEach((b, k) => {
      const n = b.nodes[2 * c]!;
      const data = bufferOf(b, at[k]!.first + 1);
      if (layout.bitWidth === 1) copyBits(values, row, data, n);
      else {
        const bytes = (n * layout.bitWidth) / 8;
        if (data.length < bytes) throw new Error('values buffer too short');
        values.set(data.subarray(0, bytes), (row * layout.bitWidth) / 8);
      }
      row += n;
    });
    return makeData({ type, length: total, nullCount, nullBitmap, data: values } as DataProps);
  }
  // Strings (or binaries) of every batch into 32-bit offsets and one data buffer.
  const valueOffsets = new Int32Array(total + 1);
  const chunks: Uint8Array[] = [];
  let size = 0;
  /** Appends `bytes` to the joined data; where they start in it. */
  const append = (bytes: Uint8Array): number => {
    if (size + bytes.length > 0x7fffffff) throw new Error('string data past 2 GiB');
    chunks.push(bytes);
    size += bytes.length;
    return size - bytes.length;
  };
  let row = 0;
  batches.forEach((b, k) => {
    const n = b.nodes[2 * c]!;
    // An empty batch may leave its offsets buffer out.
    if (n === 0) return;
    const first = at[k]!.first;
    if (layout.kind === 'views') {
      const views = bufferOf(b, first + 1);
      if (views.length < 16 * n) throw new Error('views buffer too short');
      const view = new DataView(views.buffer, views.byteOffset, views.byteLength);
      const data = Array.from({ length: at[k]!.dataBuffers }, (_, i) => bufferOf(b, first + 2 + i));
      for (let i = 0; i < n; i++) {
        const length = view.getInt32(16 * i, true);
        if (length <= 12) append(views.subarray(16 * i + 4, 16 * i + 4 + length));
        else {
          const buffer = data[view.getInt32(16 * i + 8, true)];
          const offset = view.getInt32(16 * i + 12, true);
          if (!buffer || offset + length > buffer.length) throw new Error('a view past its data');
          append(buffer.subarray(offset, offset + length));
        }
        valueOffsets[row + i + 1] = size;
      }
    } else {
      const o = bufferOf(b, first + 1);
      const w = layout.bytes;
      if (o.length < w * (n + 1)) throw new Error('offsets buffer too short');
      const offsets = new DataView(o.buffer, o.byteOffset, w * (n + 1));
      const offset = (i: number) =>
        w === 4 ? offsets.getInt32(4 * i, true) : Number(offsets.getBigInt64(8 * i, true));
      const data = bufferOf(b, first + 2);
      const start = offset(0);
      const end = offset(n);
      if (end > data.length || end < start) throw new Error('string data too short');
      const base = append(data.subarray(start, end)) - start;
      for (let i = 1; i <= n; i++) valueOffsets[row + i] = base + offset(i);
    }
    row += n;
  });
  const data = new Uint8Array(size);
  let end = 0;
  for (const chunk of chunks) {
    data.set(chunk, end);
    end += chunk.length;
  }
  return makeData({ type, length: total, nullCount, nullBitmap, valueOffsets, data } as DataProps);
}

/**
 * The part as a table of one record batch, when it has at least {@link COALESCE_MIN_BATCHES} record batches and
 * only flat columns; otherwise undefined (read it with apache-arrow). Throws nothing of its own: a part this cannot
 * join is left to apache-arrow, which reads or refuses it.
 */
export function coalescedTable(bytes: Uint8Array): Table | undefined {
  registerIpcCodecs();
  try {
    // A plain view: a Node Buffer's subarray costs more, and a part is cut into thousands of them.
    const batches = recordBatches(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    if (!batches || batches.length < COALESCE_MIN_BATCHES) return undefined;
    const { schema } = RecordBatchReader.from(bytes).open();
    const layouts = schema.fields.map((f) => layoutOf(f.type as DataType));
    if (layouts.some((l) => l === undefined)) return undefined;
    const columns = schema.fields.length;
    for (const b of batches) {
      if (b.nodes.length !== 2 * columns) return undefined;
      for (let c = 0; c < columns; c++) if (b.nodes[2 * c] !== b.length) return undefined;
    }
    // Each batch's buffers of each column: 2 for a fixed-width column, 3 with offsets, 2 and its data for views.
    const buffers = batches.map((b) => {
      let next = 0;
      let views = 0;
      return layouts.map((layout): ColumnBuffers => {
        const dataBuffers = layout!.kind === 'views' ? (b.variadic[views++] ?? -1) : 0;
        if (dataBuffers < 0) throw new Error('a view column without its count of data buffers');
        const at = { first: next, dataBuffers };
        next += layout!.kind === 'fixed' ? 2 : layout!.kind === 'offsets' ? 3 : 2 + dataBuffers;
        return at;
      });
    });
    const fields = schema.fields.map((f, c) => joinedField(f, layouts[c]!));
    const children = fields.map((f, c) =>
      joinColumn(
        f,
        layouts[c]!,
        batches,
        c,
        buffers.map((b) => b[c]!),
      ),
    );
    const length = batches.reduce((n, b) => n + b.length, 0);
    const joined = new Schema(fields, schema.metadata);
    const data = makeData({ type: new Struct(fields), length, nullCount: 0, children });
    return new Table(joined, [new RecordBatch(joined, data)]);
  } catch {
    // Not a part this reads: apache-arrow reads it, or says what is wrong with it.
    return undefined;
  }
}
