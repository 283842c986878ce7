/**
 * Compiles an ONNX model into a program the fast path evaluates in TypeScript: every node that the scored output
 * depends on must be an operator of the fast path with attributes it reproduces exactly, else the model is not
 * recognised (UnsupportedGraph) and keeps its own onnxruntime session. The program is plain data (typed arrays,
 * maps, numbers), so it is built in a worker thread and handed to the event loop's thread without copying.
 */
import { elementwiseOps } from './elementwise-ops';
import { dense, fuseDense } from './fused-dense';
import { fuseNeighbors, nearest } from './fused-neighbors';
import { fuseTreeSums, treeSum } from './fused-trees';
import { linearOps } from './linear-ops';
import { mlOps } from './ml-ops';
import { NN_OPS, nnOps } from './nn-ops';
import { isTensorValue, type AttrValue, type OpDef } from './op-types';
import { readOnnx, type RawAttribute, type RawGraph, type RawModel, type RawTensor } from './onnx-reader';
import type { NameIds } from './protobuf-reader';
import { scanOps } from './scan-op';
import { shapeOps } from './shape-ops';
import { UnsupportedGraph, type DType, type Tensor } from './tensor';

/** The model families the fast path names in logs and counts, from the operators a graph uses. */
export type GraphFamily = 'tree-ensemble' | 'svm' | 'neighbors' | 'mlp' | 'linear';

/** One node of a program: an operator, its prepared parameters and its value slots. */
export interface ProgramNode {
  /** `fused`: a node the compiler made from several of the graph's (fused-trees.ts, fused-neighbors.ts, fused-dense.ts). */
  domain: 'ai.onnx' | 'ai.onnx.ml' | 'fused';
  op: string;
  params: unknown;
  inputs: number[];
  outputs: number[];
}

/**
 * A compiled subgraph (a Scan's body): evaluate `nodes` in order over `slots` values, the inputs given in slots
 * `inputs`, and read the `outputs`' slots.
 */
export interface ProgramBody {
  slots: number;
  inputs: number[];
  outputs: number[];
  constants: [number, Tensor][];
  nodes: ProgramNode[];
}

/** A compiled graph: evaluate `nodes` in order over `slots` values, the input in slot `input`. */
export interface GraphProgram {
  family: GraphFamily;
  slots: number;
  input: number;
  /** The graph input's type: a model exported with a float64 sample takes double (the rows are converted). */
  inputType: 'float' | 'double';
  output: number;
  constants: [number, Tensor][];
  nodes: ProgramNode[];
  /** The memory the program holds once linked, as V8 lays it out (within about 15 %), for byte-bounded caches. */
  bytes: number;
}

const DEFAULT_OPS = { ...elementwiseOps, ...linearOps, ...shapeOps, ...nnOps, ...scanOps };

/** Opset ranges whose operators the fast path implements as they are defined there. */
const DOMAINS: Record<
  string,
  { name: 'ai.onnx' | 'ai.onnx.ml'; min: number; max: number; ops: Record<string, OpDef> }
> = {
  '': { name: 'ai.onnx', min: 7, max: 23, ops: DEFAULT_OPS },
  'ai.onnx': { name: 'ai.onnx', min: 7, max: 23, ops: DEFAULT_OPS },
  'ai.onnx.ml': { name: 'ai.onnx.ml', min: 1, max: 3, ops: mlOps },
};

/** The operators for `domain` as the program records it. */
export function opsOf(domain: ProgramNode['domain']): Record<string, OpDef> {
  return domain === 'fused' ? FUSED : DOMAINS[domain === 'ai.onnx' ? '' : domain]!.ops;
}

const FUSED: Record<string, OpDef> = { TreeSum: treeSum, Nearest: nearest, Dense: dense };

const TYPES: Partial<Record<number, DType>> = { 1: 'float', 7: 'int64', 9: 'bool', 11: 'double' };

/** Why a TensorProto of an element type the fast path does not hold cannot be read. */
function unheldType(t: RawTensor, names: NameIds): string {
  return `tensor ${names.name(t.name)}: element type ${t.dataType} is not supported`;
}

