/**
 * The ai.onnx.ml operators scikit-learn models are exported with (TreeEnsembleRegressor for forests,
 * LabelEncoder for the isolation forest's path-length tables, SVMRegressor for one-class SVMs), following
 * onnxruntime's semantics: tree thresholds compared in float32, NaN taking the true branch only where
 * `nodes_missing_value_tracks_true` says so, SVM kernels `exp(-γ‖x-s‖²)`, `(γ x·s + c)^d`, `tanh(γ x·s + c)`.
 */
import { attrReader, type OpDef, type PrepareContext } from './op-types';
import { alloc, expectType, UnsupportedGraph } from './tensor';

const MODES = ['BRANCH_LEQ', 'BRANCH_LT', 'BRANCH_GTE', 'BRANCH_GT', 'BRANCH_EQ', 'BRANCH_NEQ', 'LEAF'];
const LEAF = 6;

/** A tree ensemble flattened into arrays: node i's test, children and (for leaves) per-target weights. */
interface TreeParams {
  roots: Int32Array;
  feature: Int32Array;
  threshold: Float32Array | Float64Array;
  mode: Uint8Array;
  trueChild: Int32Array;
  falseChild: Int32Array;
  missingTrue: Uint8Array;
  /** [nodes * targets] */
  weights: Float64Array;
  targets: number;
  base: Float64Array;
  average: boolean;
}

function floatsOrTensor(ctx: PrepareContext, name: string): ArrayLike<number> | undefined {
  const attr = attrReader(ctx);
  const t = attr.tensor(`${name}_as_tensor`);
  if (t) return t.data;
  return attr.has(name) ? attr.numbers(name) : undefined;
}

