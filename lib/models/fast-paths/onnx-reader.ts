/**
 * A minimal protobuf reader for the parts of an ONNX ModelProto the fast path compiles (opset imports, nodes,
 * attributes, initializers). onnx-proto's generic decoder turns every int64 into an object and every float list
 * into a JavaScript array, which makes a 100-tree forest take hundreds of milliseconds to read; this reader
 * decodes packed numbers straight into typed arrays and skips every field it does not need.
 */
import { UnsupportedGraph } from './tensor';

/** A TensorProto's fields the fast path reads. */
export interface RawTensor {
  name: string;
  dims: number[];
  dataType: number;
  raw?: Uint8Array;
  floats?: Float32Array;
  doubles?: Float64Array;
  /** int32_data or int64_data, as numbers. */
  ints?: Float64Array;
  external: boolean;
}

/** An AttributeProto's fields the fast path reads. */
export interface RawAttribute {
  name: string;
  type: number;
  f: number;
  i: number;
  s: Uint8Array;
  t?: RawTensor;
  floats: Float32Array;
  /** As numbers: exact below 2^53, which covers ids, counts and shapes. */
  ints: Float64Array;
  strings: string[];
  refAttrName: string;
}

/** A NodeProto's fields the fast path reads. */
export interface RawNode {
  input: string[];
  output: string[];
  opType: string;
  domain: string;
  attribute: RawAttribute[];
}

/** A ModelProto reduced to what the fast path compiles. */
export interface RawModel {
  opsets: { domain: string; version: number }[];
  nodes: RawNode[];
  initializers: RawTensor[];
  /** Whether the graph has subgraphs or other content this reader does not follow. */
  hasGraph: boolean;
}

const decoder = new TextDecoder();
/** Short ASCII strings decoded lately, by a hash of their bytes (verified before use). */
const recent = new Array<string | undefined>(4096);

/**
 * The UTF-8 string in `n` bytes of `buf` from `start`. Names, op types and modes are short ASCII and repeat (a
 * forest has a mode per node): those are shared through a small cache, without a string allocated per repeat.
 */
function decode(buf: Uint8Array, start: number, n: number): string {
  if (n > 32) return decoder.decode(buf.subarray(start, start + n));
  let hash = n;
  for (let i = start; i < start + n; i++) {
    const c = buf[i]!;
    if (c >= 0x80) return decoder.decode(buf.subarray(start, start + n));
    hash = (Math.imul(hash, 31) + c) | 0;
  }
  const slot = hash & (recent.length - 1);
  const cached = recent[slot];
  if (cached !== undefined && cached.length === n) {
    let same = true;
    for (let i = 0; i < n && same; i++) same = cached.charCodeAt(i) === buf[start + i];
    if (same) return cached;
  }
  const text = String.fromCharCode.apply(null, buf.subarray(start, start + n) as unknown as number[]);
  recent[slot] = text;
  return text;
}

/** Values of an unpacked repeated varint field as they are read, before they are copied out at their count. */
let varintScratch = new Float64Array(1024);

/**
 * Reads one protobuf message and the messages inside it: `enter` narrows the reader to a length-delimited field
 * and `leave` widens it back, so a forest's thousands of nodes and attributes need no reader object each.
 */
class Reader {
  pos = 0;
  end: number;
  private readonly view: DataView;

