/**
 * Models with one input per feature column, joined into one input at registration. skl2onnx exports a model fitted
 * on a pandas DataFrame (`to_onnx(model, df[:1])`) with an input per column, each [rows, 1] and named after the
 * column, joined by a `FeatureVectorizer` (or `Concat`). fleetscore feeds a model one [rows, features] tensor, so
 * registration gives such a model that input, named as model.json's `input.name`, and a `Gather` per column that
 * takes the column out of it under the old input's name (and a `Cast` to the old input's type where it differs, as
 * for an integer column): the rest of the graph is kept byte for byte (on the wire, as external-data.ts rewrites
 * tensors) and sees the values it saw before.
 */
import { onnx } from 'onnx-proto';
import { InvalidModel, messageOf } from '../shared/errors';
import { Reader, key, lengthDelimited } from './fast-paths/protobuf-reader';
import type { ModelMeta } from './model-meta';
import type { GraphInfo, TensorInfo } from './onnx-graph-check';
import { ATTRIBUTE, GRAPH, MODEL, NODE, TENSOR, VALUE_INFO } from './onnx-wire';

/** Which device and file the model is, for errors. */
interface Context {
  device: string;
  file: string;
}

/**
 * `bytes` (whose graph `inspectOnnx` read as `graph`) with its per-column inputs joined into one input
 * `meta.input.name`, when the graph has more than one input
 * and those inputs are exactly model.json's features, each [rows, 1] or [rows] of float, double, int64 or int32 (a
 * DataFrame's integer column); `bytes` itself otherwise (the graph check that follows says what does not fit). The
 * joined input is double if a column is, else float; a column of another type is cast to it from there. Throws
 * InvalidModel when a name the join adds is already a value of the graph, or when the columns are not joined as a
 * pipeline's are (see {@link checkJoined}).
 */
export function joinColumnInputs(
  bytes: Uint8Array,
  { inputs }: GraphInfo,
  meta: ModelMeta,
  context: Context,
): Uint8Array {
  const features = meta.features;
  if (inputs.size < 2 || inputs.size !== features.length) return bytes;
  if (![...inputs.keys()].every((name) => features.includes(name))) return bytes;
  const { FLOAT, DOUBLE, INT64, INT32 } = onnx.TensorProto.DataType;
  const typeOf = (column: string) => inputs.get(column)!.elemType;
  if (!features.every((f) => [FLOAT, DOUBLE, INT64, INT32].includes(typeOf(f)!))) return bytes;
  if (![...inputs.values()].every(isColumn)) return bytes;
  const elemType = features.some((f) => typeOf(f) === DOUBLE) ? DOUBLE : FLOAT;

  const joined = meta.input.name;
  const indexName = (column: string) => `${joined}.fleetscore_column.${column}`;
  const valueName = (column: string) => `${joined}.fleetscore_column.${column}.value`;
  let values: GraphValues;
  try {
    values = graphValues(bytes);
  } catch (err) {
    // A node or subgraph whose bytes are no protobuf (the check before read only the graph's own fields).
    const message = `${context.file}: not an ONNX model (${messageOf(err)})`;
    throw new InvalidModel(message, context, { cause: err });
  }
  for (const name of [joined, ...features.flatMap((f) => [indexName(f), valueName(f)])]) {
    if (values.names.has(name)) {
      const message =
        `${context.file}: has one input per feature, which registration joins into one input named by ` +
        `input.name, but ${JSON.stringify(name)} already names a value of the graph: choose another input.name`;
      throw new InvalidModel(message, { ...context, field: 'input.name' });
    }
  }
  checkJoined(features, values, context);
  const { INT } = onnx.AttributeProto.AttributeType;
  const columns: Uint8Array[] = [];
  features.forEach((column, j) => {
    const rank = inputs.get(column)!.dims?.length ?? 2;
    const cast = typeOf(column) !== elemType;
    const nodes: onnx.INodeProto[] = [
      {
        name: `fleetscore_column.${column}`,
        opType: 'Gather',
        input: [joined, indexName(column)],
        output: [cast ? valueName(column) : column],
        attribute: [{ name: 'axis', type: INT, i: 1 }],
      },
    ];
    if (cast) {
      nodes.push({
        name: `fleetscore_column.${column}.cast`,
        opType: 'Cast',
        input: [valueName(column)],
        output: [column],
        attribute: [{ name: 'to', type: INT, i: typeOf(column) }],
      });
    }
    // A [1] index keeps the column's [rows, 1]; a scalar one gives [rows].
    const index = onnx.TensorProto.encode({
      name: indexName(column),
      dataType: INT64,
      dims: rank === 2 ? [1] : [],
      int64Data: [j],
    }).finish();
    for (const node of nodes) columns.push(...lengthDelimited(GRAPH.node, onnx.NodeProto.encode(node).finish()));
    columns.push(...lengthDelimited(GRAPH.initializer, index));
  });
  const input = onnx.ValueInfoProto.encode({
    name: joined,
    type: { tensorType: { elemType, shape: { dim: [{ dimParam: 'N' }, { dimValue: features.length }] } } },
  }).finish();
  return rewriteGraph(bytes, (graph) => {
    // The new nodes first (a graph's nodes are in an order that computes each value before its use), then every
    // field as it was but the per-column inputs, then the joined input.
    const kept: Uint8Array[] = [];
    const r = new Reader(graph);
    while (r.pos < r.end) {
      const start = r.pos;
      const k = r.varint();
      if (k === key(GRAPH.input, 2)) {
        if (inputs.has(nameOf(r.bytes(), VALUE_INFO.name))) continue;
      } else r.skip(k & 7);
      kept.push(graph.subarray(start, r.pos));
    }
    return Buffer.concat([...columns, ...kept, ...lengthDelimited(GRAPH.input, input)]);
  });
}

