/**
 * The protobuf wire format as the ONNX reader (onnx-reader.ts) reads it: varints, length-delimited fields entered
 * and left without an object per message, and repeated fields (packed, or unpacked as proto2 writes them, which
 * ONNX keeps: one key per value) read in one loop, attributes' number lists into views of a few buffers per model
 * (NumberArena). A 100-tree forest is about 230,000 such values in 0.8 MB; reading them one field at a time
 * through a callback cost most of its compile, and an array per list a fifth of what was left.
 */
import { UnsupportedGraph } from './tensor';

const decoder = new TextDecoder();
/** Short ASCII strings decoded lately, by a hash of their bytes (verified before use), and their hashes. */
const recent = new Array<string | undefined>(4096);
const recentHash = new Int32Array(recent.length);

/**
 * The UTF-8 string in `n` bytes of `buf` from `start`. Names, op types and modes are short ASCII and repeat (a
 * forest has a mode per node): those are shared through a small cache, without a string allocated per repeat.
 */
function decode(buf: Uint8Array, text: Buffer, start: number, n: number): string {
  if (n > 32) return decoder.decode(buf.subarray(start, start + n));
  let hash = n;
  for (let i = start; i < start + n; i++) {
    const c = buf[i]!;
    if (c >= 0x80) return decoder.decode(buf.subarray(start, start + n));
    hash = (Math.imul(hash, 31) + c) | 0;
  }
  const slot = hash & (recent.length - 1);
  const cached = recent[slot];
  // A forest's thousands of distinct value names mostly find another name in their slot: its hash tells.
  if (cached !== undefined && recentHash[slot] === hash && cached.length === n) {
    let same = true;
    for (let i = 0; i < n && same; i++) same = cached.charCodeAt(i) === buf[start + i];
    if (same) return cached;
  }
  // Latin-1 is UTF-8 for ASCII, and one call into Node.
  const s = text.toString('latin1', start, start + n);
  recent[slot] = s;
  recentHash[slot] = hash;
  return s;
}

const encoder = new TextEncoder();

/** Whether the `n` bytes of `a` from `at` are those of `b` from `start`. */
function sameBytes(a: Uint8Array, at: number, b: Uint8Array, start: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[at + i] !== b[start + i]) return false;
  return true;
}

/**
 * The value names of one model as numbers, 0, 1, 2, ... in order of first mention, found by their bytes: a
 * forest's 8,000 input and output names are wired without a string each (or a map of strings). A name is decoded
 * only when asked for, by an error message.
 */
export class NameIds {
  /** Open addressing: id + 1 of the name hashed to each slot, 0 where none is. */
  private slots: Int32Array;
  private readonly bufs: Uint8Array[] = [];
  private readonly starts: number[] = [];
  private readonly lengths: number[] = [];
  private readonly hashes: number[] = [];

  /**
   * Names for a model of `bytes` bytes: a table sized for about a name per 64 bytes (a forest's 8,000 names in
   * 0.8 MB), so a small model's is small (a table over 64 bytes has a backing store of its own) and a forest's
   * does not grow four times.
   */
  constructor(bytes = 0) {
    let size = 16;
    while (size < bytes >>> 6 && size < 1 << 20) size *= 2;
    this.slots = new Int32Array(size);
  }

  /** How many names have ids. */
  get size(): number {
    return this.starts.length;
  }

  /** The id of the name in `n` bytes of `buf` from `start`; a name not seen before gets the next id. */
  id(buf: Uint8Array, start: number, n: number): number {
    let hash = n;
    for (let i = start; i < start + n; i++) hash = (Math.imul(hash, 31) + buf[i]!) | 0;
    const mask = this.slots.length - 1;
    for (let s = hash & mask; ; s = (s + 1) & mask) {
      const entry = this.slots[s]!;
      if (entry === 0) {
        const id = this.starts.length;
        this.bufs.push(buf);
        this.starts.push(start);
        this.lengths.push(n);
        this.hashes.push(hash);
        this.slots[s] = id + 1;
        if (2 * (id + 1) > this.slots.length) this.grow();
        return id;
      }
      const id = entry - 1;
      if (
        this.hashes[id] === hash &&
        this.lengths[id] === n &&
        sameBytes(this.bufs[id]!, this.starts[id]!, buf, start, n)
      )
        return id;
    }
  }

