/**
 * ONNX external data, inlined at registration. `torch.onnx.export` (its default exporter since torch 2.9) writes a
 * model's weights into a file beside model.onnx (`model.onnx.data`), and each tensor names its bytes there
 * (`data_location: EXTERNAL`; `external_data`: `location`, `offset`, `length`, `checksum`), as
 * `onnx.save_model(..., save_as_external_data=True)` does. A stored model is one self-contained file (workers read
 * model.onnx alone and give onnxruntime its bytes), so registration reads the named files and writes each tensor's
 * bytes into the model as its `raw_data`.
 *
 * The rewrite is on the protobuf wire: each external tensor's own fields are replaced, and every other byte of the
 * model is kept as it was, fields newer than any schema this project carries included. A model without external
 * data is returned as it is, byte for byte.
 */
import { createHash } from 'node:crypto';
import { InvalidModel, messageOf } from '../shared/errors';
import { Reader, key, varint } from './fast-paths/protobuf-reader';
import { UnsupportedGraph } from './fast-paths/tensor';
import { EXTERNAL, TENSOR } from './onnx-wire';

/** Reads a file a model's external data names: `location`, relative to the folder or package of the model. */
export type ExternalFiles = (location: string) => Promise<Uint8Array>;

/** Which device and file the model is, for errors. */
interface Context {
  device: string;
  file: string;
}

/** One tensor's external data, as its `external_data` entries give it. */
interface ExternalRef {
  tensor: string;
  location: string;
  offset: number;
  length: number | undefined;
  checksum: string | undefined;
}

type Kind = 'model' | 'graph' | 'node' | 'attribute' | 'sparse' | 'function' | 'training' | 'tensor';

/** The fields of each message that hold (or lead to) tensors, and what they hold. */
const NESTED: Record<Exclude<Kind, 'tensor'>, Record<number, Kind>> = {
  // graph, training_info, functions
  model: { 7: 'graph', 20: 'training', 25: 'function' },
  // node, initializer, sparse_initializer
  graph: { 1: 'node', 5: 'tensor', 15: 'sparse' },
  // attribute
  node: { 5: 'attribute' },
  // t, g, tensors, graphs, sparse_tensor, sparse_tensors
  attribute: { 5: 'tensor', 6: 'graph', 10: 'tensor', 11: 'graph', 22: 'sparse', 23: 'sparse' },
  // values, indices
  sparse: { 1: 'tensor', 2: 'tensor' },
  // node
  function: { 7: 'node' },
  // initialization, algorithm
  training: { 1: 'graph', 2: 'graph' },
};

/**
 * `bytes` with every tensor's external data read (through `files`) and written into it; `bytes` itself when no
 * tensor has any. Throws InvalidModel naming the device, the file and the tensor when a location leaves the
 * model's folder, a file is missing or too short, or a checksum differs.
 */
export async function inlineExternalData(
  bytes: Uint8Array,
  files: ExternalFiles | undefined,
  context: Context,
): Promise<Uint8Array> {
  // An external tensor names its file in a `location` entry, which the ONNX spec requires: bytes without that word
  // hold none, and the walk (about 5 ms for a 100-tree forest's unpacked attribute lists) is skipped.
  if (Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf('location') < 0) return bytes;
  const refs: ExternalRef[] = [];
  try {
    rewrite(bytes, 'model', (tensor) => {
      const ref = externalRef(tensor, context);
      if (ref) refs.push(ref);
      return undefined;
    });
  } catch (err) {
    // Bytes that are no protobuf: the model check that follows registration's read says so, as for any model.
    if (err instanceof UnsupportedGraph) return bytes;
    throw err;
  }
  if (refs.length === 0) return bytes;
  const fail = (ref: ExternalRef, why: string, cause?: unknown) =>
    new InvalidModel(
      `${context.file}: tensor ${JSON.stringify(ref.tensor)}: external data ${JSON.stringify(ref.location)} ${why}`,
      { ...context, field: ref.tensor },
      { cause },
    );
  if (!files) {
    throw fail(refs[0]!, 'cannot be read here: register the folder or package holding model.onnx and its data file');
  }
  const read = new Map<string, Promise<Uint8Array>>();
  // Each tensor's bytes, in the order the walk meets the tensors.
  const slices: Uint8Array[] = [];
  for (const ref of refs) {
    const { location } = ref;
    if (location === '' || /^([/\\]|[A-Za-z]:)/.test(location) || location.split(/[/\\]/).includes('..')) {
      throw fail(ref, "is not a path inside the model's folder");
    }
    if (!read.has(location)) read.set(location, files(location));
    let file: Uint8Array;
    try {
      file = await read.get(location)!;
    } catch (err) {
      throw fail(ref, `could not be read (${messageOf(err)})`, err);
    }
    const end = ref.length === undefined ? file.length : ref.offset + ref.length;
    if (ref.offset > file.length || end > file.length) {
      throw fail(ref, `has ${file.length} bytes; the tensor's are at ${ref.offset} to ${end}`);
    }
    const slice = file.subarray(ref.offset, end);
    if (ref.checksum !== undefined) {
      const sha1 = createHash('sha1').update(slice).digest('hex');
      if (sha1 !== ref.checksum.toLowerCase()) throw fail(ref, `has checksum ${sha1}, the model says ${ref.checksum}`);
    }
    slices.push(slice);
  }
  let next = 0;
  return rewrite(bytes, 'model', (tensor) =>
    externalRef(tensor, context) ? inlined(tensor, slices[next++]!) : undefined,
  )!;
}

