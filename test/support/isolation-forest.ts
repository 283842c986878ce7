/**
 * Isolation forests for tests, without Python: fitted in TypeScript as scikit-learn's IsolationForest fits them
 * (each tree on its own subsample of at most 256 rows, a random feature and a random threshold between the
 * node's minimum and maximum, to a depth of ceil(log2(samples))), and written as exactly the ONNX graph skl2onnx
 * 1.20 emits for one (ai.onnx 22, ai.onnx.ml 3): the same nodes, names, operators, attributes and initializers,
 * checked against the committed skl2onnx fixture by test/support/isolation-forest.test.ts. A fleet of large
 * forests (the forest fault row) is then seconds of TypeScript instead of minutes of skl2onnx per forest.
 */
import { onnx } from 'onnx-proto';
import { random } from './random';

/** One fitted tree in scikit-learn's arrays (nodes in preorder, node 0 the root, -1 for a leaf's children). */
export interface IsolationTree {
  left: number[];
  right: number[];
  feature: number[];
  /** float32 values; a row goes left when its feature is <= the threshold. */
  threshold: number[];
  /** Training rows that reached the node (only leaves' counts go into the graph). */
  samples: number[];
}

/** A fitted isolation forest: its trees, features and the subsample size its score is normalised by. */
export interface IsolationForestParams {
  features: number;
  maxSamples: number;
  trees: IsolationTree[];
}

const EULER_GAMMA = 0.5772156649015329;

/** scikit-learn's `_average_path_length`: the mean depth of an unsuccessful search among n rows. */
export function averagePathLength(n: number): number {
  if (n <= 1) return 0;
  if (n === 2) return 1;
  return 2 * (Math.log(n - 1) + EULER_GAMMA) - (2 * (n - 1)) / n;
}