  /** The id of `name` (a name given as a string: the graph's input and output). */
  idOf(name: string): number {
    const bytes = encoder.encode(name);
    return this.id(bytes, 0, bytes.length);
  }

  /** The name whose id is `id`. */
  name(id: number): string {
    const start = this.starts[id];
    return start === undefined ? '' : decoder.decode(this.bufs[id]!.subarray(start, start + this.lengths[id]!));
  }

  private grow(): void {
    const slots = new Int32Array(2 * this.slots.length);
    const mask = slots.length - 1;
    for (let id = 0; id < this.hashes.length; id++) {
      let s = this.hashes[id]! & mask;
      while (slots[s] !== 0) s = (s + 1) & mask;
      slots[s] = id + 1;
    }
    this.slots = slots;
  }
}

/** Values of an unpacked repeated varint field as they are read, before they are copied out at their count. */
const varintScratch: number[] = [];

/** Values of an unpacked repeated string field as they are read (a forest's modes, one per node), as above. */
const stringScratch: string[] = [];

const NO_DOUBLES = new Float64Array(0);
const NO_FLOATS = new Float32Array(0);

/** Values a model's first buffer of each kind holds at most: a forest's 0.8 MB reads into about six. */
const ARENA_CHUNK = 32768;

/**
 * The number lists of one model's attributes, read into a few shared buffers and handed out as views: a forest's
 * thousand id, threshold and table lists then cost no array (or backing store) each, and leave nothing for the
 * scavenger to copy while the model compiles. Whoever keeps a list copies it: an operator's prepared parameters
 * never hold a view (a program crossing threads would carry the whole buffer).
 */
export class NumberArena {
  private doubles = NO_DOUBLES;
  private floats = NO_FLOATS;
  private doublesUsed = 0;
  private floatsUsed = 0;
  /** Values the first buffer of each kind holds (made when first needed: most small models have no lists). */
  private readonly first: number;

  /** An arena for a model of `bytes` bytes (a small model gets small buffers: it has few lists). */
  constructor(bytes: number) {
    this.first = Math.min(ARENA_CHUNK, 16 + (bytes >>> 2));
  }

  /** Room for `n` float32 values, as a view. */
  float32(n: number): Float32Array {
    if (this.floatsUsed + n > this.floats.length) {
      this.floats = new Float32Array(Math.max(this.floats.length === 0 ? this.first : ARENA_CHUNK, n));
      this.floatsUsed = 0;
    }
    const view = new Float32Array(this.floats.buffer, 4 * this.floatsUsed, n);
    this.floatsUsed += n;
    return view;
  }

  /**
   * The buffer with room for `n` values of a new list from {@link next}: write them there and call {@link done}
   * with how many were written.
   */
  reserve(n: number): Float64Array {
    if (this.doublesUsed + n > this.doubles.length) {
      this.doubles = new Float64Array(Math.max(this.doubles.length === 0 ? this.first : ARENA_CHUNK, n));
      this.doublesUsed = 0;
    }
    return this.doubles;
  }

  /** Where in the buffer {@link reserve} returned the new list starts. */
  get next(): number {
    return this.doublesUsed;
  }

  /** The `count` values written from {@link next}, as a view. */
  done(count: number): Float64Array {
    const view = new Float64Array(this.doubles.buffer, 8 * this.doublesUsed, count);
    this.doublesUsed += count;
    return view;
  }
}

/**
 * Reads one protobuf message and the messages inside it: `enter` narrows the reader to a length-delimited field
 * and `leave` widens it back, so a forest's thousands of nodes and attributes need no reader object each.
 */
export class Reader {
  pos = 0;
  end: number;
  private readonly view: DataView;
  /** The same bytes as a Buffer, for decoding strings. */
  private readonly text: Buffer;

