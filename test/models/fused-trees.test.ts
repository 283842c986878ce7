/**
 * The fused tree-sum evaluator gives an isolation forest's scores as the model's own onnxruntime session does and
 * as the node-by-node program does, on forests of 100 trees, several feature counts, a Gather that permutes the
 * columns, strict splits sending NaN to their true branch (the general layout; skl2onnx's trees take the compact
 * one), and rows on a split's threshold, NaN and infinite values; a graph it does not recognise stays unfused.
 */
import { onnx } from 'onnx-proto';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { linkProgram } from '../../lib/models/fast-paths/graph-evaluator';
import type { TreeSumParams } from '../../lib/models/fast-paths/fused-trees';
import { compileGraph, type GraphProgram } from '../../lib/models/fast-paths/graph-program';
import { buildIsolationForestOnnx, fitIsolationForest, type IsolationForestParams } from '../support/isolation-forest';
import { random } from '../support/random';
import { sklearnCases, sklearnFixture } from '../support/sklearn-cases';

/** A forest fitted on its own seeded rows, with the rows it was fitted on. */
function forest(features: number, trees: number, seed: number) {
  const rand = random(seed);
  const rows = Array.from({ length: 300 }, () => Array.from({ length: features }, () => Math.fround(rand() * 4 - 2)));
  return { rows, params: fitIsolationForest(rows, trees, seed) };
}

/** Training rows, rows far out, rows exactly on split thresholds, and rows with NaN and infinite values. */
function probes(params: IsolationForestParams, rows: number[][], seed: number): number[][] {
  const rand = random(seed);
  const out = [...rows.slice(0, 20), ...rows.slice(0, 20).map((r) => r.map((v) => v * 3))];
  for (const tree of params.trees.slice(0, 10)) {
    const splits = tree.left.flatMap((l, i) => (l >= 0 ? [i] : []));
    for (const i of splits.slice(0, 4)) {
      const row = [...rows[Math.floor(rand() * rows.length)]!];
      row[tree.feature[i]!] = tree.threshold[i]!;
      out.push(
        row,
        row.map((v, f) => (f === tree.feature[i] ? NaN : v)),
      );
    }
  }
  const special = [NaN, Infinity, -Infinity];
  special.forEach((v, j) => out.push(rows[j]!.map((x, f) => (f % 2 === j % 2 ? v : x))));
  out.push(rows[0]!.map(() => NaN));
  return out;
}

async function sessionScores(bytes: Uint8Array, x: Float32Array, rows: number, k: number): Promise<Float32Array> {
  const session = await InferenceSession.create(bytes);
  try {
    const out = await session.run({ X: new Tensor('float32', x, [rows, k]) }, ['scores']);
    return out.scores!.data as Float32Array;
  } finally {
    await session.release();
  }
}

const programScores = (program: GraphProgram, x: Float32Array, rows: number, k: number) =>
  Float32Array.from(linkProgram(program).run(x, rows, k).data);

const isFused = (program: GraphProgram) => program.nodes.some((n) => n.domain === 'fused' && n.op === 'TreeSum');

/** The Gather before every tree reads the columns in reverse order. */
function withReversedColumns(bytes: Uint8Array, features: number): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const gather = model.graph!.initializer!.find((t) => t.name === 'node_sample0_Gathercst')!;
  gather.int64Data = [...Array(features).keys()].reverse();
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}

/** Tree 0's splits test `x < threshold` and send NaN to their true branch (other exporters' trees do). */
function withStrictSplitsAndMissingTrue(bytes: Uint8Array): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const tree = model.graph!.node!.find((n) => n.name === 'node_sample0_TreeEnsembleRegressor')!;
  const attr = (name: string) => tree.attribute!.find((a) => a.name === name)!;
  const modes = attr('nodes_modes');
  const leq = new TextEncoder().encode('BRANCH_LEQ');
  const isLeq = (m: Uint8Array) => m.length === leq.length && m.every((b, i) => b === leq[i]);
  attr('nodes_missing_value_tracks_true').ints = modes.strings!.map((m) => (isLeq(m) ? 1 : 0));
  modes.strings = modes.strings!.map((m) => (isLeq(m) ? new TextEncoder().encode('BRANCH_LT') : m));
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}

