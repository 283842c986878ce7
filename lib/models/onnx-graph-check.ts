/**
 * Checks a model.onnx against its model.json before registration makes it visible: the bytes parse as a
 * self-contained ONNX model, with one float32 (or float64) 2-D input of the model's feature count under the declared name and
 * a float output holding the declared score column.
 */
import { onnx } from 'onnx-proto';
import { InvalidModel, messageOf } from '../shared/errors';
import { tensorOf } from './fast-paths/graph-program';
import { readOnnx } from './fast-paths/onnx-reader';
import { UnsupportedGraph } from './fast-paths/tensor';
import { Reader, key } from './fast-paths/protobuf-reader';
import type { ModelMeta } from './model-meta';
import { EXTERNAL, GRAPH, MODEL, OPSET, TENSOR } from './onnx-wire';

/** Which device and file a check is about, for the error it throws. */
interface CheckContext {
  device: string;
  file: string;
}

export interface TensorInfo {
  /** What the value is when not a tensor (a ZipMap's `sequenceType` of maps, ...); undefined for a tensor. */
  notTensor?: string;
  elemType: onnx.TensorProto.DataType | undefined;
  /** One entry per dimension: a number when static, a string (or undefined) when symbolic or unknown. */
  dims: (number | string | undefined)[] | undefined;
}

/** A graph's inputs (initializers left out) and outputs, by name. */
export interface GraphInfo {
  inputs: Map<string, TensorInfo>;
  outputs: Map<string, TensorInfo>;
}

/**
 * The newest ONNX IR version onnxruntime-node 1.30 loads: a newer model fails every session ("Unsupported model IR
 * version"). onnx.helper.make_model writes its own package's newest unless given `ir_version` (14 with onnx 1.23).
 */
export const MAX_IR_VERSION = 13;

/**
 * The newest opset of each domain onnxruntime-node 1.30 loads a model of ("" is ai.onnx); other domains are not
 * checked. onnx.helper.make_model imports its package's newest unless given `opset_imports` (28 with onnx 1.23).
 */
export const MAX_OPSETS: Readonly<Record<string, number>> = { '': 26, 'ai.onnx': 26, 'ai.onnx.ml': 5 };

/**
 * The graph's inputs (less its initializers) and outputs. Read on the wire: only the value infos are decoded, and
 * every other field is checked to lie within its message and skipped (onnx-proto's decode of a whole 100-tree forest
 * took 29 ms and most of registration's garbage; this takes a fraction of a millisecond).
 */
export function inspectOnnx(bytes: Uint8Array, context: CheckContext): GraphInfo {
  let irVersion = 0;
  let opsets = 0;
  let newerOpset: string | undefined;
  let nodes = 0;
  let hasGraph = false;
  let external = false;
  const initializers = new Set<string>();
  const inputs: onnx.ValueInfoProto[] = [];
  const outputs: onnx.ValueInfoProto[] = [];
  try {
    const r = new Reader(bytes);
    while (r.pos < r.end) {
      const k = r.varint();
      if (k === key(MODEL.irVersion, 0)) irVersion = r.varint();
      else if (k === key(MODEL.opsetImport, 2)) {
        const opset = r.enter();
        let domain = '';
        let version = 0;
        while (r.pos < r.end) {
          const o = r.varint();
          if (o === key(OPSET.domain, 2)) domain = r.string();
          else if (o === key(OPSET.version, 0)) version = r.varint();
          else r.skip(o & 7);
        }
        r.leave(opset);
        const max = MAX_OPSETS[domain];
        if (max !== undefined && version > max) newerOpset ??= `${domain || 'ai.onnx'} ${version} (${max} at most)`;
        opsets++;
      } else if (k === key(MODEL.graph, 2)) {
        hasGraph = true;
        const outer = r.enter();
        while (r.pos < r.end) {
          const g = r.varint();
          if (g === key(GRAPH.node, 2)) {
            r.bytes();
            nodes++;
          } else if (g === key(GRAPH.initializer, 2)) {
            const tensor = r.enter();
            let name = '';
            while (r.pos < r.end) {
              const t = r.varint();
              if (t === key(TENSOR.name, 2)) name = r.string();
              else if (t === key(TENSOR.dataLocation, 0)) {
                if (r.varint() === EXTERNAL) external = true;
              } else r.skip(t & 7);
            }
            r.leave(tensor);
            initializers.add(name);
          } else if (g === key(GRAPH.input, 2)) inputs.push(onnx.ValueInfoProto.decode(r.bytes()));
          else if (g === key(GRAPH.output, 2)) outputs.push(onnx.ValueInfoProto.decode(r.bytes()));
          else r.skip(g & 7);
        }
        r.leave(outer);
      } else r.skip(k & 7);
    }
  } catch (err) {
    throw new InvalidModel(`${context.file}: not an ONNX model (${messageOf(err)})`, context, { cause: err });
  }
  if (!hasGraph || irVersion <= 0 || opsets === 0 || nodes === 0) {
    throw new InvalidModel(`${context.file}: not an ONNX model (no ir_version, opset or graph)`, context);
  }
  if (irVersion > MAX_IR_VERSION) {
    const message =
      `${context.file}: ONNX IR version ${irVersion} is newer than onnxruntime-node reads (${MAX_IR_VERSION} at ` +
      `most), so no session could load it; write it with an older one (onnx.helper.make_model(..., ir_version=10))`;
    throw new InvalidModel(message, context);
  }
  if (newerOpset !== undefined) {
    const message =
      `${context.file}: opset ${newerOpset} is newer than onnxruntime-node reads, so no session could load it; ` +
      `export it for an older opset (onnx.helper.make_model(..., opset_imports=[onnx.helper.make_opsetid("", 17)]), ` +
      'or the target_opset of skl2onnx and torch.onnx.export)';
    throw new InvalidModel(message, context);
  }
  if (external) {
    // External data would make onnxruntime read other files: a stored model is one self-contained artifact.
    // Registration from a folder or package (model-package.ts) writes the data in first.
    const message =
      `${context.file}: initializers with external data: register it from the folder or package that holds its ` +
      'data file (`fleetscore models register --file`, `--dir`), which stores the weights inside';
    throw new InvalidModel(message, context);
  }
  const info = (v: onnx.IValueInfoProto): [string, TensorInfo] => {
    const t = v.type?.tensorType;
    const kind = NOT_TENSOR_KINDS.find((k) => v.type?.[k]);
    return [
      v.name ?? '',
      {
        ...(kind ? { notTensor: NOT_TENSOR[kind] } : {}),
        elemType: t?.elemType ?? undefined,
        dims: t?.shape?.dim?.map((d) =>
          d.dimValue !== undefined && d.dimValue !== null && toNumber(d.dimValue) > 0
            ? toNumber(d.dimValue)
            : (d.dimParam ?? undefined),
        ),
      },
    ];
  };
  return {
    inputs: new Map(inputs.filter((v) => !initializers.has(v.name)).map(info)),
    outputs: new Map(outputs.map(info)),
  };
}

