/**
 * Builds small ONNX models in TypeScript (no Python needed): the demo fleet and the tests use a Mahalanobis
 * distance model per device, written with standard ai.onnx operators only so any ONNX runtime can score it.
 */
import { onnx } from 'onnx-proto';

const IR_VERSION = 8;
const OPSET = 13;
const PRODUCER = 'fleetscore';

/** Options of {@link buildMahalanobisModel}. */
export interface MahalanobisModelOptions {
  /** The feature means, length K. */
  mean: readonly number[];
  /** The precision matrix (inverse covariance), K×K. */
  precision: readonly (readonly number[])[];
  /** Name of the float32 [N, K] input; default `X`. */
  inputName?: string;
  /** Name of the float32 [N] output; default `score`. */
  outputName?: string;
}

/**
 * Encodes an ONNX model (IR 8, opset 13) whose output is the squared Mahalanobis distance of each input row,
 * `(x - mean)ᵀ · P · (x - mean)`: a one-class anomaly score where larger means more unusual.
 */
export function buildMahalanobisModel(options: MahalanobisModelOptions): Uint8Array {
  const { mean, precision, inputName = 'X', outputName = 'score' } = options;
  const k = mean.length;
  if (k === 0) throw new RangeError('mean must have at least one value');
  if (precision.length !== k || precision.some((row) => row.length !== k)) {
    throw new RangeError(`precision must be ${k}×${k} to match mean`);
  }
  const values = [...mean, ...precision.flat()];
  if (!values.every(Number.isFinite)) throw new RangeError('mean and precision must hold finite numbers');
  if (inputName === outputName) throw new RangeError('inputName and outputName must differ');

  const graph = onnx.GraphProto.create({
    name: 'mahalanobis',
    initializer: [
      floatTensor('mean', [k], mean),
      floatTensor('precision', [k, k], precision.flat()),
      int64Tensor('axes', [1], [1]),
    ],
    node: [
      node('Sub', [inputName, 'mean'], ['centered']),
      node('MatMul', ['centered', 'precision'], ['projected']),
      node('Mul', ['projected', 'centered'], ['terms']),
      node('ReduceSum', ['terms', 'axes'], [outputName], [intAttribute('keepdims', 0)]),
    ],
    input: [floatValueInfo(inputName, ['N', k])],
    output: [floatValueInfo(outputName, ['N'])],
  });
  return encodeModel(graph);
}

/**
 * Encodes the stacked form of the Mahalanobis model, which scores many devices in one inference call: inputs
 * `X` [devices, rows, K], `mean` [devices, 1, K] and `precision` [devices, K, K], output `score` [devices, rows].
 * The same operators as {@link buildMahalanobisModel}, batched over a leading device axis; all dims symbolic,
 * so one session serves every K.
 */
export function buildStackedMahalanobisModel(): Uint8Array {
  const graph = onnx.GraphProto.create({
    name: 'mahalanobis_stacked',
    initializer: [int64Tensor('axes', [1], [2])],
    node: [
      node('Sub', ['X', 'mean'], ['centered']),
      node('MatMul', ['centered', 'precision'], ['projected']),
      node('Mul', ['projected', 'centered'], ['terms']),
      node('ReduceSum', ['terms', 'axes'], ['score'], [intAttribute('keepdims', 0)]),
    ],
    input: [
      floatValueInfo('X', ['devices', 'rows', 'k']),
      floatValueInfo('mean', ['devices', 1, 'k']),
      floatValueInfo('precision', ['devices', 'k', 'k']),
    ],
    output: [floatValueInfo('score', ['devices', 'rows'])],
  });
  return encodeModel(graph);
}

function encodeModel(graph: onnx.GraphProto): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: PRODUCER,
    graph,
  });
  // protobufjs hands back a Node Buffer, possibly a slice of a shared pool: return plain bytes of our own.
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}

function floatTensor(name: string, dims: number[], values: readonly number[]): onnx.ITensorProto {
  const data = new Float32Array(values);
  // raw_data is little-endian by the ONNX spec; every platform onnxruntime-node ships for is little-endian.
  return { name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(data.buffer) };
}

function int64Tensor(name: string, dims: number[], values: number[]): onnx.ITensorProto {
  return { name, dims, dataType: onnx.TensorProto.DataType.INT64, int64Data: values };
}

function floatValueInfo(name: string, dims: (number | string)[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}

function node(
  opType: string,
  input: string[],
  output: string[],
  attribute: onnx.IAttributeProto[] = [],
): onnx.INodeProto {
  return { opType, input, output, attribute, name: output[0] ?? opType };
}

function intAttribute(name: string, value: number): onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i: value };
}