/** A TensorProto (named in `names`) as a fast-path tensor, owning aligned data. */
export function tensorOf(t: RawTensor, names: NameIds): Tensor {
  const type = TYPES[t.dataType];
  if (!type) throw new UnsupportedGraph(unheldType(t, names));
  if (t.external) throw new UnsupportedGraph('external data');
  const n = t.dims.reduce((a, b) => a * b, 1);
  const raw = t.raw && t.raw.length > 0 ? t.raw.slice().buffer : undefined;
  let data: Tensor['data'];
  if (type === 'float') data = raw ? new Float32Array(raw) : (t.floats ?? new Float32Array());
  else if (type === 'double') data = raw ? new Float64Array(raw) : (t.doubles ?? new Float64Array());
  else if (type === 'bool') data = raw ? new Uint8Array(raw) : Uint8Array.from(t.ints ?? []);
  else data = raw ? Float64Array.from(new BigInt64Array(raw), Number) : Float64Array.from(t.ints ?? []);
  if (data.length !== n)
    throw new UnsupportedGraph(`tensor ${names.name(t.name)}: ${data.length} values for [${t.dims.join(',')}]`);
  return { type, dims: t.dims, data };
}

const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7, STRINGS: 8 };

function attrOf(a: RawAttribute, names: NameIds): AttrValue {
  switch (a.type) {
    case ATTR.FLOAT:
      return a.f;
    case ATTR.INT:
      return a.i;
    case ATTR.STRING:
      return decoder.decode(a.s);
    case ATTR.TENSOR:
      if (!a.t) throw new UnsupportedGraph(`attribute ${a.name} has no tensor`);
      return tensorOf(a.t, names);
    case ATTR.FLOATS:
      return a.floats;
    case ATTR.INTS:
      return a.ints;
    case ATTR.STRINGS:
      return a.strings;
    default:
      throw new UnsupportedGraph(`attribute ${a.name} of type ${a.type}`);
  }
}

const decoder = new TextDecoder();

/** The attributes of every node without any (read only). */
const NO_ATTRS: ReadonlyMap<string, AttrValue> = new Map();

const MLP_OPS = ['Relu', 'Sigmoid', 'Tanh', ...NN_OPS];

function familyOf(ops: Set<string>): GraphFamily {
  if (ops.has('TreeEnsembleRegressor') || ops.has('TreeEnsembleClassifier')) return 'tree-ensemble';
  if (ops.has('SVMRegressor')) return 'svm';
  if (ops.has('TopK')) return 'neighbors';
  if (MLP_OPS.some((o) => ops.has(o))) return 'mlp';
  return 'linear';
}

/**
 * What V8 holds for a value, in bytes, as its objects are laid out: a typed array's elements plus its own and its
 * buffer's records, an array's or an object's header plus a slot per element or field, a string's header and
 * characters. Shared values count once. Measured against the heap and array buffers of 2,000 linked programs per
 * model family (docs/benchmarks.md), with {@link PROGRAM_BYTES} and {@link NODE_BYTES}, within 15 %.
 */
function heldBytes(value: unknown, seen = new Set<object>()): number {
  if (typeof value === 'string') return 16 + value.length;
  if (value === null || typeof value !== 'object' || seen.has(value)) return 0;
  seen.add(value);
  if (ArrayBuffer.isView(value)) return value.byteLength + 240;
  let sum = Array.isArray(value) ? 32 : 24;
  if (Array.isArray(value)) for (const v of value as unknown[]) sum += 8 + heldBytes(v, seen);
  else if (value instanceof Map) for (const [k, v] of value) sum += 16 + heldBytes(k, seen) + heldBytes(v, seen);
  else for (const key in value) sum += 8 + heldBytes((value as Record<string, unknown>)[key], seen);
  return sum;
}

/** A linked program's own objects (the linked object, its steps' array) and each node's step, beyond what they refer to. */
const PROGRAM_BYTES = 640;
const NODE_BYTES = 160;

/**
 * Value slots, numbered in order of first use by a body's nodes. A class, not closures made per body: tsx names
 * every closure it makes (a property definition each), which a cold worker compiling thousands of small models
 * pays per model.
 */
class Slots {
  count = 0;
  private readonly slotOf: Int32Array;

  constructor(values: number) {
    this.slotOf = new Int32Array(values).fill(-1);
  }

