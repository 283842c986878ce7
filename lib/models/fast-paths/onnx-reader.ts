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
/** Short strings decoded lately, by a hash of their bytes (verified before use). */
const recent = new Map<number, string>();
const RECENT_STRINGS = 4096;

class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
    /** One view of the whole buffer, shared by the readers of its messages. */
    private readonly view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength),
  ) {
    this.pos = start;
  }

  varint(): number {
    const start = this.pos;
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      if (this.pos >= this.end) throw new UnsupportedGraph('truncated protobuf');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    // Past 49 bits (a negative int64 takes 10 bytes): exact through BigInt.
    this.pos = start;
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.end) throw new UnsupportedGraph('truncated protobuf');
      const b = this.buf[this.pos++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return Number(BigInt.asIntN(64, v));
    }
    throw new UnsupportedGraph('malformed varint');
  }

  bytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.end) throw new UnsupportedGraph('truncated protobuf');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  sub(): Reader {
    const n = this.varint();
    if (this.pos + n > this.end) throw new UnsupportedGraph('truncated protobuf');
    const r = new Reader(this.buf, this.pos, this.pos + n, this.view);
    this.pos += n;
    return r;
  }

  /**
   * A UTF-8 string. Names and modes are short ASCII and repeat (a forest has a mode per node): those are
   * decoded here and shared through a small cache, without a string allocated per character or per repeat.
   */
  string(): string {
    const b = this.bytes();
    if (b.length > 32) return decoder.decode(b);
    let hash = b.length;
    for (let i = 0; i < b.length; i++) {
      const c = b[i]!;
      if (c >= 0x80) return decoder.decode(b);
      hash = (Math.imul(hash, 31) + c) | 0;
    }
    const cached = recent.get(hash);
    if (cached !== undefined && cached.length === b.length) {
      let same = true;
      for (let i = 0; i < b.length && same; i++) same = cached.charCodeAt(i) === b[i];
      if (same) return cached;
    }
    const text = String.fromCharCode.apply(null, b as unknown as number[]);
    if (recent.size >= RECENT_STRINGS) recent.clear();
    recent.set(hash, text);
    return text;
  }

  float(): number {
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) {
      const n = this.varint();
      this.pos += n;
    } else if (wire === 5) this.pos += 4;
    else throw new UnsupportedGraph(`protobuf wire type ${wire}`);
  }

  /** Packed or unpacked repeated varints. */
  ints(wire: number, into: Grow<Float64Array>): void {
    if (wire !== 2) {
      into.push(this.varint());
      return;
    }
    const r = this.sub();
    while (r.pos < r.end) into.push(r.varint());
  }

  /** Packed or unpacked (proto2's default for attributes: one field per value) floats or doubles. */
  fixed(wire: number, width: 4 | 8, into: Grow<Float32Array | Float64Array>): void {
    const n = wire === 2 ? this.varint() : width;
    if (this.pos + n > this.end || n % width !== 0) throw new UnsupportedGraph('truncated protobuf');
    for (let at = this.pos; at < this.pos + n; at += width) {
      into.push(width === 4 ? this.view.getFloat32(at, true) : this.view.getFloat64(at, true));
    }
    this.pos += n;
  }
}

/**
 * Numbers appended one by one into a typed array that doubles as it fills: a forest's attributes hold hundreds
 * of thousands of them, and plain arrays of them cost more in garbage collection than in reading.
 */
class Grow<T extends Float32Array | Float64Array> {
  private data: T | undefined;
  length = 0;

  constructor(private readonly make: (n: number) => T) {}

  push(v: number): void {
    const data = this.data;
    if (data !== undefined && this.length < data.length) {
      data[this.length++] = v;
      return;
    }
    const next = this.make(Math.max(16, 2 * this.length));
    if (data) next.set(data);
    this.data = next;
    next[this.length++] = v;
  }

  /** The values appended, in an array of their own exact length. */
  done(): T {
    return this.data ? (this.data.slice(0, this.length) as T) : this.make(0);
  }
}

const makeFloat32 = (n: number) => new Float32Array(n);
const makeFloat64 = (n: number) => new Float64Array(n);
const floats32 = () => new Grow(makeFloat32);
const floats64 = () => new Grow(makeFloat64);

function fields(r: Reader, on: (field: number, wire: number) => boolean): void {
  while (r.pos < r.end) {
    const key = r.varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (!on(field, wire)) r.skip(wire);
  }
}

function readTensor(r: Reader): RawTensor {
  const t: RawTensor = { name: '', dims: [], dataType: 0, external: false };
  const floats = floats32();
  const doubles = floats64();
  const ints = floats64();
  const dims = floats64();
  fields(r, (f, w) => {
    if (f === 1) r.ints(w, dims);
    else if (f === 2) t.dataType = r.varint();
    else if (f === 4) r.fixed(w, 4, floats);
    else if (f === 5 || f === 7) r.ints(w, ints);
    else if (f === 8) t.name = r.string();
    else if (f === 9) t.raw = r.bytes().slice();
    else if (f === 10) r.fixed(w, 8, doubles);
    else if (f === 14) t.external = r.varint() === 1;
    else if (f === 3 || f === 13) throw new UnsupportedGraph('segmented or external tensor');
    else return false;
    return true;
  });
  t.dims = Array.from(dims.done());
  if (floats.length) t.floats = floats.done();
  if (doubles.length) t.doubles = doubles.done();
  if (ints.length) t.ints = ints.done();
  return t;
}

