/**
 * A minimal protobuf reader for the parts of an ONNX ModelProto the fast path compiles (opset imports, nodes,
 * attributes, initializers). onnx-proto's generic decoder turns every int64 into an object and every float list
 * into a JavaScript array, which makes a 100-tree forest take hundreds of milliseconds to read; this reader
 * decodes packed numbers straight into typed arrays and skips every field it does not need.
 */
import { concat, concatInts, key, makeFloat32, makeFloat64, NameIds, NumberArena, Reader } from './protobuf-reader';
import { UnsupportedGraph } from './tensor';

/** A TensorProto's fields the fast path reads. */
export interface RawTensor {
  /** The tensor's name in the model's {@link RawModel.names} (-1 for none). */
  name: number;
  dims: number[];
  dataType: number;
  raw?: Uint8Array;
  floats?: Float32Array;
  doubles?: Float64Array;
  /** int32_data or int64_data, as numbers. */
  ints?: number[];
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
  /** A view of the model's {@link NumberArena}. */
  floats: Float32Array;
  /** As numbers, exact below 2^53 (which covers ids, counts and shapes): a view of the model's {@link NumberArena}. */
  ints: Float64Array;
  strings: string[];
  /** A graph attribute (a Scan's body). */
  g?: RawGraph;
  refAttrName: string;
}

/** A NodeProto's fields the fast path reads. */
export interface RawNode {
  /** Value names by their ids in the model's {@link RawModel.names}; -1 for a value left out. */
  input: number[];
  output: number[];
  opType: string;
  domain: string;
  attribute: RawAttribute[];
}

/** A GraphProto's nodes, initializers and the ids of its inputs and outputs, in order. */
export interface RawGraph {
  nodes: RawNode[];
  initializers: RawTensor[];
  inputs: number[];
  /** Each input's tensor element type (TensorProto.DataType; 0 where the graph does not say). */
  inputTypes: number[];
  outputs: number[];
}

/** A ModelProto reduced to what the fast path compiles: its main graph's fields, and its opsets. */
export interface RawModel extends RawGraph {
  opsets: { domain: string; version: number }[];
  /** The ids of the value names that nodes and initializers mention. */
  names: NameIds;
  /** Whether the graph has subgraphs or other content this reader does not follow. */
  hasGraph: boolean;
}

// Shared by every tensor and attribute without such values (read only; a program copies what it keeps).
const NO_BYTES: Uint8Array = new Uint8Array(0);
const NO_FLOATS: Float32Array = new Float32Array(0);
const NO_DOUBLES: Float64Array = new Float64Array(0);
const NO_INTS: Float64Array = new Float64Array(0);
const NO_STRINGS: string[] = [];
const NO_IDS: number[] = [];
const NO_ATTRIBUTES: RawAttribute[] = [];

/**
 * The inputs, outputs and attributes of the nodes being read, each node's from where its reading began (a Scan
 * body's nodes are read inside their Scan's attribute) up to the top, before they are copied out at their count:
 * pushing into a fresh array gives it room for 16 (a forest has 2,700 nodes of one or two inputs and one output,
 * most without an attribute), which the scavenger then copies while the model is compiled. Never shortened, so
 * their room is allocated once.
 */
const pending = { inputs: [] as number[], outputs: [] as number[], attributes: [] as (RawAttribute | undefined)[] };
const top = { inputs: 0, outputs: 0, attributes: 0 };

function readTensor(r: Reader, names: NameIds): RawTensor {
  const t: RawTensor = { name: -1, dims: [], dataType: 0, external: false };
  let floats = NO_FLOATS;
  let doubles = NO_DOUBLES;
  let ints: number[] = [];
  let dims: number[] = [];
  while (r.pos < r.end) {
    const k = r.varint();
    const wire = k & 7;
    switch (k >>> 3) {
      case 1:
        dims = concatInts(dims, r.varints(wire, key(1, 0)));
        break;
      case 2:
        t.dataType = r.varint();
        break;
      case 4:
        floats = concat(floats, r.fixed(wire, key(4, 5), 4, makeFloat32));
        break;
      case 5:
      case 7:
        ints = concatInts(ints, r.varints(wire, key(k >>> 3, 0)));
        break;
      case 8:
        t.name = r.nameId(names);
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
  t.dims = dims;
  if (floats.length) t.floats = floats;
  if (doubles.length) t.doubles = doubles;
  if (ints.length) t.ints = ints;
  return t;
}

/** What the reading of one model shares: its value names' ids and the buffers of its attributes' number lists. */
interface ReadContext {
  names: NameIds;
  arena: NumberArena;
}

function readAttribute(r: Reader, cx: ReadContext): RawAttribute {
  const a: RawAttribute = {
    name: '',
    type: 0,
    f: 0,
    i: 0,
    s: NO_BYTES,
    floats: NO_FLOATS,
    ints: NO_INTS,
    strings: NO_STRINGS,
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
        a.t = readTensor(r, cx.names);
        r.leave(outer);
        break;
      }
      case 7:
        a.floats = concat(
          a.floats,
          r.fixed(wire, key(7, 5), 4, (n) => cx.arena.float32(n)),
        );
        break;
      case 8:
        a.ints = concat(a.ints, r.varintsInto(wire, key(8, 0), cx.arena));
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
      case 6: {
        const outer = r.enter();
        a.g = readGraph(r, cx);
        r.leave(outer);
        break;
      }
      case 10:
      case 11:
      case 22:
      case 23:
        throw new UnsupportedGraph('graph-list or sparse-tensor attributes');
      default:
        r.skip(wire);
    }
  }
  return a;
}