  /** The slot of value `v`, numbered now if it has none yet. */
  slot(v: number): number {
    const s = this.slotOf[v]!;
    return s >= 0 ? s : (this.slotOf[v] = this.count++);
  }

  /** The slots of `values`, -1 for a value left out (-1). */
  of(values: readonly number[]): number[] {
    const out = new Array<number>(values.length);
    for (let i = 0; i < values.length; i++) out[i] = values[i]! >= 0 ? this.slot(values[i]!) : -1;
    return out;
  }
}

/** What the nodes of a graph or subgraph compile against: the model's names and opsets, the constants in scope. */
interface Scope {
  names: NameIds;
  opsets: Map<string, number>;
  /** Constants by value id: the outer graphs' initializers and Constant outputs, then this graph's own. */
  known: (Tensor | undefined)[];
  /** Initializers of an element type the fast path does not hold, by value id: why a graph reading one fails. */
  unreadable: Map<number, string>;
}

/**
 * Compiles `bytes` into a program computing `output` from the float32 input `input`; throws UnsupportedGraph
 * when any node the output depends on is outside what the fast path evaluates exactly. With `fuse` (the
 * default), an isolation forest's per-tree nodes become one loop over its trees (fused-trees.ts), a
 * nearest-neighbour model's distances and TopK one loop over its rows (fused-neighbors.ts), and each dense layer
 * (a Gemm, or a MatMul and its bias, and the Tanh or Relu after it) one node (fused-dense.ts).
 */
export function compileGraph(bytes: Uint8Array, input: string, output: string, fuse = true): GraphProgram {
  const model: RawModel = readOnnx(bytes);
  if (!model.hasGraph) throw new UnsupportedGraph('no graph');
  const opsets = new Map<string, number>();
  for (const o of model.opsets) {
    const d = DOMAINS[o.domain];
    if (d && (o.version < d.min || o.version > d.max))
      throw new UnsupportedGraph(`opset ${o.domain || 'ai.onnx'} ${o.version}`);
    opsets.set(o.domain === 'ai.onnx' ? '' : o.domain, o.version);
  }
  // Every value name is a number (model.names), so the walk below uses arrays rather than maps.
  const names = model.names;
  const inputId = names.idOf(input);
  const outputId = names.idOf(output);
  const known: (Tensor | undefined)[] = [];
  const body = compileBody(model, { names, opsets, known, unreadable: new Map() }, [inputId], [outputId]);
  if (known[outputId]) throw new UnsupportedGraph('the output is a constant');
  const ops = new Set(body.nodes.map((n) => n.op));
  let compiled: GraphProgram = {
    family: familyOf(ops),
    slots: body.slots,
    input: body.inputs[0]!,
    inputType: inputTypeOf(model, inputId, input),
    output: body.outputs[0]!,
    constants: body.constants,
    nodes: body.nodes,
    bytes: 0,
  };
  // Each fusion walks the whole program: only where its operators are.
  if (fuse && ops.has('TreeEnsembleRegressor')) compiled = fuseTreeSums(compiled, (n) => opsOf(n.domain)[n.op]!);
  if (fuse && ops.has('Scan') && ops.has('TopK')) compiled = fuseNeighbors(compiled, shapeOps.Gather!);
  if (fuse && (ops.has('Gemm') || ops.has('MatMul'))) compiled = fuseDense(compiled);
  compiled.bytes = PROGRAM_BYTES + compiled.nodes.length * NODE_BYTES + heldBytes(compiled);
  return compiled;
}

/** The element type of the graph's input `input` (id `id`): float32, float64, or unset (taken as float32). */
function inputTypeOf(model: RawModel, id: number, input: string): GraphProgram['inputType'] {
  const at = model.inputs.indexOf(id);
  const type = at < 0 ? 0 : model.inputTypes[at]!;
  if (type === 11) return 'double';
  if (type === 1 || type === 0) return 'float';
  throw new UnsupportedGraph(`input ${input} of element type ${type}`);
}

/**
 * Compiles the nodes of `graph` that its `outputs` depend on, given its `inputs` (value ids), into a body over
 * slots of its own; `scope.known` gains the graph's initializers and Constant outputs. A graph attribute (a Scan's
 * body) is compiled the same way, seeing the constants in scope where it is, and nothing else of the outer graph.
 */
