/** ONNX protobuf field numbers (onnx.proto), for the code that reads or rewrites models on the wire. */

/** ModelProto: ir_version, graph, opset_import. */
export const MODEL = { irVersion: 1, graph: 7, opsetImport: 8 };
/** OperatorSetIdProto: domain, version. */
export const OPSET = { domain: 1, version: 2 };
/** GraphProto: node, initializer, input, output, value_info. */
export const GRAPH = { node: 1, initializer: 5, input: 11, output: 12, valueInfo: 13 };
/** NodeProto: input, output, op_type, attribute. */
export const NODE = { input: 1, output: 2, opType: 4, attribute: 5 };
/** AttributeProto: g, graphs. */
export const ATTRIBUTE = { g: 6, graphs: 11 };
/** TensorProto: name, raw_data, external_data, data_location. */
export const TENSOR = { name: 8, rawData: 9, externalData: 13, dataLocation: 14 };
/** ValueInfoProto: name. */
export const VALUE_INFO = { name: 1 };
/** TensorProto.DataLocation's EXTERNAL. */
export const EXTERNAL = 1;