/** Whether an input is one column: [rows, 1] or [rows]. */
function isColumn(info: TensorInfo): boolean {
  const dims = info.dims;
  return dims !== undefined && (dims.length === 1 || (dims.length === 2 && dims[1] === 1));
}

/** The string field `field` of the message `buf`; '' when it has none. */
function nameOf(buf: Uint8Array, field: number): string {
  const r = new Reader(buf);
  let name = '';
  while (r.pos < r.end) {
    const k = r.varint();
    if (k === key(field, 2)) name = r.string();
    else r.skip(k & 7);
  }
  return name;
}

/** What the join needs to know of a graph, its subgraphs included. */
interface GraphValues {
  /**
   * Every name a value has: node inputs and outputs, initializers, inputs, outputs, value infos. A name added to the
   * main graph must be none of them: ONNX lets no subgraph define a name the graph around it has.
   */
  names: Set<string>;
  /** Every node's operator and inputs, subgraphs' (a Scan's body, an If's branches) too. */
  nodes: { op: string; inputs: string[] }[];
  /** The main graph's outputs. */
  outputs: string[];
}

function graphValues(bytes: Uint8Array): GraphValues {
  const values: GraphValues = { names: new Set(), nodes: [], outputs: [] };
  const r = new Reader(bytes);
  while (r.pos < r.end) {
    const k = r.varint();
    if (k === key(MODEL.graph, 2)) readGraph(r.bytes(), values, true);
    else r.skip(k & 7);
  }
  return values;
}

function readGraph(buf: Uint8Array, values: GraphValues, main: boolean): void {
  const { names } = values;
  const graph = new Reader(buf);
  while (graph.pos < graph.end) {
    const g = graph.varint();
    if (g === key(GRAPH.node, 2)) {
      const node = new Reader(graph.bytes());
      const read = { op: '', inputs: [] as string[] };
      while (node.pos < node.end) {
        const n = node.varint();
        if (n === key(NODE.input, 2)) read.inputs.push(node.string());
        else if (n === key(NODE.output, 2)) names.add(node.string());
        else if (n === key(NODE.opType, 2)) read.op = node.string();
        else if (n === key(NODE.attribute, 2)) {
          const attribute = new Reader(node.bytes());
          while (attribute.pos < attribute.end) {
            const a = attribute.varint();
            if (a === key(ATTRIBUTE.g, 2) || a === key(ATTRIBUTE.graphs, 2))
              readGraph(attribute.bytes(), values, false);
            else attribute.skip(a & 7);
          }
        } else node.skip(n & 7);
      }
      for (const input of read.inputs) names.add(input);
      values.nodes.push(read);
    } else if (g === key(GRAPH.initializer, 2)) names.add(nameOf(graph.bytes(), TENSOR.name));
    else if (g === key(GRAPH.output, 2)) {
      const name = nameOf(graph.bytes(), VALUE_INFO.name);
      names.add(name);
      if (main) values.outputs.push(name);
    } else if (g === key(GRAPH.input, 2) || g === key(GRAPH.valueInfo, 2)) {
      names.add(nameOf(graph.bytes(), VALUE_INFO.name));
    } else graph.skip(g & 7);
  }
}

/**
 * Throws InvalidModel when the per-column inputs are not joined as skl2onnx joins a pipeline's: it writes an estimator
 * fitted on a DataFrame outside a pipeline with every column fed straight into the estimator's operator (a
 * OneClassSVM's SVMRegressor given four inputs) or all but the first left unused (a LocalOutlierFactor's Scan), a
 * model onnxruntime cannot load.
 */
function checkJoined(columns: readonly string[], values: GraphValues, context: Context): void {
  const isInput = new Set(columns);
  const fail = (what: string) => {
    const message =
      `${context.file}: ${what}: skl2onnx writes this for an estimator fitted on a DataFrame outside a pipeline, ` +
      'and onnxruntime cannot load it; export it from an array (`to_onnx(model, df.to_numpy(np.float32)[:1])`) ' +
      'or in a pipeline';
    return new InvalidModel(message, { ...context, field: 'input.name' });
  };
  for (const node of values.nodes) {
    const fed = node.inputs.filter((i) => isInput.has(i));
    if (fed.length > 1 && node.op !== 'FeatureVectorizer' && node.op !== 'Concat') {
      throw fail(`inputs ${fed.join(', ')} all go into one ${node.op || 'unnamed'} node, which does not join columns`);
    }
  }
  const used = new Set([...values.nodes.flatMap((n) => n.inputs), ...values.outputs]);
  const unused = columns.filter((c) => !used.has(c));
  if (unused.length > 0) throw fail(`inputs ${unused.join(', ')} are used by no node`);
}

/** The model `bytes` with its graph replaced by what `edit` makes of it; every other field kept as it was. */
function rewriteGraph(bytes: Uint8Array, edit: (graph: Uint8Array) => Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  const r = new Reader(bytes);
  while (r.pos < r.end) {
    const start = r.pos;
    const k = r.varint();
    if (k === key(MODEL.graph, 2)) parts.push(...lengthDelimited(MODEL.graph, edit(r.bytes())));
    else {
      r.skip(k & 7);
      parts.push(bytes.subarray(start, r.pos));
    }
  }
  return Buffer.concat(parts);
}