function compileBody(graph: RawGraph, scope: Scope, inputs: number[], outputs: number[]): ProgramBody {
  const { names, opsets, known } = scope;
  for (const t of graph.initializers) {
    if (t.name < 0) continue;
    // An initializer of a type the fast path does not hold (int32 class labels) fails the graph only if needed.
    if (TYPES[t.dataType]) known[t.name] = tensorOf(t, names);
    else scope.unreadable.set(t.name, unheldType(t, names));
  }
  const producers: number[] = [];
  graph.nodes.forEach((n, k) => {
    for (const o of n.output) if (o >= 0) producers[o] = k;
  });
  const count = names.size;
  // The nodes the outputs depend on; evaluated below in graph order (ONNX requires topological order).
  const needed = new Uint8Array(graph.nodes.length);
  const visited = new Uint8Array(count);
  for (const i of inputs) visited[i] = 1;
  const stack = [...outputs];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (visited[v] || known[v]) continue;
    const unreadable = scope.unreadable.get(v);
    if (unreadable) throw new UnsupportedGraph(unreadable);
    visited[v] = 1;
    const k = producers[v];
    if (k === undefined) throw new UnsupportedGraph(`value ${names.name(v)} has no producer`);
    needed[k] = 1;
    for (const i of graph.nodes[k]!.input) if (i >= 0) stack.push(i);
  }
  const slots = new Slots(count);
  const nodes: ProgramNode[] = [];
  const used = new Uint8Array(count);
  graph.nodes.forEach((n, k) => {
    if (!needed[k]) return;
    const domain = n.domain;
    const d = DOMAINS[domain];
    const op = n.opType;
    if (!d || !opsets.has(domain === 'ai.onnx' ? '' : domain)) throw new UnsupportedGraph(`domain ${domain}`);
    // Most nodes of a forest (Add, Mul, Max, ...) have no attributes: they share one empty map.
    let attrs = NO_ATTRS;
    if (n.attribute.length > 0) {
      const read = new Map<string, AttrValue>();
      for (const a of n.attribute) {
        if (a.refAttrName) throw new UnsupportedGraph('attribute references');
        // A subgraph sees the constants defined so far and adds its own to a copy.
        read.set(
          a.name,
          a.g ? compileBody(a.g, { ...scope, known: known.slice() }, a.g.inputs, a.g.outputs) : attrOf(a, names),
        );
      }
      attrs = read;
    }
    const inputs = n.input;
    if (op === 'Constant') {
      const value = attrs.get('value');
      if (!isTensorValue(value)) throw new UnsupportedGraph('Constant without a tensor');
      if (n.output[0] !== undefined && n.output[0] >= 0) known[n.output[0]] = value;
      return;
    }
    const def = d.ops[op];
    if (!def) throw new UnsupportedGraph(`operator ${domain || 'ai.onnx'}.${op}`);
    const params = def.prepare({
      op,
      attrs,
      constants: inputs.map((v) => (v >= 0 ? known[v] : undefined)),
      inputCount: inputs.length,
      opset: opsets.get(domain === 'ai.onnx' ? '' : domain) ?? 0,
    });
    for (const j of def.absent?.(params) ?? []) {
      const v = n.output[j];
      if (v !== undefined && v >= 0 && visited[v]) {
        throw new UnsupportedGraph(`${op}: output ${names.name(v)} is not computed by the fast path`);
      }
    }
    for (const i of inputs) if (i >= 0) used[i] = 1;
    nodes.push({
      domain: d.name,
      op,
      params,
      inputs: slots.of(inputs),
      outputs: slots.of(n.output),
    });
  });
  for (const o of outputs) used[o] = 1;
  // The constants the body reads, in order of their names' first mention.
  const constants: [number, Tensor][] = [];
  for (let v = 0; v < count; v++) {
    const t = known[v];
    if (t && used[v]) constants.push([slots.slot(v), t]);
  }
  const inputSlots = slots.of(inputs);
  const outputSlots = slots.of(outputs);
  return { slots: slots.count, inputs: inputSlots, outputs: outputSlots, constants, nodes };
}
