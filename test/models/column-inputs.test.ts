/**
 * A model with one input per feature column (skl2onnx's export of a pipeline fitted on a DataFrame: fixture
 * ocsvm-columns) is stored with them joined into model.json's one input, the rest of its graph kept; a name that
 * would collide is refused, and inputs that are not the features keep the graph check's refusal. Scores of the
 * joined model against scikit-learn: test/models/fast-paths.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { lengthDelimited } from '../../lib/models/fast-paths/protobuf-reader';
import { readModelMeta, registerModel, sha256Hex, type ModelMetaInput } from '../../lib/models/model-registry';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import { InvalidModel } from '../../lib/shared/errors';
import { keys } from '../../lib/shared/keys';
import { LocalStore } from '../../lib/store/local-store';
import { scoreWith } from '../support/score-prepared';
import { sklearnCases, sklearnFixture } from '../support/sklearn-cases';

const original = new Uint8Array(sklearnFixture('ocsvm-columns', 'model.onnx'));
const { schema: _schema, ...meta } = JSON.parse(
  sklearnFixture('ocsvm-columns', 'model.json').toString('utf8'),
) as ModelMetaInput & { schema: string };
const FEATURES = ['temperature', 'vibration', 'pressure', 'current'];

const { FLOAT } = onnx.TensorProto.DataType;

/** A [rows, 1] value of `elemType`, as skl2onnx types a DataFrame's column. */
const column = (name: string, elemType: number = FLOAT) => ({
  name,
  type: { tensorType: { elemType, shape: { dim: [{ dimParam: 'N' }, { dimValue: 1 }] } } },
});

/** A model of `graph`, opset 17. */
const modelOf = (graph: onnx.IGraphProto) =>
  onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph }).finish();

let dir: string;
let store: LocalStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-columns-'));
  store = new LocalStore(dir);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refusal(input: Partial<ModelMetaInput>, bytes: Uint8Array = original): Promise<InvalidModel> {
  try {
    await registerModel(store, { device: 'pump-1', onnx: bytes, meta: { ...meta, ...input } });
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidModel);
    return err as InvalidModel;
  }
  throw new Error('expected InvalidModel');
}

it('stores the model with one input [N, features] and a Gather per column, its own nodes kept as they were', async () => {
  const before = onnx.ModelProto.decode(original);
  expect(before.graph!.input!.map((i) => i.name)).toEqual(FEATURES);

  const entry = await registerModel(store, { device: 'pump-1', onnx: original, meta });
  const stored = (await store.tryGet(keys.modelOnnx('pump-1', entry.version)))!;
  const after = onnx.ModelProto.decode(stored);
  const graph = after.graph!;
  const [nodes, initializers, inputs] = [graph.node ?? [], graph.initializer ?? [], graph.input ?? []];
  expect(inputs.map((i) => i.name)).toEqual(['X']);
  const shape = inputs[0]!.type!.tensorType!;
  expect(shape.elemType).toBe(onnx.TensorProto.DataType.FLOAT);
  expect(shape.shape!.dim!.map((d) => Number(d.dimValue) || d.dimParam)).toEqual(['N', 4]);
  const gathers = nodes.slice(0, 4);
  expect(gathers.map((n) => [n.opType, n.input![0], n.output![0]])).toEqual(FEATURES.map((f) => ['Gather', 'X', f]));
  gathers.forEach((n, j) => {
    const index = initializers.find((t) => t.name === n.input![1])!;
    expect([index.dims!.map(Number), index.int64Data!.map(Number)]).toEqual([[1], [j]]);
  });
  // skl2onnx's nodes follow, as they were.
  expect(nodes.slice(4).map((n) => onnx.NodeProto.encode(n).finish())).toEqual(
    before.graph!.node!.map((n) => onnx.NodeProto.encode(n).finish()),
  );
  expect(graph.output).toEqual(before.graph!.output);
  // The checksum is the stored model's, not the upload's.
  expect(entry.sha256).toBe(sha256Hex(stored));
  expect((await readModelMeta(store, 'pump-1', entry.version)).sha256).toBe(sha256Hex(stored));
  expect(entry.sha256).not.toBe(sha256Hex(original));
});

it('gives each column input its own column when model.json lists the features in another order', async () => {
  const features = [...FEATURES].reverse();
  const entry = await registerModel(store, { device: 'pump-1', onnx: original, meta: { ...meta, features } });
  const c = sklearnCases('ocsvm-columns');
  const x = new Float32Array(c.rows.flatMap((row) => [...row].reverse()));
  for (const cache of [new ModelSessionCache(), new ModelSessionCache({ batching: false })]) {
    try {
      const model = await cache.prepare(store, 'pump-1', entry);
      const scores = await scoreWith(model, x, c.rows.length);
      scores.forEach((s, i) => expect(Math.abs(s - c.decisionFunction[i]!)).toBeLessThanOrEqual(1e-4));
    } finally {
      await cache.close();
    }
  }
});