const treeEnsembleRegressor: OpDef<TreeParams> = {
  prepare(ctx) {
    const attr = attrReader(ctx);
    if (attr.string('post_transform', 'NONE') !== 'NONE') throw new UnsupportedGraph('tree post_transform');
    const agg = attr.string('aggregate_function', 'SUM');
    if (agg !== 'SUM' && agg !== 'AVERAGE') throw new UnsupportedGraph(`tree aggregate_function ${agg}`);
    const treeIds = attr.numbers('nodes_treeids');
    const nodeIds = attr.numbers('nodes_nodeids');
    const n = treeIds.length;
    const values = floatsOrTensor(ctx, 'nodes_values') ?? [];
    const modes = attr.strings('nodes_modes');
    const features = attr.numbers('nodes_featureids');
    const trues = attr.numbers('nodes_truenodeids');
    const falses = attr.numbers('nodes_falsenodeids');
    const missing = attr.numbers('nodes_missing_value_tracks_true', new Array<number>(n).fill(0));
    const lengths = [nodeIds, values, modes, features, trues, falses, missing].map((a) => a.length);
    if (lengths.some((l) => l !== n)) throw new UnsupportedGraph('TreeEnsembleRegressor: node arrays differ in length');
    const targets = attr.int('n_targets', 1);
    // (tree, node) as one number: tree ids stay far below 2^21 and node ids below 2^32.
    const key = (tree: number, node: number) => tree * 4294967296 + node;
    const at = new Map<number, number>();
    treeIds.forEach((t, i) => at.set(key(t, nodeIds[i]!), i));
    const index = (tree: number, node: number) => {
      const i = at.get(key(tree, node));
      if (i === undefined) throw new UnsupportedGraph(`TreeEnsembleRegressor: tree ${tree} has no node ${node}`);
      return i;
    };
    const p: TreeParams = {
      roots: new Int32Array(0),
      feature: Int32Array.from(features),
      // Thresholds given as floats compare in float32; as a double tensor, in double.
      threshold: values instanceof Float64Array ? values : Float32Array.from(values),
      mode: Uint8Array.from(modes, (m) => {
        const k = MODES.indexOf(m);
        if (k < 0) throw new UnsupportedGraph(`TreeEnsembleRegressor: mode ${m}`);
        return k;
      }),
      trueChild: new Int32Array(n),
      falseChild: new Int32Array(n),
      missingTrue: Uint8Array.from(missing),
      weights: new Float64Array(n * targets),
      targets,
      base: Float64Array.from(floatsOrTensor(ctx, 'base_values') ?? new Array<number>(targets).fill(0)),
      average: agg === 'AVERAGE',
    };
    if (p.base.length !== targets) throw new UnsupportedGraph('TreeEnsembleRegressor: base_values length');
    const child = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      if (p.mode[i] === LEAF) continue;
      p.trueChild[i] = index(treeIds[i]!, trues[i]!);
      p.falseChild[i] = index(treeIds[i]!, falses[i]!);
      child[p.trueChild[i]!] = 1;
      child[p.falseChild[i]!] = 1;
    }
    const tIds = attr.numbers('target_treeids');
    const tNodes = attr.numbers('target_nodeids');
    const tTargets = attr.numbers('target_ids');
    const tWeights = floatsOrTensor(ctx, 'target_weights') ?? [];
    if ([tNodes, tTargets, tWeights].some((a) => a.length !== tIds.length)) {
      throw new UnsupportedGraph('TreeEnsembleRegressor: target arrays differ in length');
    }
    for (let j = 0; j < tIds.length; j++) {
      const i = index(tIds[j]!, tNodes[j]!);
      const t = tTargets[j]!;
      if (t < 0 || t >= targets || p.mode[i] !== LEAF) throw new UnsupportedGraph('TreeEnsembleRegressor: target');
      p.weights[i * targets + t] = p.weights[i * targets + t]! + tWeights[j]!;
    }
    const roots: number[] = [];
    const seen = new Set<number>();
    for (let i = 0; i < n; i++) {
      if (child[i] || seen.has(treeIds[i]!)) continue;
      seen.add(treeIds[i]!);
      roots.push(i);
    }
    if (seen.size !== new Set(treeIds).size) throw new UnsupportedGraph('TreeEnsembleRegressor: a tree has no root');
    p.roots = Int32Array.from(roots);
    return p;
  },
  run(p, [x]) {
    expectType(x!, ['float', 'double'], 'TreeEnsembleRegressor');
    if (x!.dims.length !== 2) throw new UnsupportedGraph('TreeEnsembleRegressor: input must be [N, F]');
    const [rows, f] = x!.dims as [number, number];
    if (p.feature.some((k) => k < 0 || k >= f)) throw new UnsupportedGraph('TreeEnsembleRegressor: feature id');
    const out = alloc('float', [rows, p.targets]);
    const acc = alloc('double', [p.targets]).data;
    const { feature, threshold, mode, trueChild, falseChild, missingTrue, weights, targets } = p;
    for (let r = 0; r < rows; r++) {
      acc.fill(0);
      const base = r * f;
      for (const root of p.roots) {
        let i = root;
        while (mode[i] !== LEAF) {
          const v = x!.data[base + feature[i]!]!;
          const t = threshold[i]!;
          const m = mode[i]!;
          const hit =
            m === 0 ? v <= t : m === 1 ? v < t : m === 2 ? v >= t : m === 3 ? v > t : m === 4 ? v === t : v !== t;
          i = hit || (missingTrue[i] && v !== v) ? trueChild[i]! : falseChild[i]!;
        }
        for (let t = 0; t < targets; t++) acc[t] = acc[t]! + weights[i * targets + t]!;
      }
      for (let t = 0; t < targets; t++) {
        out.data[r * targets + t] = (p.average ? acc[t]! / p.roots.length : acc[t]!) + p.base[t]!;
      }
    }
    return [out];
  },
};

interface LabelEncoderParams {
  table: Map<number, number>;
  fallback: number;
  to: 'float' | 'int64';
}

const labelEncoder: OpDef<LabelEncoderParams> = {
  prepare(ctx) {
    const attr = attrReader(ctx);
    if (ctx.opset < 2) throw new UnsupportedGraph('LabelEncoder: opset 1 maps strings');
    const keys = attr.has('keys_int64s') ? attr.numbers('keys_int64s') : undefined;
    const floats = attr.has('values_floats') ? attr.numbers('values_floats') : undefined;
    const ints = attr.has('values_int64s') ? attr.numbers('values_int64s') : undefined;
    const values = floats ?? ints;
    if (!keys || !values || keys.length !== values.length) throw new UnsupportedGraph('LabelEncoder: int64 keys');
    return {
      table: new Map(Array.from(keys, (k, i) => [k, values[i]!])),
      fallback: floats ? attr.float('default_float', -0) : attr.int('default_int64', -1),
      to: floats ? 'float' : 'int64',
    };
  },
  run({ table, fallback, to }, [x]) {
    expectType(x!, ['int64'], 'LabelEncoder');
    const out = alloc(to, x!.dims);
    for (let i = 0; i < x!.data.length; i++) out.data[i] = table.get(x!.data[i]!) ?? fallback;
    return [out];
  },
};