/**
 * Trees 1 and 3 end their chains adding another constant where the others add -1: two kinds of chain in one
 * forest, which the fusion runs apart.
 */
function withTwoKindsOfChain(bytes: Uint8Array): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  graph.initializer!.push({
    name: 'other_cst',
    dataType: onnx.TensorProto.DataType.FLOAT,
    dims: [1],
    floatData: [0.75],
  });
  for (const t of [1, 3]) {
    graph.node!.find((n) => n.name === `depth${t}_Add1`)!.input = [`depth${t}_C01`, 'other_cst'];
  }
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}

/** Which layout the fused trees take: compact where every split is `<=` with NaN false, else general. */
const layoutOf = (program: GraphProgram) =>
  (program.nodes.find((n) => n.op === 'TreeSum')?.params as TreeSumParams | undefined)?.layout;

const CASES = [
  { name: '100 trees, 7 features', features: 7, trees: 100, seed: 1, edit: (b: Uint8Array) => b, layout: 'compact' },
  {
    name: '30 trees, 3 features, strict splits',
    features: 3,
    trees: 30,
    seed: 2,
    edit: withStrictSplitsAndMissingTrue,
    layout: 'general',
  },
  {
    name: '40 trees, 5 features, permuted columns',
    features: 5,
    trees: 40,
    seed: 3,
    edit: (b: Uint8Array) => withReversedColumns(b, 5),
    layout: 'compact',
  },
  {
    name: '20 trees, 6 features, two kinds of chain',
    features: 6,
    trees: 20,
    seed: 4,
    edit: withTwoKindsOfChain,
    layout: 'compact',
  },
];

describe.each(CASES)('an isolation forest of $name', ({ features, trees, seed, edit, layout }) => {
  it(`fuses into one ${layout} tree sum that scores as its onnxruntime session and its node-by-node program`, async () => {
    const { rows, params } = forest(features, trees, seed);
    const bytes = edit(buildIsolationForestOnnx(params));
    const probe = probes(params, rows, seed);
    const x = Float32Array.from(probe.flat());
    const fused = compileGraph(bytes, 'X', 'scores');
    const plain = compileGraph(bytes, 'X', 'scores', false);
    expect(isFused(fused)).toBe(true);
    expect(layoutOf(fused)).toBe(layout);
    expect(fused.nodes.length).toBeLessThan(10);
    expect(isFused(plain)).toBe(false);
    const got = programScores(fused, x, probe.length, features);
    const byNode = programScores(plain, x, probe.length, features);
    const session = await sessionScores(bytes, x, probe.length, features);
    expect(got.length).toBe(probe.length);
    got.forEach((s, i) => {
      expect(Number.isFinite(s)).toBe(true);
      expect({ row: i, score: s }).toEqual({ row: i, score: byNode[i] });
      expect(Math.abs(s - session[i]!)).toBeLessThanOrEqual(2e-6 + 2e-6 * Math.abs(session[i]!));
      expect(s < 0).toBe(session[i]! < 0);
    });
    expect(new Set(Array.from(got, (s) => s < 0))).toEqual(new Set([true, false]));
    // onnxruntime-node takes seconds to create a 100-tree forest's session, more on a busy machine.
  }, 60_000);
});