it('casts a column to the integer type of its input, as a DataFrame with a count column exports', async () => {
  const cast = { name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: FLOAT };
  const model = modelOf({
    name: 'sum',
    node: [
      { opType: 'Cast', input: ['count'], output: ['countFloat'], attribute: [cast] },
      { opType: 'Add', input: ['level', 'countFloat'], output: ['score'] },
    ],
    input: [column('level'), column('count', onnx.TensorProto.DataType.INT64)],
    output: [column('score')],
  });
  const features = ['count', 'level'];
  const entry = await registerModel(store, {
    device: 'pump-1',
    onnx: model,
    meta: { ...meta, features, output: { name: 'score', column: 0 } },
  });
  // Rows of [count, level].
  const x = new Float32Array([3, 1.5, 7, -2.25, 0, 0.5]);
  for (const cache of [new ModelSessionCache(), new ModelSessionCache({ batching: false })]) {
    try {
      expect(Array.from(await scoreWith(await cache.prepare(store, 'pump-1', entry), x, 3))).toEqual([4.5, 4.75, 0.5]);
    } finally {
      await cache.close();
    }
  }
});

it.each(['scores', 'temperature'])(
  'refuses an input.name the graph already uses (%s), naming the field',
  async (name) => {
    const err = await refusal({ input: { name } });
    expect([err.device, err.file, err.field]).toEqual(['pump-1', 'model.onnx', 'input.name']);
    expect(err.message).toMatch(new RegExp(`one input per feature.*"${name}" already names a value of the graph`));
  },
);

it('refuses an input.name that a subgraph defines (an If branch), which ONNX would not let the graph shadow', async () => {
  const branch = (op: string) => ({
    name: op,
    node: [{ opType: op, input: ['a'], output: ['X'] }],
    output: [column('X')],
  });
  const { GRAPH } = onnx.AttributeProto.AttributeType;
  const model = modelOf({
    name: 'branches',
    node: [
      { opType: 'Greater', input: ['a', 'b'], output: ['c'] },
      { opType: 'ReduceMin', input: ['c'], output: ['cond'], attribute: [{ name: 'keepdims', type: 2, i: 0 }] },
      {
        opType: 'If',
        input: ['cond'],
        output: ['score'],
        attribute: [
          { name: 'then_branch', type: GRAPH, g: branch('Identity') },
          { name: 'else_branch', type: GRAPH, g: branch('Neg') },
        ],
      },
    ],
    input: [column('a'), column('b')],
    output: [column('score'), column('c', onnx.TensorProto.DataType.BOOL)],
  });
  const err = await refusal({ features: ['a', 'b'], output: { name: 'score', column: 0 } }, model);
  expect(err.field).toBe('input.name');
  expect(err.message).toMatch(/"X" already names a value of the graph/);
});

it.each([
  ['all go into one node that does not join them', ['a', 'b'], /inputs a, b all go into one SVMRegressor node/],
  ['are not all used', ['a'], /inputs b are used by no node/],
])(
  'refuses per-column inputs that %s, as skl2onnx exports an estimator fitted on a DataFrame outside a pipeline',
  async (_, fed, message) => {
    const model = modelOf({
      name: 'estimator',
      node: [{ opType: 'SVMRegressor', domain: 'ai.onnx.ml', input: fed, output: ['score'] }],
      input: [column('a'), column('b')],
      output: [column('score')],
    });
    const err = await refusal({ features: ['a', 'b'], output: { name: 'score', column: 0 } }, model);
    expect([err.file, err.field]).toEqual(['model.onnx', 'input.name']);
    expect(err.message).toMatch(message);
    expect(err.message).toMatch(/outside a pipeline, and onnxruntime cannot load it; export it from an array/);
  },
);

it('refuses a per-column model whose node is no protobuf as not an ONNX model', async () => {
  const value = (name: string) => onnx.ValueInfoProto.encode(column(name)).finish();
  // A node whose first field says 5 bytes of input name and has 1.
  const graph = Buffer.concat([
    ...lengthDelimited(1, new Uint8Array([0x0a, 0x05, 0x61])),
    ...lengthDelimited(11, value('a')),
    ...lengthDelimited(11, value('b')),
    ...lengthDelimited(12, value('score')),
  ]);
  const opset = onnx.OperatorSetIdProto.encode({ domain: '', version: 17 }).finish();
  const model = Buffer.concat([
    new Uint8Array([0x08, 0x08]),
    ...lengthDelimited(8, opset),
    ...lengthDelimited(7, graph),
  ]);
  const err = await refusal({ features: ['a', 'b'], output: { name: 'score', column: 0 } }, model);
  expect(err.message).toMatch(/^model\.onnx: not an ONNX model \(truncated protobuf\)/);
});

it('leaves inputs that are not the features to the graph check, which says how they must be named', async () => {
  const err = await refusal({ features: ['a', 'b', 'c', 'd'] });
  expect(err.field).toBe('input.name');
  expect(err.message).toMatch(/has inputs temperature, vibration, pressure, current; .* one per feature of model.json/);
  expect(await store.list('models/')).toEqual([]);
});
