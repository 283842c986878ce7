/**
 * The TypeScript isolation forests the fault suite scores are what skl2onnx writes: the skl2onnx fixture's own
 * trees, rebuilt here, give the fixture's nodes, attributes and initializers exactly; and onnxruntime scores a
 * forest fitted here as scikit-learn's decision_function defines it.
 */
import { onnx } from 'onnx-proto';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import {
  buildIsolationForestOnnx,
  fitIsolationForest,
  isolationForestScore,
  type IsolationForestParams,
  type IsolationTree,
} from './isolation-forest';
import { random } from './random';
import { sklearnCases, sklearnFixture } from './sklearn-cases';

const asObject = <T extends object>(m: T, type: { toObject(m: T, o: object): object }) =>
  type.toObject(m, { longs: Number, bytes: String });

/** The fixture's forest, read back from its TreeEnsembleRegressor and node_sample LabelEncoder of each tree. */
function forestOf(model: onnx.ModelProto): IsolationForestParams {
  const nodes = new Map(model.graph!.node!.map((n) => [n.name!, n]));
  const attr = (n: onnx.INodeProto | undefined, name: string) => n!.attribute!.find((a) => a.name === name)!;
  const ints = (n: onnx.INodeProto | undefined, name: string) => attr(n, name).ints!.map(Number);
  const trees: IsolationTree[] = [];
  for (let t = 0; nodes.has(`node_sample${t}_TreeEnsembleRegressor`); t++) {
    const ensemble = nodes.get(`node_sample${t}_TreeEnsembleRegressor`);
    const encoder = nodes.get(`node_sample${t}_LabelEncoder`);
    const leaf = attr(ensemble, 'nodes_modes').strings!.map((s) => new TextDecoder().decode(s) === 'LEAF');
    const samples = new Map(
      ints(encoder, 'keys_int64s').map((k, i) => [k, attr(encoder, 'values_floats').floats![i]!]),
    );
    trees.push({
      left: ints(ensemble, 'nodes_truenodeids').map((c, i) => (leaf[i] ? -1 : c)),
      right: ints(ensemble, 'nodes_falsenodeids').map((c, i) => (leaf[i] ? -1 : c)),
      feature: ints(ensemble, 'nodes_featureids'),
      threshold: attr(ensemble, 'nodes_values').floats!,
      samples: leaf.map((_, i) => samples.get(i) ?? 0),
    });
  }
  // scripts/make-sklearn-fixtures.py fits it with max_samples=24.
  return { features: 4, maxSamples: 24, trees };
}

it('rebuilds the skl2onnx fixture node for node, attribute for attribute', () => {
  const fixture = onnx.ModelProto.decode(sklearnFixture('isoforest', 'model.onnx'));
  const rebuilt = onnx.ModelProto.decode(buildIsolationForestOnnx(forestOf(fixture), fixture.graph!.name!));
  const byName = (m: onnx.ModelProto) =>
    new Map(m.graph!.node!.map((n) => [n.name, asObject(n as onnx.NodeProto, onnx.NodeProto)]));
  const want = byName(fixture);
  const got = byName(rebuilt);
  expect(got.size).toBe(want.size);
  expect(want.size).toBe(12 * 27 + 10);
  for (const [name, n] of want) expect({ name, node: got.get(name) }).toEqual({ name, node: n });
  const graphPart = (m: onnx.ModelProto) => ({
    opsets: m.opsetImport.map((o) => asObject(o as onnx.OperatorSetIdProto, onnx.OperatorSetIdProto)),
    ir: Number(m.irVersion),
    initializer: m.graph!.initializer!.map((t) => asObject(t as onnx.TensorProto, onnx.TensorProto)),
    input: m.graph!.input!.map((v) => asObject(v as onnx.ValueInfoProto, onnx.ValueInfoProto)),
    output: m.graph!.output!.map((v) => asObject(v as onnx.ValueInfoProto, onnx.ValueInfoProto)),
  });
  expect(graphPart(rebuilt)).toEqual(graphPart(fixture));
  // A valid topological order: every node's inputs are made before it.
  const made = new Set(['X', ...rebuilt.graph!.initializer!.map((t) => t.name!)]);
  for (const n of rebuilt.graph!.node!) {
    expect(n.input!.filter((i) => !made.has(i))).toEqual([]);
    n.output!.forEach((o) => made.add(o));
  }
});

it("scores the fixture's cases as scikit-learn's decision_function does", () => {
  const forest = forestOf(onnx.ModelProto.decode(sklearnFixture('isoforest', 'model.onnx')));
  const c = sklearnCases('isoforest');
  c.rows.forEach((x, i) => expect(isolationForestScore(forest, x)).toBeCloseTo(c.decisionFunction[i]!, 5));
});

it('fits forests whose onnxruntime scores are their decision_function', async () => {
  const rand = random(7);
  const rows = Array.from({ length: 300 }, () => Array.from({ length: 5 }, () => Math.fround(rand() * 4 - 2)));
  const forest = fitIsolationForest(rows, 40, 11);
  expect(forest.maxSamples).toBe(256);
  const session = await InferenceSession.create(buildIsolationForestOnnx(forest));
  try {
    const probe = [...rows.slice(0, 20), ...rows.slice(0, 20).map((r) => r.map((v) => v * 3))];
    const out = await session.run({ X: new Tensor('float32', Float32Array.from(probe.flat()), [probe.length, 5]) });
    const scores = out.scores!.data as Float32Array;
    const labels = out.label!.data as BigInt64Array;
    probe.forEach((x, i) => {
      const want = isolationForestScore(forest, x);
      expect(Math.abs(scores[i]! - want)).toBeLessThanOrEqual(1e-5);
      expect(labels[i]).toBe(scores[i]! < 0 ? -1n : 1n);
    });
    expect(new Set(Array.from(labels))).toEqual(new Set([1n, -1n]));
  } finally {
    await session.release();
  }
});