  constructor(readonly buf: Uint8Array) {
    this.end = buf.length;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.text = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  varint(): number {
    const buf = this.buf;
    let pos = this.pos;
    if (pos < this.end && buf[pos]! < 0x80) {
      this.pos = pos + 1;
      return buf[pos]!;
    }
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      if (pos >= this.end) throw new UnsupportedGraph('truncated protobuf');
      const b = buf[pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        this.pos = pos;
        return result;
      }
      mul *= 128;
    }
    // Past 49 bits (a negative int64 takes 10 bytes): exact through BigInt.
    pos = this.pos;
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (pos >= this.end) throw new UnsupportedGraph('truncated protobuf');
      const b = buf[pos++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        return Number(BigInt.asIntN(64, v));
      }
    }
    throw new UnsupportedGraph('malformed varint');
  }

  /** The length of a length-delimited field, checked against the message it is in. */
  private length(): number {
    const n = this.varint();
    if (this.pos + n > this.end) throw new UnsupportedGraph('truncated protobuf');
    return n;
  }

  bytes(): Uint8Array {
    const n = this.length();
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** Moves past `n` bytes (a length read before, so never `this.pos += this.length()`). */
  private pass(n: number): void {
    this.pos += n;
  }

  /** Narrows the reader to the message in this field; returns what {@link leave} restores. */
  enter(): number {
    const n = this.length();
    const outer = this.end;
    this.end = this.pos + n;
    return outer;
  }

  /** Skips what is left of the message entered and widens the reader back to `outer`. */
  leave(outer: number): void {
    this.pos = this.end;
    this.end = outer;
  }

  /** A UTF-8 string. */
  string(): string {
    const n = this.length();
    this.pos += n;
    return decode(this.buf, this.text, this.pos - n, n);
  }

  /** A value name's id in `names`; -1 for the empty name (an optional input or output left out). */
  nameId(names: NameIds): number {
    const n = this.length();
    this.pos += n;
    return n === 0 ? -1 : names.id(this.buf, this.pos - n, n);
  }

  float(): number {
    if (this.pos + 4 > this.end) throw new UnsupportedGraph('truncated protobuf');
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.pass(this.length());
    else if (wire === 5) this.pos += 4;
    else throw new UnsupportedGraph(`protobuf wire type ${wire}`);
    if (this.pos > this.end) throw new UnsupportedGraph('truncated protobuf');
  }

  /**
   * A repeated varint field: packed (one length-delimited run), or unpacked (proto2's default, which ONNX uses:
   * one key per value), when this value and the ones right after it under the same one-byte key are read in
   * one loop into an array of their exact length. `key` is the field's unpacked key.
   */
  varints(wire: number, key: number): number[] {
    // A plain array, not a Float64Array: a forest has about a thousand such fields, and a typed array of more than
    // 64 bytes allocates a backing store of its own, several times the cost of the array (which callers copy anyway).
    if (wire === 2) {
      const outer = this.enter();
      const out: number[] = [];
      while (this.pos < this.end) out.push(this.varint());
      this.leave(outer);
      return out;
    }
    if (wire !== 0) throw new UnsupportedGraph(`protobuf wire type ${wire} for varints`);
    let n = 0;
    do varintScratch[n++] = this.varint();
    while (this.again(key));
    return varintScratch.slice(0, n);
  }

  /**
   * {@link varints} into `arena`, as a view of it: room is made for as many values as the bytes left could hold,
   * and values of one or two bytes (a forest's ids) are read without a call each.
   */
  varintsInto(wire: number, key: number, arena: NumberArena): Float64Array {
    const packed = wire === 2;
    if (!packed && wire !== 0) throw new UnsupportedGraph(`protobuf wire type ${wire} for varints`);
    const outer = packed ? this.enter() : this.end;
    const buf = this.buf;
    const end = this.end;
    // Unpacked, each value after the first takes its key's byte as well.
    const out = arena.reserve(packed ? end - this.pos : ((end - this.pos + 1) >>> 1) + 1);
    const first = arena.next;
    let at = first;
    let pos = this.pos;
    for (;;) {
      if (pos >= end) {
        if (packed) break;
        throw new UnsupportedGraph('truncated protobuf');
      }
      const b = buf[pos]!;
      if (b < 0x80) {
        out[at++] = b;
        pos++;
      } else if (pos + 1 < end && buf[pos + 1]! < 0x80) {
        out[at++] = (b & 0x7f) | (buf[pos + 1]! << 7);
        pos += 2;
      } else {
        this.pos = pos;
        out[at++] = this.varint();
        pos = this.pos;
      }
      if (!packed) {
        if (key >= 0x80 || pos >= end || buf[pos] !== key) break;
        pos++;
      }
    }
    this.pos = pos;
    if (packed) this.leave(outer);
    return arena.done(at - first);
  }

  /** A repeated float (width 4) or double (width 8) field, packed or unpacked as {@link varints} reads them. */
  fixed<T extends Float32Array | Float64Array>(wire: number, key: number, width: 4 | 8, make: (n: number) => T): T {
    const fixedWire = width === 4 ? 5 : 1;
    const packed = wire === 2;
    if (!packed && wire !== fixedWire) throw new UnsupportedGraph(`protobuf wire type ${wire} for numbers`);
    const bytes = packed ? this.length() : width;
    if (bytes % width !== 0) throw new UnsupportedGraph('truncated protobuf');
    const step = packed ? width : width + 1;
    const n = packed ? bytes / width : this.run(key, () => this.pass(width));
    if (this.pos + (n - 1) * step + width > this.end) throw new UnsupportedGraph('truncated protobuf');
    const out = make(n);
    const view = this.view;
    for (let i = 0, at = this.pos; i < n; i++, at += step) {
      out[i] = width === 4 ? view.getFloat32(at, true) : view.getFloat64(at, true);
    }
    this.pos += (n - 1) * step + width;
    return out;
  }

  /** A repeated string field (unpacked, as every repeated string is), read as {@link varints} reads numbers. */
  strings(key: number): string[] {
    let n = 0;
    // The distinct values of this field so far (a forest's modes are a few names repeated): a repeat is found by
    // comparing bytes, without hashing.
    const seen: { start: number; n: number; text: string }[] = [];
    do {
      const length = this.length();
      const start = this.pos;
      this.pos += length;
      let text: string | undefined;
      for (let k = 0; k < seen.length && text === undefined; k++) {
        const v = seen[k]!;
        if (v.n === length && sameBytes(this.buf, v.start, this.buf, start, length)) text = v.text;
      }
      if (text === undefined) {
        text = decode(this.buf, this.text, start, length);
        if (seen.length < 8) seen.push({ start, n: length, text });
      }
      stringScratch[n++] = text;
    } while (this.again(key));
    return stringScratch.slice(0, n);
  }

  /** Whether the next field is `key` again (an unpacked repeated field's next value); if so, moves past the key. */
  private again(key: number): boolean {
    if (key >= 0x80 || this.pos >= this.end || this.buf[this.pos] !== key) return false;
    this.pos++;
    return true;
  }

  /**
   * How many values of an unpacked repeated field start here: this one and those right after it under the same
   * one-byte `key`, found by skipping each with `skip`; the reader's position is left where it was.
   */
  private run(key: number, skip: () => void): number {
    const start = this.pos;
    let n = 1;
    skip();
    while (key < 0x80 && this.pos < this.end && this.buf[this.pos] === key) {
      this.pos++;
      skip();
      n++;
    }
    if (this.pos > this.end) throw new UnsupportedGraph('truncated protobuf');
    this.pos = start;
    return n;
  }
}

/** `more` appended to `values` (a field repeated in two runs, which writers seldom do). */
export function concat<T extends Float32Array | Float64Array>(values: T, more: T): T {
  if (values.length === 0) return more;
  const out = new (values.constructor as new (n: number) => T)(values.length + more.length);
  out.set(values);
  out.set(more, values.length);
  return out;
}

/** {@link concat} for varints. */
export function concatInts(values: number[], more: number[]): number[] {
  return values.length === 0 ? more : values.concat(more);
}

/** A Float32Array of `n` values, for {@link Reader.fixed} reading floats. */
export const makeFloat32 = (n: number) => new Float32Array(n);
/** A Float64Array of `n` values, for {@link Reader.fixed} reading doubles. */
export const makeFloat64 = (n: number) => new Float64Array(n);

/** The key of an unpacked field: its number and wire type as protobuf writes them before each value. */
export const key = (field: number, wire: number) => field * 8 + wire;

/** `n` as a protobuf varint, for the few places that write protobuf on the wire. */
export function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}

/** A length-delimited field on the wire: its key, its length and `body`. */
export function lengthDelimited(field: number, body: Uint8Array): Uint8Array[] {
  return [varint(key(field, 2)), varint(body.length), body];
}
