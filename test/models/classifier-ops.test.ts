/**
 * The classifier operators of the compiled fast path on one-node graphs, against onnxruntime running the same
 * graph: TreeEnsembleClassifier over every way its binary and multiclass scores finish (which classes the leaves
 * weigh, zero, one, two or one base value per class, weights all positive or mixed, each post_transform),
 * LinearClassifier with one, two and three rows of coefficients, Normalizer, ArrayFeatureExtractor, and string
 * labels (probabilities computed, the label output refused). Exported models: test/models/fast-paths.test.ts.
 */
import { onnx } from 'onnx-proto';
import { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { linkProgram } from '../../lib/models/fast-paths/graph-evaluator';
import { compileGraph } from '../../lib/models/fast-paths/graph-program';
import { UnsupportedGraph } from '../../lib/shared/errors';
import { mlModel, valueInfo } from '../support/onnx-models';
import { sklearnFixture } from '../support/sklearn-cases';
import { random as seeded } from '../support/random';

const ROWS = 40;
const FEATURES = 4;
const random = seeded(11);
const uniform = (lo: number, hi: number) => Math.fround(lo + (hi - lo) * random());
const x = new Float32Array(Array.from({ length: ROWS * FEATURES }, () => uniform(-2, 2)));
const { INT64 } = onnx.TensorProto.DataType;
const A = onnx.AttributeProto.AttributeType;

type Attr = [string, number | string | number[] | string[]];

/** An attribute of the type its value has (a list of numbers is INTS when `ints` names it, else FLOATS). */
function attribute([name, value]: Attr, ints: readonly string[]): onnx.IAttributeProto {
  if (typeof value === 'string') return { name, type: A.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') return { name, type: A.INT, i: value };
  if (value.every((v) => typeof v === 'string')) {
    return { name, type: A.STRINGS, strings: value.map((v) => new TextEncoder().encode(v)) };
  }
  return ints.includes(name) ? { name, type: A.INTS, ints: value } : { name, type: A.FLOATS, floats: value };
}

const INT_ATTRS = [
  'nodes_treeids', 'nodes_nodeids', 'nodes_featureids', 'nodes_truenodeids', 'nodes_falsenodeids',
  'class_treeids', 'class_nodeids', 'class_ids', 'classlabels_int64s', 'classlabels_ints', 'multi_class',
  'nodes_missing_value_tracks_true',
]; // prettier-ignore

/** An ai.onnx.ml node `op` of `attrs`. */
const mlNode = (op: string, attrs: Attr[], input: string[], output: string[]): onnx.INodeProto => ({
  opType: op,
  domain: 'ai.onnx.ml',
  input,
  output,
  attribute: attrs.map((a) => attribute(a, INT_ATTRS)),
});

/** A classifier `op` over X [ROWS, FEATURES]: labels L, scores Y. */
const classifier = (op: string, attrs: Attr[], labels: 'int64' | 'string' = 'int64'): Uint8Array =>
  mlModel({
    name: op,
    node: [mlNode(op, attrs, ['X'], ['L', 'Y'])],
    input: [valueInfo('X')],
    output: [valueInfo('L', labels === 'int64' ? INT64 : onnx.TensorProto.DataType.STRING), valueInfo('Y')],
  });

/** onnxruntime's output `name` of `bytes` on X. */
async function ortRun(
  bytes: Uint8Array,
  name: string,
  input = x,
): Promise<{ dims: readonly number[]; data: number[] }> {
  const session = await InferenceSession.create(bytes);
  try {
    const out = (await session.run({ X: new OrtTensor('float32', input, [ROWS, FEATURES]) }))[name]!;
    return { dims: out.dims, data: Array.from(out.data as ArrayLike<number | bigint>, Number) };
  } finally {
    await session.release();
  }
}

/** Expects the fast path's L and Y of `bytes` to be onnxruntime's: labels exactly, scores to float32 rounding. */
async function expectAsOnnxruntime(bytes: Uint8Array, input = x): Promise<number[]> {
  const run = (output: string) => linkProgram(compileGraph(bytes, 'X', output)).run(input, ROWS, FEATURES);
  const [labels, scores] = [run('L'), run('Y')];
  const [ortLabels, ortScores] = [await ortRun(bytes, 'L', input), await ortRun(bytes, 'Y', input)];
  expect(Array.from(labels.data)).toEqual(ortLabels.data);
  expect(scores.dims).toEqual(ortScores.dims);
  scores.data.forEach((v, i) => {
    const e = ortScores.data[i]!;
    expect(Math.abs(v - e)).toBeLessThanOrEqual(2e-7 + 2e-7 * Math.abs(e));
  });
  return Array.from(scores.data);
}

/**
 * Three depth-2 trees (each split on its own feature at one row's value, `mode`) whose leaves weigh the classes
 * `weighs(tree)` lists, weights in [0.05, 0.6] or, when `mixed`, in [-0.6, 0.6].
 */
function trees(weighs: (tree: number) => number[], mixed: boolean, mode = 'BRANCH_LEQ'): Attr[] {
  const nodes = { tree: [] as number[], id: [] as number[], feature: [] as number[], value: [] as number[] };
  const modes: string[] = [];
  const [trues, falses] = [[] as number[], [] as number[]];
  const weights = { tree: [] as number[], node: [] as number[], class: [] as number[], weight: [] as number[] };
  for (let t = 0; t < 3; t++) {
    for (let n = 0; n < 3; n++) {
      nodes.tree.push(t);
      nodes.id.push(n);
      nodes.feature.push(n === 0 ? t : 0);
      // Tree t splits at a value of its feature some row has: that row sits on the threshold.
      nodes.value.push(n === 0 ? x[((7 * t + 3) % ROWS) * FEATURES + t]! : 0);
      modes.push(n === 0 ? mode : 'LEAF');
      trues.push(n === 0 ? 1 : 0);
      falses.push(n === 0 ? 2 : 0);
      if (n === 0) continue;
      for (const c of weighs(t)) {
        weights.tree.push(t);
        weights.node.push(n);
        weights.class.push(c);
        weights.weight.push(mixed ? uniform(-0.6, 0.6) : uniform(0.05, 0.6));
      }
    }
  }
  return [
    ['nodes_treeids', nodes.tree],
    ['nodes_nodeids', nodes.id],
    ['nodes_featureids', nodes.feature],
    ['nodes_values', nodes.value],
    ['nodes_modes', modes],
    ['nodes_truenodeids', trues],
    ['nodes_falsenodeids', falses],
    ['class_treeids', weights.tree],
    ['class_nodeids', weights.node],
    ['class_ids', weights.class],
    ['class_weights', weights.weight],
  ];
}

/**
 * Three depth-3 trees numbered breadth first (children of node n at 2n+1 and 2n+2), `x <= threshold` at each split
 * (thresholds some rows sit on), NaN going to the true child at every split or (`allMissingTrue` false) at the
 * root only; leaves weighing the classes `weighs(tree)` lists, weights in [-0.6, 0.6].
 */
function breadthFirstTrees(weighs: (tree: number) => readonly number[], allMissingTrue: boolean): Attr[] {
  const a = {
    tree: [] as number[], id: [] as number[], feature: [] as number[], value: [] as number[], modes: [] as string[],
    trues: [] as number[], falses: [] as number[], missing: [] as number[],
  }; // prettier-ignore
  const weights = { tree: [] as number[], node: [] as number[], class: [] as number[], weight: [] as number[] };
  for (let t = 0; t < 3; t++) {
    for (let n = 0; n < 7; n++) {
      const split = n < 3;
      const feature = (t + n) % FEATURES;
      a.tree.push(t);
      a.id.push(n);
      a.feature.push(split ? feature : 0);
      a.value.push(split ? x[((5 * t + n) % ROWS) * FEATURES + feature]! : 0);
      a.modes.push(split ? 'BRANCH_LEQ' : 'LEAF');
      a.trues.push(split ? 2 * n + 1 : 0);
      a.falses.push(split ? 2 * n + 2 : 0);
      a.missing.push(split && (allMissingTrue || n === 0) ? 1 : 0);
      if (split) continue;
      for (const c of weighs(t)) {
        weights.tree.push(t);
        weights.node.push(n);
        weights.class.push(c);
        weights.weight.push(uniform(-0.6, 0.6));
      }
    }
  }
  return [
    ['nodes_treeids', a.tree],
    ['nodes_nodeids', a.id],
    ['nodes_featureids', a.feature],
    ['nodes_values', a.value],
    ['nodes_modes', a.modes],
    ['nodes_truenodeids', a.trues],
    ['nodes_falsenodeids', a.falses],
    ['nodes_missing_value_tracks_true', a.missing],
    ['class_treeids', weights.tree],
    ['class_nodeids', weights.node],
    ['class_ids', weights.class],
    ['class_weights', weights.weight],
  ];
}

const POSTS = ['NONE', 'LOGISTIC', 'SOFTMAX'] as const;

describe('TreeEnsembleClassifier', () => {
  // Leaves weighing class 0 only (as skl2onnx writes a binary forest), class 1 only, both, or one class a tree.
  const binaryWeighs: [string, (t: number) => number[]][] = [
    ['class 0', () => [0]],
    ['class 1', () => [1]],
    ['both classes', () => [0, 1]],
  ];
  const binaryBases = [[], [0.3], [-0.2, 0.4]];
  // Where the leaves weigh one class, LEQ splits in depth-first order take the compact layout, and so do LT splits
  // (as LEQ splits at the float32 below); GTE splits keep the general layout.
  it.each(binaryWeighs)(
    'two classes, leaves weighing %s, every base and post_transform, both layouts',
    async (_, weighs) => {
      for (const mode of ['BRANCH_LEQ', 'BRANCH_LT', 'BRANCH_GTE']) {
        for (const base of binaryBases) {
          for (const post of POSTS) {
            for (const mixed of [false, true]) {
              const attrs: Attr[] = [
                ...trees(weighs, mixed, mode),
                ['classlabels_int64s', [4, 9]],
                ['post_transform', post],
              ];
              if (base.length > 0) attrs.push(['base_values', base]);
              const bytes = classifier('TreeEnsembleClassifier', attrs);
              const { compact } = compileGraph(bytes, 'X', 'Y').nodes[0]!.params as { compact?: unknown };
              expect(compact !== undefined).toBe(mode !== 'BRANCH_GTE' && weighs(0).length === 1);
              await expectAsOnnxruntime(bytes);
            }
          }
        }
      }
    },
  );

  // A tree per class (gradient boosting) takes the compact layout, each leaf holding its weight, also where a class
  // has no tree; leaves weighing every class (a multiclass forest) take it too, each holding its row of weights;
  // leaves weighing some classes, and GTE splits, keep the general layout.
  it('three classes, leaves weighing all, some or one class a tree (gradient boosting), with and without base values', async () => {
    const layouts: [(t: number) => number[], string][] = [
      [() => [0, 1, 2], 'rows'],
      [(t) => [t % 3], 'one class'],
      [(t) => [t % 2], 'one class'],
      [() => [0, 2], 'general'],
    ];
    for (const [weighs, layout] of layouts) {
      for (const mode of ['BRANCH_LEQ', 'BRANCH_GTE']) {
        for (const base of [[], [0.1, -0.3, 0.2]]) {
          for (const post of POSTS) {
            const attrs: Attr[] = [
              ...trees(weighs, true, mode),
              ['classlabels_int64s', [0, 1, 2]],
              ['post_transform', post],
            ];
            if (base.length > 0) attrs.push(['base_values', base]);
            const bytes = classifier('TreeEnsembleClassifier', attrs);
            const { compact } = compileGraph(bytes, 'X', 'Y').nodes[0]!.params as {
              compact?: { leafWeights?: unknown };
            };
            const laid = !compact ? 'general' : compact.leafWeights ? 'rows' : 'one class';
            expect(laid).toBe(mode === 'BRANCH_GTE' ? 'general' : layout);
            const scores = await expectAsOnnxruntime(bytes);
            expect(scores).toHaveLength(ROWS * 3);
          }
        }
      }
    }
  });

  // LightGBM's trees through onnxmltools: numbered breadth first, every split sending NaN to its true child.
  it('trees numbered breadth first, NaN going to the true child at every split or some, on rows with NaN', async () => {
    // Rows 0 to 7 hold a NaN in one column each.
    const withNaN = x.slice();
    for (let r = 0; r < 8; r++) withNaN[r * FEATURES + (r % FEATURES)] = NaN;
    for (const missing of ['every split', 'some splits']) {
      for (const [weighs, classes, post] of [
        [() => [1], [0, 1], 'LOGISTIC'],
        [(t: number) => [t % 3], [0, 1, 2], 'SOFTMAX'],
        [() => [0, 1, 2], [0, 1, 2], 'NONE'],
      ] as const) {
        const attrs: Attr[] = [
          ...breadthFirstTrees(weighs, missing === 'every split'),
          ['classlabels_int64s', [...classes]],
          ['post_transform', post],
        ];
        const bytes = classifier('TreeEnsembleClassifier', attrs);
        const { compact } = compileGraph(bytes, 'X', 'Y').nodes[0]!.params as { compact?: unknown };
        expect(compact !== undefined).toBe(missing === 'every split');
        await expectAsOnnxruntime(bytes, withNaN);
      }
    }
  });

  it('lays out exported multiclass ensembles compactly: a scikit-learn forest and LightGBM (breadth first, NaN true)', () => {
    const layout = (name: string) => {
      const bytes = new Uint8Array(sklearnFixture(name, 'model.onnx'));
      const { input } = JSON.parse(sklearnFixture(name, 'model.json').toString()) as { input: { name: string } };
      const program = compileGraph(bytes, input.name, 'probabilities');
      const node = program.nodes.find((n) => n.op === 'TreeEnsembleClassifier')!;
      return node.params as { compact?: { leafWeights?: unknown; nanTrue: boolean } };
    };
    expect(layout('extra-trees-classifier').compact).toMatchObject({ leafWeights: expect.any(Float32Array) });
    expect(layout('lightgbm-classifier').compact).toMatchObject({ nanTrue: true, classes: { count: 3 } });
  });

  it('leaves a post_transform it does not compute (PROBIT, SOFTMAX_ZERO) to the session', () => {
    for (const post of ['PROBIT', 'SOFTMAX_ZERO']) {
      const attrs: Attr[] = [
        ...trees(() => [0, 1, 2], false),
        ['classlabels_int64s', [0, 1, 2]],
        ['post_transform', post],
      ];
      expect(() => compileGraph(classifier('TreeEnsembleClassifier', attrs), 'X', 'Y')).toThrow(UnsupportedGraph);
    }
  });

  it('computes the probabilities of string labels, and refuses a graph that needs the labels themselves', async () => {
    const attrs: Attr[] = [...trees(() => [0], false), ['classlabels_strings', ['anomaly', 'normal']]];
    const bytes = classifier('TreeEnsembleClassifier', attrs, 'string');
    const scores = linkProgram(compileGraph(bytes, 'X', 'Y')).run(x, ROWS, FEATURES);
    const ort = await ortRun(bytes, 'Y');
    Array.from(scores.data).forEach((v, i) => expect(Math.abs(v - ort.data[i]!)).toBeLessThanOrEqual(2e-7));
    expect(() => compileGraph(bytes, 'X', 'L')).toThrow(/TreeEnsembleClassifier: output L is not computed/);
  });
});

describe('LinearClassifier', () => {
  const coefficients = (k: number) => Array.from({ length: k * FEATURES }, () => uniform(-1.5, 1.5));
  const intercepts = (k: number) => Array.from({ length: k }, () => uniform(-0.5, 0.5));
  it.each([
    ['one row, two labels (a second column added as 1 - s)', 1, [3, 8]],
    ['one row, labels 0 and 1 by default', 1, []],
    ['two rows', 2, [0, 1]],
    ['three rows', 3, [10, 20, 30]],
  ])('%s, every post_transform', async (_, k, labels) => {
    for (const post of POSTS) {
      const attrs: Attr[] = [
        ['coefficients', coefficients(k)],
        ['intercepts', intercepts(k)],
        ['post_transform', post],
        ['multi_class', 0],
      ];
      if (labels.length > 0) attrs.push(['classlabels_ints', labels]);
      await expectAsOnnxruntime(classifier('LinearClassifier', attrs));
    }
  });
});

describe('Normalizer and ArrayFeatureExtractor', () => {
  /** X through `op` (attributes `attrs`, extra initializer inputs `inits`) into Y. */
  const oneOp = (op: string, attrs: Attr[], inits: onnx.ITensorProto[] = []): Uint8Array =>
    mlModel({
      name: op,
      node: [mlNode(op, attrs, ['X', ...inits.map((t) => t.name!)], ['Y'])],
      initializer: inits,
      input: [valueInfo('X')],
      output: [valueInfo('Y')],
    });
  async function expectSame(bytes: Uint8Array): Promise<void> {
    const fast = linkProgram(compileGraph(bytes, 'X', 'Y')).run(x, ROWS, FEATURES);
    const ort = await ortRun(bytes, 'Y');
    expect(fast.dims).toEqual(ort.dims);
    Array.from(fast.data).forEach((v, i) => {
      expect(Math.abs(v - ort.data[i]!)).toBeLessThanOrEqual(2e-7 + 2e-7 * Math.abs(ort.data[i]!));
    });
  }

  it.each(['MAX', 'L1', 'L2'])('Normalizer %s, rows of mixed signs', async (norm) => {
    await expectSame(oneOp('Normalizer', [['norm', norm]]));
  });

  it('ArrayFeatureExtractor of a list of columns and of one (a scalar index)', async () => {
    const indices = (dims: number[], values: number[]) => ({ name: 'I', dims, dataType: INT64, int64Data: values });
    await expectSame(oneOp('ArrayFeatureExtractor', [], [indices([2], [3, 0])]));
    await expectSame(oneOp('ArrayFeatureExtractor', [], [indices([], [1])]));
  });
});

describe('an initializer of a type the fast path does not hold', () => {
  it("fails only a graph whose output needs it (an SGDClassifier export's int32 classes feed just its labels)", () => {
    const classes = { name: 'C', dims: [2], dataType: onnx.TensorProto.DataType.INT32, int32Data: [0, 1] };
    const index = { name: 'I', dims: [1], dataType: INT64, int64Data: [1] };
    const bytes = mlModel({
      name: 'sgd',
      node: [
        { opType: 'Sigmoid', input: ['X'], output: ['Y'] },
        mlNode('ArrayFeatureExtractor', [], ['C', 'I'], ['L']),
      ],
      initializer: [classes, index],
      input: [valueInfo('X')],
      output: [valueInfo('Y'), valueInfo('L', onnx.TensorProto.DataType.INT32)],
    });
    expect(compileGraph(bytes, 'X', 'Y').nodes.map((n) => n.op)).toEqual(['Sigmoid']);
    expect(() => compileGraph(bytes, 'X', 'L')).toThrow(/tensor C: element type 6 is not supported/);
  });
});