function readNode(r: Reader, cx: ReadContext): RawNode {
  let opType = '';
  let domain = '';
  const inputsFrom = top.inputs;
  const outputsFrom = top.outputs;
  const attributesFrom = top.attributes;
  while (r.pos < r.end) {
    const k = r.varint();
    switch (k >>> 3) {
      case 1:
        pending.inputs[top.inputs++] = r.nameId(cx.names);
        break;
      case 2:
        pending.outputs[top.outputs++] = r.nameId(cx.names);
        break;
      case 4:
        opType = r.string();
        break;
      case 7:
        domain = r.string();
        break;
      case 5: {
        const outer = r.enter();
        const attribute = readAttribute(r, cx);
        pending.attributes[top.attributes++] = attribute;
        r.leave(outer);
        break;
      }
      default:
        r.skip(k & 7);
    }
  }
  const node: RawNode = {
    input: top.inputs === inputsFrom ? NO_IDS : pending.inputs.slice(inputsFrom, top.inputs),
    output: top.outputs === outputsFrom ? NO_IDS : pending.outputs.slice(outputsFrom, top.outputs),
    opType,
    domain,
    attribute:
      top.attributes === attributesFrom
        ? NO_ATTRIBUTES
        : (pending.attributes.slice(attributesFrom, top.attributes) as RawAttribute[]),
  };
  // The attributes' arrays are the model's: not kept past it.
  for (let i = attributesFrom; i < top.attributes; i++) pending.attributes[i] = undefined;
  top.inputs = inputsFrom;
  top.outputs = outputsFrom;
  top.attributes = attributesFrom;
  return node;
}

/** Reads a GraphProto (the reader inside it): a subgraph's value names are numbered in the model's `names`. */
function readGraph(r: Reader, cx: ReadContext): RawGraph {
  const g: RawGraph = { nodes: [], initializers: [], inputs: [], inputTypes: [], outputs: [] };
  while (r.pos < r.end) {
    const h = r.varint();
    const field = h >>> 3;
    if (h === key(1, 2) || h === key(5, 2) || h === key(11, 2) || h === key(12, 2)) {
      const inner = r.enter();
      if (field === 1) g.nodes.push(readNode(r, cx));
      else if (field === 5) g.initializers.push(readTensor(r, cx.names));
      else {
        const [id, type] = valueInfo(r, cx.names);
        if (field === 11) {
          g.inputs.push(id);
          g.inputTypes.push(type);
        } else g.outputs.push(id);
      }
      r.leave(inner);
    } else if (field === 15) throw new UnsupportedGraph('sparse initializers');
    else r.skip(h & 7);
  }
  return g;
}

/** A ValueInfoProto's name id (-1 for none) and tensor element type (0 for none). */
function valueInfo(r: Reader, names: NameIds): [number, number] {
  let id = -1;
  let type = 0;
  while (r.pos < r.end) {
    const k = r.varint();
    if (k === key(1, 2)) id = r.nameId(names);
    else if (k === key(2, 2)) {
      // TypeProto.tensor_type (1) .elem_type (1)
      const typeProto = r.enter();
      while (r.pos < r.end) {
        const t = r.varint();
        if (t !== key(1, 2)) {
          r.skip(t & 7);
          continue;
        }
        const tensorType = r.enter();
        while (r.pos < r.end) {
          const e = r.varint();
          if (e === key(1, 0)) type = r.varint();
          else r.skip(e & 7);
        }
        r.leave(tensorType);
      }
      r.leave(typeProto);
    } else r.skip(k & 7);
  }
  return [id, type];
}

/** Reads `bytes` as an ONNX ModelProto; throws UnsupportedGraph when it is not one this reader follows. */
export function readOnnx(bytes: Uint8Array): RawModel {
  const m: RawModel = {
    opsets: [],
    nodes: [],
    initializers: [],
    inputs: [],
    inputTypes: [],
    outputs: [],
    names: new NameIds(bytes.length),
    hasGraph: false,
  };
  // A model that failed to read left its nodes' pending values behind.
  top.inputs = top.outputs = top.attributes = 0;
  pending.attributes.fill(undefined);
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
      Object.assign(m, readGraph(r, { names: m.names, arena: new NumberArena(bytes.length) }));
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
  // Stops at the first node past the limit: a 100-tree forest has about 8,000.
  forEachNode(r, graphs, () => {
    count++;
    r.skip(2);
    return count <= limit;
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

/**
 * Calls `node` with the reader at each node field of the graphs at `graphs` (start and end offsets), until it
 * returns false.
 */
function forEachNode(r: Reader, graphs: [number, number][], node: () => boolean | void): void {
  for (const [start, end] of graphs) {
    r.pos = start;
    r.end = end;
    while (r.pos < r.end) {
      const k = r.varint();
      if (k !== key(1, 2)) r.skip(k & 7);
      else if (node() === false) return;
    }
  }
}
