/** Small ONNX models for operator tests: value infos and a model of one graph with the ai.onnx.ml domain. */
import { onnx } from 'onnx-proto';

/** A value of element type `elemType` (float32 by default), shape left open. */
export const valueInfo = (name: string, elemType: number = onnx.TensorProto.DataType.FLOAT): onnx.IValueInfoProto => ({
  name,
  type: { tensorType: { elemType } },
});

/** `graph` as an encoded model importing ai.onnx 17 and ai.onnx.ml 3. */
export function mlModel(graph: onnx.IGraphProto): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [
      { domain: '', version: 17 },
      { domain: 'ai.onnx.ml', version: 3 },
    ],
    graph,
  });
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}