/** How a value that is not a tensor is named in errors. */
const NOT_TENSOR = {
  sequenceType: 'a sequence',
  mapType: 'a map',
  optionalType: 'an optional',
  sparseTensorType: 'a sparse tensor',
} as const;
const NOT_TENSOR_KINDS = Object.keys(NOT_TENSOR) as (keyof typeof NOT_TENSOR)[];

/** Names of the ONNX element types a model's input is likely to have instead of float32 or float64. */
const ELEMENT_TYPES: Partial<Record<number, string>> = {
  6: 'int32',
  7: 'int64',
  10: 'float16',
  16: 'bfloat16',
};

/**
 * Throws `InvalidModel` naming the file and the model.json field when the graph `inspectOnnx` read cannot be scored
 * as `meta` says. `given` is model.json's `output` as written, before defaults (at registration): an output of
 * several columns must say which is the score, since column 0 by default would score a KMeans' distance to its
 * first centroid, or a classifier's probability of its first class, without a word.
 */
export function checkGraph(
  bytes: Uint8Array,
  graph: GraphInfo,
  meta: ModelMeta,
  context: CheckContext,
  given?: { column?: unknown; reduce?: unknown },
): void {
  const fail = (message: string, field: string) =>
    new InvalidModel(`${context.file}: ${message}`, { ...context, field });
  const names = (m: Map<string, TensorInfo>) => [...m.keys()].join(', ') || 'none';
  if (graph.inputs.size > 1) {
    const message =
      `has inputs ${names(graph.inputs)}; fleetscore feeds exactly one, or one per feature of model.json named ` +
      'after it ([rows, 1] each, as skl2onnx exports a DataFrame)';
    throw fail(message, 'input.name');
  }
  const input = graph.inputs.get(meta.input.name);
  if (!input) {
    throw fail(`has no input ${JSON.stringify(meta.input.name)} (inputs: ${names(graph.inputs)})`, 'input.name');
  }
  const { FLOAT, DOUBLE } = onnx.TensorProto.DataType;
  // skl2onnx types the input after the sample it is given: numpy's default float64 makes a double input, which
  // is fed the same float32 rows converted.
  if (input.elemType !== undefined && input.elemType !== FLOAT && input.elemType !== DOUBLE) {
    const type = ELEMENT_TYPES[input.elemType] ?? `element type ${input.elemType}`;
    throw fail(`input ${meta.input.name} must be float32 or float64, not ${type}`, 'input.name');
  }
  if (input.dims !== undefined) {
    if (input.dims.length !== 2) {
      const shape = `[${input.dims.map((d) => d ?? '?').join(', ')}]`;
      // A recurrent or convolutional model over windows of rows: [batch, steps, features] (or channels first).
      const sequence =
        input.dims.length === 3
          ? ': a model over sequences of rows (an LSTM or a 1-D convolution over time) is not scored; fleetscore ' +
            'scores each row on its own, so give such a model its context as features (lags or rolling means ' +
            'computed into the aggregates) and export it over one row'
          : '';
      throw fail(`input ${meta.input.name} is ${shape}; it must be 2-D [rows, features]${sequence}`, 'input.name');
    }
    const rows = input.dims[0];
    if (typeof rows === 'number') {
      const name = meta.input.name;
      const message =
        `input ${name} has a fixed first dimension of ${rows}: it takes exactly ${rows} row(s) at a time, and a ` +
        `device's rows in a window vary; export it with a dynamic first dimension (torch.onnx.export: ` +
        `dynamic_shapes=({0: torch.export.Dim("N")},), or dynamic_axes={"${name}": {0: "N"}})`;
      throw fail(message, 'input.name');
    }
    const k = input.dims[1];
    if (typeof k === 'number' && k !== meta.features.length) {
      throw fail(`input ${meta.input.name} takes ${k} features, model.json lists ${meta.features.length}`, 'features');
    }
  }
  const zipmap =
    `(skl2onnx's ZipMap writes a classifier's probabilities as a sequence of maps by default): export it with ` +
    `to_onnx(..., options={"zipmap": False}) and name its probabilities output in model.json, with output.column ` +
    'the class that is the anomaly';
  const output = graph.outputs.get(meta.output.name);
  if (!output) {
    const message = `has no output ${JSON.stringify(meta.output.name)} (outputs: ${names(graph.outputs)})`;
    const maps = [...graph.outputs].filter(([, o]) => o.notTensor).map(([name]) => name);
    throw fail(maps.length > 0 ? `${message}; ${maps.join(', ')} is not a tensor ${zipmap}` : message, 'output.name');
  }
  if (output.notTensor) {
    throw fail(`output ${meta.output.name} is ${output.notTensor}, not a tensor ${zipmap}`, 'output.name');
  }
  if (output.elemType !== undefined && output.elemType !== FLOAT && output.elemType !== DOUBLE) {
    const message = `output ${meta.output.name} must be float32 or float64 (element type ${output.elemType})`;
    throw fail(message, 'output.name');
  }
  if (output.dims !== undefined) {
    const cols = output.dims.length === 1 ? 1 : output.dims.length === 2 ? output.dims[1] : null;
    if (cols === null) throw fail(`output ${meta.output.name} must be [rows] or [rows, k]`, 'output.name');
    const k = meta.features.length;
    const reconstructionShape = output.dims.length === 2 && (typeof cols !== 'number' || cols === k);
    if (
      meta.output.reconstructionError &&
      !reconstructionShape &&
      !(output.dims.length === 2 && cols === 1 && reshapedToOneColumn(bytes, meta.output.name))
    ) {
      const shape = `[${output.dims.map((d) => d ?? '?').join(', ')}]`;
      const message = `output ${meta.output.name} is ${shape}; it must be a reconstruction [rows, ${k}] to score its error`;
      throw fail(message, 'output.reconstructionError');
    }
    const unsaid = given !== undefined && given.column === undefined && given.reduce === undefined;
    if (typeof cols === 'number' && cols > 1 && unsaid && !meta.output.reconstructionError) {
      const message =
        `output ${meta.output.name} has ${cols} columns: say which is the score, "column": 0 ${cols > 2 ? 'to' : 'or'} ${cols - 1}, or ` +
        `"reduce": "min" or "max" (each row's smallest or largest, as a KMeans' distance to its nearest centroid)`;
      throw fail(message, 'output.column');
    }
    if (typeof cols === 'number' && meta.output.column >= cols) {
      const message = `output ${meta.output.name} has ${cols} column(s); column ${meta.output.column} does not exist`;
      throw fail(message, 'output.column');
    }
  }
}

function toNumber(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

/**
 * Whether the graph's output `name` is made by a Reshape to the constant shape [-1, 1]: how skl2onnx 1.20 writes an
 * MLPRegressor of k outputs (an autoencoder's reconstruction [rows, k], flattened row by row to [rows * k, 1]).
 */
function reshapedToOneColumn(bytes: Uint8Array, name: string): boolean {
  try {
    const model = readOnnx(bytes);
    const id = model.names.idOf(name);
    const node = model.nodes.find((n) => n.output.includes(id));
    if (node?.opType !== 'Reshape' || node.domain !== '') return false;
    const shape = node.input[1];
    const constant =
      model.initializers.find((t) => t.name === shape) ??
      model.nodes
        .find((n) => n.opType === 'Constant' && n.output[0] === shape)
        ?.attribute.find((a) => a.name === 'value')?.t;
    const values = constant && tensorOf(constant, model.names);
    return values?.type === 'int64' && values.data.length === 2 && values.data[0] === -1 && values.data[1] === 1;
  } catch (err) {
    // A graph the fast path's reader does not follow (sparse or segmented tensors, functions): not this shape.
    if (err instanceof UnsupportedGraph) return false;
    throw err;
  }
}