/** Fits `trees` isolation trees on `rows` ([n][features]), drawing every random choice from `seed`. */
export function fitIsolationForest(rows: readonly (readonly number[])[], trees: number, seed: number) {
  const rand = random(seed);
  const maxSamples = Math.min(256, rows.length);
  const maxDepth = Math.ceil(Math.log2(Math.max(maxSamples, 2)));
  const features = rows[0]?.length ?? 0;
  const fitted: IsolationTree[] = [];
  for (let t = 0; t < trees; t++) {
    // A subsample without replacement (a partial Fisher-Yates shuffle).
    const order = rows.map((_, i) => i);
    for (let i = 0; i < maxSamples; i++) {
      const j = i + Math.floor(rand() * (order.length - i));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const tree: IsolationTree = { left: [], right: [], feature: [], threshold: [], samples: [] };
    const grow = (at: number[], depth: number): number => {
      const id = tree.left.length;
      tree.left.push(-1);
      tree.right.push(-1);
      tree.feature.push(-2);
      tree.threshold.push(-2);
      tree.samples.push(at.length);
      if (at.length < 2 || depth >= maxDepth) return id;
      // A random feature among those not constant here, and a threshold in [min, max).
      const lows = new Array<number>(features).fill(Infinity);
      const highs = new Array<number>(features).fill(-Infinity);
      for (const r of at) {
        for (let f = 0; f < features; f++) {
          const v = rows[r]![f]!;
          if (v < lows[f]!) lows[f] = v;
          if (v > highs[f]!) highs[f] = v;
        }
      }
      const candidates = [...Array(features).keys()].filter((f) => highs[f]! > lows[f]!);
      if (candidates.length === 0) return id;
      const f = candidates[Math.floor(rand() * candidates.length)]!;
      const lo = lows[f]!;
      const hi = highs[f]!;
      let threshold = Math.fround(lo + rand() * (hi - lo));
      if (threshold >= hi) threshold = lo;
      tree.feature[id] = f;
      tree.threshold[id] = threshold;
      tree.left[id] = grow(
        at.filter((r) => rows[r]![f]! <= threshold),
        depth + 1,
      );
      tree.right[id] = grow(
        at.filter((r) => rows[r]![f]! > threshold),
        depth + 1,
      );
      return id;
    };
    grow(order.slice(0, maxSamples), 0);
    fitted.push(tree);
  }
  return { features, maxSamples, trees: fitted } satisfies IsolationForestParams;
}

/** scikit-learn's `decision_function` of one row (offset -0.5, contamination "auto"), in double. */
export function isolationForestScore(forest: IsolationForestParams, x: readonly number[]): number {
  let depths = 0;
  for (const tree of forest.trees) {
    let i = 0;
    let depth = 0;
    while (tree.left[i]! >= 0) {
      i = Math.fround(x[tree.feature[i]!]!) <= tree.threshold[i]! ? tree.left[i]! : tree.right[i]!;
      depth++;
    }
    depths += depth + averagePathLength(tree.samples[i]!);
  }
  return -(2 ** (-depths / (forest.trees.length * averagePathLength(forest.maxSamples)))) + 0.5;
}

const { AttributeType } = onnx.AttributeProto;
const { DataType } = onnx.TensorProto;

type Attr = [name: string, value: number | string | number[] | string[], type?: 'floats'];

function attribute([name, value, type]: Attr): onnx.IAttributeProto {
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') return { name, type: AttributeType.INT, i: value };
  if (type === 'floats') return { name, type: AttributeType.FLOATS, floats: value as number[] };
  if (value.every((v) => typeof v === 'string')) {
    return { name, type: AttributeType.STRINGS, strings: value.map((s) => new TextEncoder().encode(s)) };
  }
  return { name, type: AttributeType.INTS, ints: value };
}

/** A node as skl2onnx names it: `${prefix}_${op}${suffix}`, attributes in name order as onnx.helper sorts them. */
function node(name: string, op: string, input: string[], output: string[], attrs: Attr[] = []): onnx.INodeProto {
  const sorted = [...attrs].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const ml = ['TreeEnsembleRegressor', 'LabelEncoder'].includes(op);
  return { name, opType: op, input, output, attribute: sorted.map(attribute), domain: ml ? 'ai.onnx.ml' : '' };
}

function tensor(name: string, type: 'float' | 'int64', dims: number[], values: number[]): onnx.ITensorProto {
  return type === 'float'
    ? { name, dims, dataType: DataType.FLOAT, floatData: values }
    : { name, dims, dataType: DataType.INT64, int64Data: values };
}

/** The nodes skl2onnx writes for tree `t`: its leaf, the leaf's samples and depth, and the tree's path length. */
function treeNodes(tree: IsolationTree, t: number): onnx.INodeProto[] {
  const leaves = tree.left.flatMap((l, i) => (l < 0 ? [i] : []));
  const depth = new Array<number>(tree.left.length).fill(1);
  tree.left.forEach((l, i) => {
    if (l >= 0) depth[l] = depth[tree.right[i]!] = depth[i]! + 1;
  });
  const leaf = (i: number) => tree.left[i]! < 0;
  const ns = `node_sample${t}`;
  const pl = `path_length${t}`;
  const m1 = `eqp2p_m1_${t}`;
  const n = tree.left.length;
  const ensemble: Attr[] = [
    ['n_targets', 1],
    ['nodes_falsenodeids', tree.right.map((r) => Math.max(r, 0))],
    ['nodes_featureids', tree.feature.map((f, i) => (leaf(i) ? 0 : f))],
    ['nodes_hitrates', new Array<number>(n).fill(1), 'floats'],
    ['nodes_missing_value_tracks_true', new Array<number>(n).fill(0)],
    ['nodes_modes', tree.left.map((_, i) => (leaf(i) ? 'LEAF' : 'BRANCH_LEQ'))],
    ['nodes_nodeids', [...tree.left.keys()]],
    ['nodes_treeids', new Array<number>(n).fill(0)],
    ['nodes_truenodeids', tree.left.map((l) => Math.max(l, 0))],
    ['nodes_values', tree.threshold.map((v, i) => (leaf(i) ? 0 : v)), 'floats'],
    ['post_transform', 'NONE'],
    ['target_ids', leaves.map(() => 0)],
    ['target_nodeids', leaves],
    ['target_treeids', leaves.map(() => 0)],
    ['target_weights', leaves, 'floats'],
  ];
  const encoder = (values: number[]): Attr[] => [
    ['keys_int64s', leaves],
    ['values_floats', values, 'floats'],
  ];
  return [
    node(`${ns}_Gather`, 'Gather', ['X', 'node_sample0_Gathercst'], [`${ns}_output0`], [['axis', 1]]),
    node(`${ns}_TreeEnsembleRegressor`, 'TreeEnsembleRegressor', [`${ns}_output0`], [`${ns}_Y0`], ensemble),
    node(`${ns}_Cast`, 'Cast', [`${ns}_Y0`], [`${ns}_output02`], [['to', DataType.INT64]]),
    node(`${pl}_Cast`, 'Cast', [`${ns}_Y0`], [`${pl}_output0`], [['to', DataType.INT64]]),
    node(
      `${ns}_LabelEncoder`,
      'LabelEncoder',
      [`${ns}_output02`],
      [`${ns}_Y02`],
      encoder(leaves.map((i) => tree.samples[i]!)),
    ),
    node(`${pl}_LabelEncoder`, 'LabelEncoder', [`${pl}_output0`], [`${pl}_Y0`], encoder(leaves.map((i) => depth[i]!))),
    node(`${ns}_Reshape`, 'Reshape', [`${ns}_Y02`, 'path_length0_Reshapecst'], [`${ns}_reshaped0`], [['allowzero', 0]]),
    node(`${pl}_Reshape`, 'Reshape', [`${pl}_Y0`, 'path_length0_Reshapecst'], [`${pl}_reshaped0`], [['allowzero', 0]]),
    node(`eq2_${t}_Equal`, 'Equal', [`${ns}_reshaped0`, 'dec_Powcst'], [`eq2_${t}_C0`]),
    node(`plus2_${t}_Greater`, 'Greater', [`${ns}_reshaped0`, 'dec_Powcst'], [`plus2_${t}_C0`]),
    node(`eq2_${t}_Cast`, 'Cast', [`eq2_${t}_C0`], [`eq2_${t}_output0`], [['to', DataType.FLOAT]]),
    node(`plus2_${t}_Cast`, 'Cast', [`plus2_${t}_C0`], [`plus2_${t}_output0`], [['to', DataType.FLOAT]]),
    node(`eqp2ps${t}_Mul`, 'Mul', [`plus2_${t}_output0`, `${ns}_reshaped0`], [`eqp2ps${t}_C0`]),
    node(`${m1}_Add`, 'Add', [`eqp2ps${t}_C0`, 'eqp2p_m1_0_Addcst'], [`${m1}_C0`]),
    node(`eqp_ns${t}_Max`, 'Max', [`eqp2ps${t}_C0`, 'eqp2p_m1_0_Maxcst'], [`eqp_ns${t}_max0`]),
    node(`${m1}_Max`, 'Max', [`${m1}_C0`, 'eqp2p_m1_0_Maxcst'], [`${m1}_max0`]),
    node(`${m1}_Max1`, 'Max', [`${m1}_C0`, 'eqp2p_m1_0_Maxcst1'], [`${m1}_max02`]),
    node(`eqp_ns${t}_Div`, 'Div', [`${m1}_max02`, `eqp_ns${t}_max0`], [`eqp_ns${t}_C01`]),
    node(`eqp_log${t}_Log`, 'Log', [`${m1}_max0`], [`eqp_log${t}_output0`]),
    node(`eqp_log${t}_Add`, 'Add', [`eqp_log${t}_output0`, 'eqp_log0_Addcst'], [`eqp_log${t}_C01`]),
    node(`eqp_ns${t}_Mul`, 'Mul', [`eqp_ns${t}_C01`, 'eqp_ns0_Mulcst'], [`eqp_ns${t}_C0`]),
    node(`eqp_log${t}_Mul`, 'Mul', [`eqp_log${t}_C01`, 'dec_Powcst'], [`eqp_log${t}_C0`]),
    node(`avlog${t}_Add`, 'Add', [`eqp_log${t}_C0`, `eqp_ns${t}_C0`], [`avlog${t}_C01`]),
    node(`avlog${t}_Mul`, 'Mul', [`avlog${t}_C01`, `plus2_${t}_output0`], [`avlog${t}_C0`]),
    node(`avpl${t}_Add`, 'Add', [`eq2_${t}_output0`, `avlog${t}_C0`], [`avpl${t}_C0`]),
    node(`depth${t}_Add`, 'Add', [`${pl}_reshaped0`, `avpl${t}_C0`], [`depth${t}_C01`]),
    node(`depth${t}_Add1`, 'Add', [`depth${t}_C01`, 'eqp2p_m1_0_Addcst'], [`depth${t}_C0`]),
  ];
}

/**
 * The ONNX model skl2onnx 1.20 writes for `forest` with `to_onnx(forest, X[:1].astype(np.float32),
 * target_opset={"": 22, "ai.onnx.ml": 3})`: input `X` [N, features], outputs `label` (int64 [N, 1]) and
 * `scores` (decision_function, float [N, 1]). Nodes come stage by stage, tree by tree (skl2onnx interleaves the
 * same nodes in another topological order).
 */
export function buildIsolationForestOnnx(forest: IsolationForestParams, graphName = 'isolation-forest'): Uint8Array {
  const perTree = forest.trees.map(treeNodes);
  const nodes = perTree[0]!.flatMap((_, stage) => perTree.map((tree) => tree[stage]!));
  const depths = forest.trees.map((_, t) => `depth${t}_C0`);
  nodes.push(
    node('dec_Sum', 'Sum', depths, ['dec_sum0']),
    node('dec_Div', 'Div', ['dec_sum0', 'dec_Divcst'], ['dec_C0']),
    node('dec_Neg', 'Neg', ['dec_C0'], ['dec_Y01']),
    node('dec_Pow', 'Pow', ['dec_Powcst', 'dec_Y01'], ['dec_Z0']),
    node('dec_Neg1', 'Neg', ['dec_Z0'], ['dec_Y0']),
    node('dec_Add', 'Add', ['dec_Y0', 'dec_Addcst'], ['scores']),
    node('predict_Less', 'Less', ['scores', 'eqp2p_m1_0_Maxcst1'], ['predict_C01']),
    node('predict_Cast', 'Cast', ['predict_C01'], ['predict_output0'], [['to', DataType.INT64]]),
    node('predict_Mul', 'Mul', ['predict_output0', 'predict_Mulcst'], ['predict_C0']),
    node('predict_Add', 'Add', ['predict_C0', 'predict_Addcst'], ['label']),
  );
  const normaliser = Math.fround(forest.trees.length * averagePathLength(forest.maxSamples));
  const initializer = [
    tensor('dec_Powcst', 'float', [1], [2]),
    tensor('node_sample0_Gathercst', 'int64', [forest.features], [...Array(forest.features).keys()]),
    tensor('path_length0_Reshapecst', 'int64', [2], [-1, 1]),
    tensor('eqp2p_m1_0_Addcst', 'float', [1], [-1]),
    tensor('eqp2p_m1_0_Maxcst', 'float', [1], [1]),
    tensor('eqp_log0_Addcst', 'float', [1], [Math.fround(EULER_GAMMA)]),
    tensor('eqp2p_m1_0_Maxcst1', 'float', [1], [0]),
    tensor('eqp_ns0_Mulcst', 'float', [1], [-2]),
    tensor('dec_Divcst', 'float', [1, 1], [normaliser]),
    tensor('dec_Addcst', 'float', [1], [0.5]),
    tensor('predict_Mulcst', 'int64', [1], [-2]),
    tensor('predict_Addcst', 'int64', [1], [1]),
  ];
  const valueInfo = (name: string, elemType: number, width: number): onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType, shape: { dim: [{}, { dimValue: width }] } } },
  });
  const model = onnx.ModelProto.create({
    irVersion: 10,
    producerName: 'skl2onnx',
    producerVersion: '1.20.0',
    domain: 'ai.onnx',
    modelVersion: 0,
    opsetImport: [
      { domain: '', version: 22 },
      { domain: 'ai.onnx.ml', version: 3 },
    ],
    graph: {
      name: graphName,
      node: nodes,
      initializer,
      input: [valueInfo('X', DataType.FLOAT, forest.features)],
      output: [valueInfo('label', DataType.INT64, 1), valueInfo('scores', DataType.FLOAT, 1)],
    },
  });
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}