/**
 * The message `buf` of kind `kind` with each tensor in it replaced by what `onTensor` returns for it (undefined:
 * kept); undefined when nothing in it changed. Fields that lead to no tensor are copied as they are.
 */
function rewrite(
  buf: Uint8Array,
  kind: Kind,
  onTensor: (tensor: Uint8Array) => Uint8Array | undefined,
): Uint8Array | undefined {
  if (kind === 'tensor') return onTensor(buf);
  const nested = NESTED[kind];
  const r = new Reader(buf);
  const parts: Uint8Array[] = [];
  let copied = 0;
  let changed = false;
  while (r.pos < r.end) {
    const start = r.pos;
    const k = r.varint();
    const field = Math.floor(k / 8);
    const wire = k & 7;
    const inner = wire === 2 ? nested[field] : undefined;
    if (inner === undefined) {
      r.skip(wire);
      continue;
    }
    const body = r.bytes();
    const replaced = rewrite(body, inner, onTensor);
    if (replaced === undefined) continue;
    changed = true;
    parts.push(buf.subarray(copied, start), varint(k), varint(replaced.length), replaced);
    copied = r.pos;
  }
  if (!changed) return undefined;
  parts.push(buf.subarray(copied));
  return Buffer.concat(parts);
}

/** The external data a TensorProto names, or undefined when its data is its own. */
function externalRef(tensor: Uint8Array, context: Context): ExternalRef | undefined {
  const r = new Reader(tensor);
  let name = '';
  let location = 0;
  const entries = new Map<string, string>();
  while (r.pos < r.end) {
    const k = r.varint();
    if (k === key(TENSOR.name, 2)) name = r.string();
    else if (k === key(TENSOR.dataLocation, 0)) location = r.varint();
    else if (k === key(TENSOR.externalData, 2)) {
      const outer = r.enter();
      let entryKey = '';
      let value = '';
      while (r.pos < r.end) {
        const e = r.varint();
        if (e === key(1, 2)) entryKey = r.string();
        else if (e === key(2, 2)) value = r.string();
        else r.skip(e & 7);
      }
      r.leave(outer);
      entries.set(entryKey, value);
    } else r.skip(k & 7);
  }
  if (location !== EXTERNAL) return undefined;
  const number = (entry: string): number | undefined => {
    const text = entries.get(entry);
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
      const message = `${context.file}: tensor ${JSON.stringify(name)}: external data ${entry} ${JSON.stringify(text)} is not a byte count`;
      throw new InvalidModel(message, { ...context, field: name });
    }
    return n;
  };
  return {
    tensor: name,
    location: entries.get('location') ?? '',
    offset: number('offset') ?? 0,
    length: number('length'),
    checksum: entries.get('checksum'),
  };
}

/** The TensorProto `tensor` with `data` as its raw_data, and no external data or data location. */
function inlined(tensor: Uint8Array, data: Uint8Array): Uint8Array {
  const r = new Reader(tensor);
  const parts: Uint8Array[] = [];
  while (r.pos < r.end) {
    const start = r.pos;
    const k = r.varint();
    r.skip(k & 7);
    const field = Math.floor(k / 8);
    if (field !== TENSOR.rawData && field !== TENSOR.externalData && field !== TENSOR.dataLocation) {
      parts.push(tensor.subarray(start, r.pos));
    }
  }
  parts.push(varint(key(TENSOR.rawData, 2)), varint(data.length), data);
  return Buffer.concat(parts);
}
