/**
 * External data inlined at registration (lib/models/external-data.ts): every tensor that names bytes in another
 * file (initializers, a Constant's value, a subgraph's initializer) gets them as raw_data, from a folder or a
 * package; the rest of the model is kept byte for byte; a location outside the model's folder, a missing or short
 * file and a wrong checksum are refused naming the device, the file and the tensor.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import * as tar from 'tar';
import { inlineExternalData, type ExternalFiles } from '../../lib/models/external-data';
import { readModelUpload } from '../../lib/models/model-package';
import { registerModel, type RegisterModelInput } from '../../lib/models/model-registry';
import { filesIn } from '../../lib/models/model-sources';
import { LocalStore } from '../../lib/store/local-store';
import { InvalidModel } from '../../lib/shared/errors';

const { FLOAT } = onnx.TensorProto.DataType;
const { EXTERNAL } = onnx.TensorProto.DataLocation;
const W = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8], (v) => v / 4);
const B = Float32Array.from([0.5, -1]);
const C = Float32Array.from([3]);
const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer.slice(0));

/** The weights' file: W at 0, B at 64 (aligned, as onnx.save writes them), C at 128. */
function dataFile(): Uint8Array {
  const file = new Uint8Array(132);
  file.set(bytesOf(W), 0);
  file.set(bytesOf(B), 64);
  file.set(bytesOf(C), 128);
  return file;
}

const external = (name: string, dims: number[], offset: number, length: number, extra: Record<string, string> = {}) =>
  onnx.TensorProto.create({
    name,
    dims,
    dataType: FLOAT,
    dataLocation: EXTERNAL,
    externalData: Object.entries({
      location: 'weights.bin',
      offset: String(offset),
      length: String(length),
      ...extra,
    }).map(([key, value]) => ({ key, value })),
  });
const inline = (name: string, dims: number[], data: Float32Array) =>
  onnx.TensorProto.create({ name, dims, dataType: FLOAT, rawData: bytesOf(data) });

/**
 * Y = (X·Wᵀ + B) · C: a Gemm whose weights are initializers and a Mul by a Constant node's value; and an unused
 * `If` whose branch holds an initializer of its own, so a subgraph's tensor is inlined too.
 */
function model(tensors: { w: onnx.ITensorProto; b: onnx.ITensorProto; c: onnx.ITensorProto; sub: onnx.ITensorProto }) {
  const info = (name: string) => ({ name, type: { tensorType: { elemType: FLOAT } } });
  const branch = {
    name: 'branch',
    node: [{ opType: 'Identity', input: ['S'], output: ['O'] }],
    initializer: [tensors.sub],
    output: [info('O')],
  };
  const cond = onnx.TensorProto.create({
    name: 'COND',
    dims: [],
    dataType: onnx.TensorProto.DataType.BOOL,
    int32Data: [1],
  });
  const graph = {
    name: 'g',
    node: [
      { opType: 'Gemm', input: ['X', 'W', 'B'], output: ['H'], attribute: [{ name: 'transB', type: 2, i: 1 }] },
      { opType: 'Constant', output: ['C'], attribute: [{ name: 'value', type: 4, t: tensors.c }] },
      { opType: 'Mul', input: ['H', 'C'], output: ['Y'] },
      {
        opType: 'If',
        input: ['COND'],
        output: ['Z'],
        attribute: [
          { name: 'then_branch', type: 5, g: branch },
          { name: 'else_branch', type: 5, g: branch },
        ],
      },
    ],
    initializer: [tensors.w, tensors.b, cond],
    input: [info('X')],
    output: [info('Y')],
  };
  const proto = onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph });
  return new Uint8Array(onnx.ModelProto.encode(proto).finish());
}

const externalModel = (extra: Record<string, string> = {}) =>
  model({
    w: external('W', [2, 4], 0, 32, extra),
    b: external('B', [2], 64, 8),
    c: external('C', [], 128, 4),
    sub: external('S', [2], 64, 8),
  });
const inlineModel = () =>
  model({ w: inline('W', [2, 4], W), b: inline('B', [2], B), c: inline('C', [], C), sub: inline('S', [2], B) });

const filesOf =
  (files: Record<string, Uint8Array>): ExternalFiles =>
  (location) => {
    const file = files[location];
    return file ? Promise.resolve(file) : Promise.reject(new Error(`ENOENT: no such file ${location}`));
  };
const context = { device: 'pump-1', file: 'model.onnx' };

async function run(bytes: Uint8Array): Promise<number[]> {
  const session = await InferenceSession.create(bytes);
  try {
    const x = new OrtTensor('float32', Float32Array.from([1, 0, -1, 2, 0.5, 0.5, 0.5, 0.5]), [2, 4]);
    return Array.from((await session.run({ X: x })).Y!.data as Float32Array);
  } finally {
    await session.release();
  }
}