  constructor(readonly buf: Uint8Array) {
    this.end = buf.length;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
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
    return decode(this.buf, this.pos - n, n);
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
  varints(wire: number, key: number): Float64Array {
    if (wire === 2) {
      const outer = this.enter();
      let n = 0;
      for (let p = this.pos; p < this.end; p++) if (this.buf[p]! < 0x80) n++;
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = this.varint();
      this.leave(outer);
      return out;
    }
    if (wire !== 0) throw new UnsupportedGraph(`protobuf wire type ${wire} for varints`);
    let values = varintScratch;
    let n = 0;
    do {
      if (n === values.length) {
        const more = new Float64Array(2 * n);
        more.set(values);
        values = varintScratch = more;
      }
      values[n++] = this.varint();
    } while (this.again(key));
    return values.slice(0, n);
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
    const out: string[] = [];
    // The distinct values of this field so far (a forest's modes are a few names repeated): a repeat is found by
    // comparing bytes, without hashing.
    const seen: { start: number; n: number; text: string }[] = [];
    do {
      const n = this.length();
      const start = this.pos;
      this.pos += n;
      let text: string | undefined;
      for (let k = 0; k < seen.length && text === undefined; k++) {
        const v = seen[k]!;
        let same = v.n === n;
        for (let i = 0; i < n && same; i++) same = this.buf[v.start + i] === this.buf[start + i];
        if (same) text = v.text;
      }
      if (text === undefined) {
        text = decode(this.buf, start, n);
        if (seen.length < 8) seen.push({ start, n, text });
      }
      out.push(text);
    } while (this.again(key));
    return out;
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
function concat<T extends Float32Array | Float64Array>(values: T, more: T): T {
  if (values.length === 0) return more;
  const out = new (values.constructor as new (n: number) => T)(values.length + more.length);
  out.set(values);
  out.set(more, values.length);
  return out;
}

const makeFloat32 = (n: number) => new Float32Array(n);
const makeFloat64 = (n: number) => new Float64Array(n);

/** The key of an unpacked field: its number and wire type as protobuf writes them before each value. */
const key = (field: number, wire: number) => field * 8 + wire;

// Shared by every tensor and attribute without such values (read only; a program copies what it keeps).
const NO_BYTES: Uint8Array = new Uint8Array(0);
const NO_FLOATS: Float32Array = new Float32Array(0);
const NO_DOUBLES: Float64Array = new Float64Array(0);

function readTensor(r: Reader): RawTensor {
  const t: RawTensor = { name: '', dims: [], dataType: 0, external: false };
  let floats = NO_FLOATS;
  let doubles = NO_DOUBLES;
  let ints = NO_DOUBLES;
  let dims = NO_DOUBLES;
  while (r.pos < r.end) {
    const k = r.varint();
    const wire = k & 7;
    switch (k >>> 3) {
      case 1:
        dims = concat(dims, r.varints(wire, key(1, 0)));
        break;
      case 2:
        t.dataType = r.varint();
        break;
      case 4:
        floats = concat(floats, r.fixed(wire, key(4, 5), 4, makeFloat32));
        break;
      case 5:
      case 7:
        ints = concat(ints, r.varints(wire, key(k >>> 3, 0)));
        break;
      case 8:
        t.name = r.string();
        break;
      case 9:
        t.raw = r.bytes().slice();
        break;
      case 10:
        doubles = concat(doubles, r.fixed(wire, key(10, 1), 8, makeFloat64));
        break;
      case 14:
        t.external = r.varint() === 1;
        break;
      case 3:
      case 13:
        throw new UnsupportedGraph('segmented or external tensor');
      default:
        r.skip(wire);
    }
  }
  t.dims = Array.from(dims);
  if (floats.length) t.floats = floats;
  if (doubles.length) t.doubles = doubles;
  if (ints.length) t.ints = ints;
  return t;
}

function readAttribute(r: Reader): RawAttribute {
  const a: RawAttribute = {
    name: '',
    type: 0,
    f: 0,
    i: 0,
    s: NO_BYTES,
    floats: NO_FLOATS,
    ints: NO_DOUBLES,
    strings: [],
    refAttrName: '',
  };
  while (r.pos < r.end) {
    const k = r.varint();
    const wire = k & 7;
    switch (k >>> 3) {
      case 1:
        a.name = r.string();
        break;
      case 2:
        a.f = r.float();
        break;
      case 3:
        a.i = r.varint();
        break;
      case 4:
        a.s = r.bytes();
        break;
      case 5: {
        const outer = r.enter();
        a.t = readTensor(r);
        r.leave(outer);
        break;
      }
      case 7:
        a.floats = concat(a.floats, r.fixed(wire, key(7, 5), 4, makeFloat32));
        break;
      case 8:
        a.ints = concat(a.ints, r.varints(wire, key(8, 0)));
        break;
      case 9: {
        const more = r.strings(key(9, 2));
        a.strings = a.strings.length === 0 ? more : a.strings.concat(more);
        break;
      }
      case 20:
        a.type = r.varint();
        break;
      case 21:
        a.refAttrName = r.string();
        break;
      case 6:
      case 10:
      case 11:
      case 22:
      case 23:
        throw new UnsupportedGraph('graph or sparse-tensor attributes');
      default:
        r.skip(wire);
    }
  }
  return a;
}

function readNode(r: Reader): RawNode {
  const n: RawNode = { input: [], output: [], opType: '', domain: '', attribute: [] };
  while (r.pos < r.end) {
    const k = r.varint();
    switch (k >>> 3) {
      case 1:
        n.input.push(r.string());
        break;
      case 2:
        n.output.push(r.string());
        break;
      case 4:
        n.opType = r.string();
        break;
      case 7:
        n.domain = r.string();
        break;
      case 5: {
        const outer = r.enter();
        n.attribute.push(readAttribute(r));
        r.leave(outer);
        break;
      }
      default:
        r.skip(k & 7);
    }
  }
  return n;
}

/** Reads `bytes` as an ONNX ModelProto; throws UnsupportedGraph when it is not one this reader follows. */
export function readOnnx(bytes: Uint8Array): RawModel {
  const m: RawModel = { opsets: [], nodes: [], initializers: [], hasGraph: false };
  const r = reader(bytes);
  while (r.pos < r.end) {
    const k = r.varint();
    const field = k >>> 3;
    if (field === 8) {
      const o = { domain: '', version: 0 };
      const outer = r.enter();
      while (r.pos < r.end) {
        const g = r.varint();
        if (g >>> 3 === 1) o.domain = r.string();
        else if (g >>> 3 === 2) o.version = r.varint();
        else r.skip(g & 7);
      }
      r.leave(outer);
      m.opsets.push(o);
    } else if (field === 7) {
      m.hasGraph = true;
      const outer = r.enter();
      while (r.pos < r.end) {
        const h = r.varint();
        if (h === key(1, 2) || h === key(5, 2)) {
          const inner = r.enter();
          if (h === key(1, 2)) m.nodes.push(readNode(r));
          else m.initializers.push(readTensor(r));
          r.leave(inner);
        } else if (h >>> 3 === 15) throw new UnsupportedGraph('sparse initializers');
        else r.skip(h & 7);
      }
      r.leave(outer);
    } else if (field === 25) {
      throw new UnsupportedGraph('model-local functions');
    } else r.skip(k & 7);
  }
  return m;
}

/** A reader of `bytes` through a plain Uint8Array view (a Node Buffer's slice() would share memory). */
function reader(bytes: Uint8Array): Reader {
  return new Reader(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

/**
 * The op types of the graph's nodes in order, or undefined when the graph has more than `limit` nodes (counted
 * without decoding them): a recogniser of a small graph rejects a 2,700-node forest with it in microseconds, where
 * decoding the model would block the event loop for tens of milliseconds. Throws UnsupportedGraph on bytes that
 * are not a protobuf message.
 */
export function graphOpTypes(bytes: Uint8Array, limit: number): string[] | undefined {
  const r = reader(bytes);
  const graphs: [number, number][] = [];
  while (r.pos < r.end) {
    const k = r.varint();
    if (k !== key(7, 2)) {
      r.skip(k & 7);
      continue;
    }
    const outer = r.enter();
    graphs.push([r.pos, r.end]);
    r.leave(outer);
  }
  let count = 0;
  forEachNode(r, graphs, () => {
    count++;
    r.skip(2);
  });
  if (count > limit) return undefined;
  const ops: string[] = [];
  forEachNode(r, graphs, () => {
    let op = '';
    const outer = r.enter();
    while (r.pos < r.end) {
      const k = r.varint();
      if (k === key(4, 2)) op = r.string();
      else r.skip(k & 7);
    }
    r.leave(outer);
    ops.push(op);
  });
  return ops;
}

/** Calls `node` with the reader at each node field of the graphs at `graphs` (start and end offsets). */
function forEachNode(r: Reader, graphs: [number, number][], node: () => void): void {
  for (const [start, end] of graphs) {
    r.pos = start;
    r.end = end;
    while (r.pos < r.end) {
      const k = r.varint();
      if (k === key(1, 2)) node();
      else r.skip(k & 7);
    }
  }
}