interface SvmParams {
  kernel: 'LINEAR' | 'POLY' | 'RBF' | 'SIGMOID';
  gamma: number;
  coef0: number;
  degree: number;
  /** [supports, F]; empty in linear mode. */
  vectors: Float32Array;
  coefficients: Float32Array;
  supports: number;
  rho: number;
  oneClass: boolean;
}

const svmRegressor: OpDef<SvmParams> = {
  prepare(ctx) {
    const attr = attrReader(ctx);
    if (attr.string('post_transform', 'NONE') !== 'NONE') throw new UnsupportedGraph('SVM post_transform');
    const kernel = attr.string('kernel_type', 'LINEAR');
    if (!['LINEAR', 'POLY', 'RBF', 'SIGMOID'].includes(kernel)) throw new UnsupportedGraph(`SVM kernel ${kernel}`);
    const [gamma = 0, coef0 = 0, degree = 0] = attr.numbers('kernel_params', []);
    const rho = attr.numbers('rho', [0]);
    if (rho.length !== 1) throw new UnsupportedGraph('SVMRegressor: one rho');
    const supports = attr.int('n_supports', 0);
    const vectors = Float32Array.from(attr.numbers('support_vectors', []));
    const coefficients = Float32Array.from(attr.numbers('coefficients'));
    if (supports > 0 && (coefficients.length !== supports || vectors.length % supports !== 0)) {
      throw new UnsupportedGraph('SVMRegressor: support vectors and coefficients differ');
    }
    return {
      kernel: kernel as SvmParams['kernel'],
      gamma,
      coef0,
      degree,
      vectors,
      coefficients,
      supports,
      rho: rho[0]!,
      oneClass: attr.int('one_class', 0) !== 0,
    };
  },
  run(p, [x]) {
    expectType(x!, ['float', 'double'], 'SVMRegressor');
    const [rows, f] = x!.dims as [number, number];
    const linear = p.supports === 0;
    if ((linear && p.coefficients.length !== f) || (!linear && p.vectors.length !== p.supports * f)) {
      throw new UnsupportedGraph(`SVMRegressor: model has other than ${f} features`);
    }
    const out = alloc('float', [rows, 1]);
    const xs = x!.data;
    const sv = p.vectors;
    for (let r = 0; r < rows; r++) {
      const o = r * f;
      let sum = 0;
      if (linear) {
        for (let k = 0; k < f; k++) sum += xs[o + k]! * p.coefficients[k]!;
      } else {
        for (let j = 0; j < p.supports; j++) {
          const s = j * f;
          let v = 0;
          if (p.kernel === 'RBF') {
            for (let k = 0; k < f; k++) {
              const d = xs[o + k]! - sv[s + k]!;
              v += d * d;
            }
            v = Math.exp(-p.gamma * v);
          } else {
            for (let k = 0; k < f; k++) v += xs[o + k]! * sv[s + k]!;
            if (p.kernel === 'POLY') v = Math.pow(p.gamma * v + p.coef0, p.degree);
            else if (p.kernel === 'SIGMOID') v = Math.tanh(p.gamma * v + p.coef0);
          }
          sum += p.coefficients[j]! * v;
        }
      }
      sum += p.rho;
      out.data[r] = p.oneClass ? (sum > 0 ? 1 : -1) : sum;
    }
    return [out];
  },
};

/** The ai.onnx.ml operators of the fast path, by name. */
export const mlOps: Record<string, OpDef> = {
  TreeEnsembleRegressor: treeEnsembleRegressor,
  LabelEncoder: labelEncoder,
  SVMRegressor: svmRegressor,
};