it('writes every external tensor into the model, which then scores as the model with its weights inside', async () => {
  const bytes = externalModel();
  await expect(InferenceSession.create(bytes)).rejects.toThrow();
  const inlined = await inlineExternalData(bytes, filesOf({ 'weights.bin': dataFile() }), context);
  const decoded = onnx.ModelProto.decode(inlined);
  const nodes = decoded.graph!.node!;
  const tensors = [
    ...decoded.graph!.initializer!.slice(0, 2),
    nodes[1]!.attribute![0]!.t!,
    ...nodes[3]!.attribute!.map((a) => a.g!.initializer![0]!),
  ];
  expect(tensors.map((t) => [t.name, t.dataLocation, t.externalData!.length])).toEqual(
    ['W', 'B', 'C', 'S', 'S'].map((name) => [name, 0, 0]),
  );
  expect(tensors.map((t) => Array.from(new Float32Array(Uint8Array.from(t.rawData!).buffer)))).toEqual(
    [W, B, C, B, B].map((a) => Array.from(a)),
  );
  expect(await run(inlined)).toEqual(await run(inlineModel()));
});

it('keeps a model without external data as it is, and every other byte of one with it', async () => {
  const plain = inlineModel();
  expect(await inlineExternalData(plain, undefined, context)).toBe(plain);
  // A field no schema here knows (99), after the graph: still there, as it was.
  const unknown = Uint8Array.from([0x98, 0x06, 0x2a]);
  const bytes = new Uint8Array([...externalModel(), ...unknown]);
  const inlined = await inlineExternalData(bytes, filesOf({ 'weights.bin': dataFile() }), context);
  expect(Array.from(inlined.subarray(-3))).toEqual(Array.from(unknown));
  expect(await run(inlined)).toEqual(await run(inlineModel()));
});

it('verifies a checksum the model gives, and refuses what it cannot read, naming the device, file and tensor', async () => {
  const sha1 = createHash('sha1').update(bytesOf(W)).digest('hex');
  const files = filesOf({ 'weights.bin': dataFile() });
  await expect(inlineExternalData(externalModel({ checksum: sha1 }), files, context)).resolves.toBeInstanceOf(
    Uint8Array,
  );
  const refusals: [Uint8Array, ExternalFiles | undefined, RegExp][] = [
    [
      externalModel({ checksum: 'f'.repeat(40) }),
      files,
      /tensor "W": external data "weights.bin" has checksum [0-9a-f]{40}/,
    ],
    [
      externalModel({ location: '../weights.bin' }),
      files,
      /tensor "W": external data "..\/weights.bin" is not a path inside/,
    ],
    [externalModel({ location: '/etc/passwd' }), files, /"\/etc\/passwd" is not a path inside the model's folder/],
    [externalModel(), filesOf({}), /tensor "C": external data "weights.bin" could not be read \(ENOENT/],
    [
      externalModel(),
      filesOf({ 'weights.bin': dataFile().subarray(0, 100) }),
      /"C": .* has 100 bytes; the tensor's are at 128 to 132/,
    ],
    [externalModel({ offset: 'x' }), files, /tensor "W": external data offset "x" is not a byte count/],
    [
      externalModel(),
      undefined,
      /tensor "C": .* cannot be read here: register the folder or package holding model.onnx/,
    ],
  ];
  for (const [bytes, reader, message] of refusals) {
    const err = await inlineExternalData(bytes, reader, context).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidModel);
    expect((err as InvalidModel).message).toMatch(message);
    expect(err).toMatchObject({ device: 'pump-1', file: 'model.onnx' });
    expect((err as InvalidModel).field).toMatch(/^[WBC]$/);
  }
  expect(refusals).toHaveLength(7);
});

describe('registration reads the data file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetscore-external-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const meta = { pool: 'cpu', features: ['a', 'b', 'c', 'd'], input: { name: 'X' }, output: { name: 'Y' } };

  it('is required: a model with external data given as bytes alone is refused, saying how to register it', async () => {
    const store = new LocalStore(join(dir, 'store'));
    const input = { device: 'pump-1', onnx: externalModel(), meta: { ...meta, anomalyWhen: 'above', threshold: 1 } };
    await expect(registerModel(store, input as RegisterModelInput)).rejects.toThrow(
      /model.onnx: initializers with external data: register it from the folder or package that holds its data file/,
    );
    expect(await store.list('models/')).toEqual([]);
  });

  it('beside a bare .onnx, and inside a package', async () => {
    await writeFile(join(dir, 'model.onnx'), externalModel());
    await writeFile(join(dir, 'weights.bin'), dataFile());
    await writeFile(join(dir, 'model.json'), JSON.stringify({ ...meta, anomalyWhen: 'above', threshold: 1 }));
    const bare = await readModelUpload('pump-1', externalModel(), 'model.onnx', {
      meta: { ...meta, anomalyWhen: 'above', threshold: 1 },
      externalFiles: filesIn(dir),
    });
    expect(await run(bare.onnx)).toEqual(await run(inlineModel()));
    const pkg = join(dir, 'model.tar.gz');
    await tar.create({ gzip: true, file: pkg, cwd: dir }, ['model.onnx', 'model.json', 'weights.bin']);
    const packaged = await readModelUpload('pump-1', new Uint8Array(await readFile(pkg)), 'model.tar.gz');
    expect(Buffer.from(packaged.onnx)).toEqual(Buffer.from(bare.onnx));
    const without = join(dir, 'alone.tar.gz');
    await tar.create({ gzip: true, file: without, cwd: dir }, ['model.onnx', 'model.json']);
    const alone = readModelUpload('pump-1', new Uint8Array(await readFile(without)), 'alone.tar.gz');
    await expect(alone).rejects.toThrow(
      /alone.tar.gz:model.onnx: tensor "C": external data "weights.bin" could not be read \(alone.tar.gz holds no weights.bin\)/,
    );
  });
});