it('fuses the skl2onnx fixture and scores it as its onnxruntime session', async () => {
  const bytes = new Uint8Array(sklearnFixture('isoforest', 'model.onnx'));
  const rand = random(5);
  const rows = Array.from({ length: 50 }, () => Array.from({ length: 4 }, () => Math.fround(rand() * 8 - 4)));
  const x = Float32Array.from(rows.flat());
  const fused = compileGraph(bytes, 'X', 'scores');
  expect(isFused(fused)).toBe(true);
  expect(layoutOf(fused)).toBe('compact');
  const got = programScores(fused, x, rows.length, 4);
  const session = await sessionScores(bytes, x, rows.length, 4);
  got.forEach((s, i) => expect(Math.abs(s - session[i]!)).toBeLessThanOrEqual(2e-6 + 2e-6 * Math.abs(session[i]!)));
});

it('fuses a pipeline whose scaler comes before the trees, keeping the scaler, and scores it as onnxruntime does', async () => {
  const bytes = new Uint8Array(sklearnFixture('isoforest-pipeline', 'model.onnx'));
  const { rows } = sklearnCases('isoforest-pipeline');
  const x = Float32Array.from(rows.flat());
  const fused = compileGraph(bytes, 'X', 'scores');
  expect(isFused(fused)).toBe(true);
  expect(fused.nodes.slice(0, 2).map((n) => n.op)).toEqual(['Scaler', 'TreeSum']);
  const got = programScores(fused, x, rows.length, 4);
  const byNode = programScores(compileGraph(bytes, 'X', 'scores', false), x, rows.length, 4);
  const session = await sessionScores(bytes, x, rows.length, 4);
  got.forEach((s, i) => {
    expect({ row: i, score: s }).toEqual({ row: i, score: byNode[i] });
    expect(Math.abs(s - session[i]!)).toBeLessThanOrEqual(2e-6 + 2e-6 * Math.abs(session[i]!));
  });
  expect(new Set(Array.from(got, (s) => s < 0))).toEqual(new Set([true, false]));
});

it('leaves a pipeline unfused when a tree reads the input beside the scaled input', async () => {
  const model = onnx.ModelProto.decode(sklearnFixture('isoforest-pipeline', 'model.onnx'));
  const scaler = model.graph!.node!.find((n) => n.opType === 'Scaler')!;
  // The first tree's Gather reads the raw input, the others the scaler's output: no one value feeds every tree.
  model.graph!.node!.find((n) => n.opType === 'Gather' && n.input![0] === scaler.output![0])!.input![0] = 'X';
  const bytes = new Uint8Array(onnx.ModelProto.encode(model).finish());
  const program = compileGraph(bytes, 'X', 'scores');
  expect(isFused(program)).toBe(false);
  const x = Float32Array.from([60, 0.5, 101.3, 12, 90, 0.1, 99, 30]);
  const got = programScores(program, x, 2, 4);
  const session = await sessionScores(bytes, x, 2, 4);
  got.forEach((s, i) => expect(Math.abs(s - session[i]!)).toBeLessThanOrEqual(2e-6 + 2e-6 * Math.abs(session[i]!)));
});

it('leaves a graph unfused when a tree chain reads another tree, and scores it as onnxruntime does', async () => {
  const { rows, params } = forest(4, 6, 9);
  const model = onnx.ModelProto.decode(buildIsolationForestOnnx(params));
  // Tree 0's last step adds tree 1's leaf depth instead of the constant -1: still a valid graph, no longer a sum
  // of independent trees.
  model.graph!.node!.find((n) => n.name === 'depth0_Add1')!.input = ['depth0_C01', 'path_length1_reshaped0'];
  const bytes = new Uint8Array(onnx.ModelProto.encode(model).finish());
  const program = compileGraph(bytes, 'X', 'scores');
  expect(isFused(program)).toBe(false);
  const x = Float32Array.from(rows.slice(0, 30).flat());
  const got = programScores(program, x, 30, 4);
  const session = await sessionScores(bytes, x, 30, 4);
  got.forEach((s, i) => expect(Math.abs(s - session[i]!)).toBeLessThanOrEqual(2e-6 + 2e-6 * Math.abs(session[i]!)));
});