// Shared by every attribute without such values (read only; a program copies what it keeps).
const NO_BYTES = new Uint8Array(0);
const NO_FLOATS = new Float32Array(0);
const NO_INTS = new Float64Array(0);

function readAttribute(r: Reader): RawAttribute {
  const a: RawAttribute = {
    name: '',
    type: 0,
    f: 0,
    i: 0,
    s: NO_BYTES,
    floats: NO_FLOATS,
    ints: NO_INTS,
    strings: [],
    refAttrName: '',
  };
  const floats = floats32();
  const ints = floats64();
  fields(r, (f, w) => {
    if (f === 1) a.name = r.string();
    else if (f === 2) a.f = r.float();
    else if (f === 3) a.i = r.varint();
    else if (f === 4) a.s = r.bytes();
    else if (f === 5) a.t = readTensor(r.sub());
    else if (f === 7) r.fixed(w, 4, floats);
    else if (f === 8) r.ints(w, ints);
    else if (f === 9) a.strings.push(r.string());
    else if (f === 20) a.type = r.varint();
    else if (f === 21) a.refAttrName = r.string();
    else if (f === 6 || f === 10 || f === 11 || f === 22 || f === 23) {
      throw new UnsupportedGraph('graph or sparse-tensor attributes');
    } else return false;
    return true;
  });
  if (floats.length) a.floats = floats.done();
  if (ints.length) a.ints = ints.done();
  return a;
}

function readNode(r: Reader): RawNode {
  const n: RawNode = { input: [], output: [], opType: '', domain: '', attribute: [] };
  fields(r, (f) => {
    if (f === 1) n.input.push(r.string());
    else if (f === 2) n.output.push(r.string());
    else if (f === 4) n.opType = r.string();
    else if (f === 7) n.domain = r.string();
    else if (f === 5) n.attribute.push(readAttribute(r.sub()));
    else return false;
    return true;
  });
  return n;
}

/** Reads `bytes` as an ONNX ModelProto; throws UnsupportedGraph when it is not one this reader follows. */
export function readOnnx(bytes: Uint8Array): RawModel {
  const m: RawModel = { opsets: [], nodes: [], initializers: [], hasGraph: false };
  // A plain Uint8Array view: a Node Buffer's slice() would share memory where this reader needs copies.
  const plain = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const top = new Reader(plain, 0, plain.length);
  fields(top, (f) => {
    if (f === 8) {
      const o = { domain: '', version: 0 };
      const r = top.sub();
      fields(r, (g) => {
        if (g === 1) o.domain = r.string();
        else if (g === 2) o.version = r.varint();
        else return false;
        return true;
      });
      m.opsets.push(o);
    } else if (f === 7) {
      m.hasGraph = true;
      const g = top.sub();
      fields(g, (h) => {
        if (h === 1) m.nodes.push(readNode(g.sub()));
        else if (h === 5) m.initializers.push(readTensor(g.sub()));
        else if (h === 15) throw new UnsupportedGraph('sparse initializers');
        else return false;
        return true;
      });
    } else if (f === 25) {
      throw new UnsupportedGraph('model-local functions');
    } else return false;
    return true;
  });
  return m;
}

/**
 * The op types of the graph's nodes in order, or undefined when the graph has more than `limit` nodes (counted
 * without decoding them): a recogniser of a small graph rejects a 2,700-node forest with it in microseconds, where
 * decoding the model would block the event loop for tens of milliseconds. Throws UnsupportedGraph on bytes that
 * are not a protobuf message.
 */
export function graphOpTypes(bytes: Uint8Array, limit: number): string[] | undefined {
  const plain = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const graphs: Reader[] = [];
  const top = new Reader(plain, 0, plain.length);
  fields(top, (f, w) => {
    if (f !== 7 || w !== 2) return false;
    graphs.push(top.sub());
    return true;
  });
  let count = 0;
  for (const g of graphs) {
    fields(new Reader(g.buf, g.pos, g.end), (f, w) => {
      if (f === 1 && w === 2) count++;
      return false;
    });
    if (count > limit) return undefined;
  }
  const ops: string[] = [];
  for (const g of graphs) {
    fields(g, (f, w) => {
      if (f !== 1 || w !== 2) return false;
      const node = g.sub();
      let op = '';
      fields(node, (h) => {
        if (h !== 4) return false;
        op = node.string();
        return true;
      });
      ops.push(op);
      return true;
    });
  }
  return ops;
}
