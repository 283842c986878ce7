/**
 * The ai.onnx.ml classifiers supervised anomaly models are exported with: TreeEnsembleClassifier (scikit-learn's
 * RandomForest, ExtraTrees, DecisionTree and GradientBoosting classifiers through skl2onnx, XGBoost and LightGBM
 * through onnxmltools) and LinearClassifier (LogisticRegression, LinearSVC), with the Normalizer and
 * ArrayFeatureExtractor skl2onnx puts after some. Their class probabilities follow what onnxruntime-node 1.30
 * computes, checked case by case against it (test/models/classifier-ops.test.ts), quirks included: a binary
 * ensemble whose leaves weigh one class writes `[1 - s, s]` (weights all positive) or `[-s, s]`, `[σ(-s), σ(s)]`
 * under LOGISTIC; a class no leaf weighs is written as 0; a LinearClassifier with one row of coefficients and two
 * labels adds `1 - s` as the first column. Sums and transforms are rounded to float32 as onnxruntime computes them.
 * PROBIT and SOFTMAX_ZERO, and string labels where the graph reads the label output, are left to the session.
 * Trees that each weigh one class (a binary forest, a boosting model's tree per class, as skl2onnx and onnxmltools
 * write scikit-learn's and XGBoost's), and trees whose every leaf weighs every class (scikit-learn's forests of
 * three classes or more), are walked in the isolation forest's compact layout (fused-trees.ts).
 */
import { attrReader, type OpDef, type PrepareContext } from './op-types';
import { alloc, expectType, UnsupportedGraph, type Tensor } from './tensor';
import {
  compactRowSums,
  compactSums,
  compactTrees,
  treeShape,
  type CompactTreeSum,
  type TreeClasses,
} from './fused-trees';
import { checkFeatures, depthFirst, LEAF, leafOf, readTrees, type TreeParams } from './tree-ensemble';

type Transform = 'NONE' | 'LOGISTIC' | 'SOFTMAX';

const f32 = Math.fround;

/** The post_transform attribute, failing for the two this module does not compute. */
function transformOf(ctx: PrepareContext): Transform {
  const post = attrReader(ctx).string('post_transform', 'NONE');
  if (post !== 'NONE' && post !== 'LOGISTIC' && post !== 'SOFTMAX') {
    throw new UnsupportedGraph(`${ctx.op}: post_transform ${post}`);
  }
  return post;
}

/** The int64 class labels, or undefined when the labels are strings (the label output is then not computed). */
function labelsOf(ctx: PrepareContext, intsName: string): { labels: number[] | undefined; count: number } {
  const attr = attrReader(ctx);
  if (attr.has('classlabels_strings')) return { labels: undefined, count: attr.strings('classlabels_strings').length };
  const labels = Array.from(attr.numbers(intsName, []));
  return { labels, count: labels.length };
}

/** onnxruntime's ComputeLogistic in float32: `1 / (1 + e^-|x|)`, mirrored for negative x. */
function logistic(x: number): number {
  const v = f32(1 / f32(1 + f32(Math.exp(-Math.abs(x)))));
  return x < 0 ? f32(1 - v) : v;
}

/** `scores[at..at+n)` transformed in place as onnxruntime's write_scores does for two or more scores. */
function transform(scores: Float32Array, at: number, n: number, post: Transform): void {
  if (post === 'LOGISTIC') {
    for (let i = at; i < at + n; i++) scores[i] = logistic(scores[i]!);
  } else if (post === 'SOFTMAX') {
    let max = -Infinity;
    for (let i = at; i < at + n; i++) if (scores[i]! > max) max = scores[i]!;
    let sum = 0;
    for (let i = at; i < at + n; i++) {
      scores[i] = Math.exp(scores[i]! - max);
      sum = f32(sum + scores[i]!);
    }
    for (let i = at; i < at + n; i++) scores[i] = scores[i]! / sum;
  }
}

interface TreeClassifierParams {
  /** The trees in the general layout, or undefined when {@link compact} holds them. */
  trees: TreeParams | undefined;
  /**
   * The trees in the compact layout (fused-trees.ts) where every split is a depth-first `x <= threshold`, or
   * `x < threshold` over a float32 input (`strict`: XGBoost's): 7 bytes a node against 40, and a faster walk. Each
   * leaf holds its weight where each tree's leaves weigh one class (`classes`: a binary forest, a boosting model's
   * tree per class, as exporters write them), or the row of its weights in `leafWeights` ([leaves, classes]) where
   * every leaf weighs every class of three or more (scikit-learn's multiclass forests). Trees numbered otherwise are
   * renumbered depth first; `nanTrue` where every split sends NaN to its true child (LightGBM's): NaN inputs are
   * then walked as -Infinity.
   */
  compact:
    | (CompactTreeSum & { width: number; strict: boolean; nanTrue: boolean } & (
          | { classes: TreeClasses; weighed: number[]; leafWeights?: undefined }
          | { leafWeights: Float32Array | Float64Array; classes?: undefined }
        ))
    | undefined;
  classes: number;
  /** Sums in float32 as onnxruntime keeps them (in double for thresholds given as doubles). */
  float: boolean;
  labels: number[] | undefined;
  post: Transform;
  base: number[];
  /** One class weighed of two: onnxruntime's binary case. */
  binary: boolean;
  positive: boolean;
}

const treeEnsembleClassifier: OpDef<TreeClassifierParams> = {
  prepare(ctx) {
    const post = transformOf(ctx);
    const { labels, count: classes } = labelsOf(ctx, 'classlabels_int64s');
    if (classes < 2) throw new UnsupportedGraph(`TreeEnsembleClassifier: ${classes} class label(s)`);
    const trees = readTrees(ctx, classes);
    const base = Array.from(trees.base);
    const weighed = new Set<number>();
    let positive = true;
    // Whether some leaf lists no weight for class 1, for any class, or for some class; how many leaves there are.
    let without1 = false;
    let withoutAny = false;
    let withoutSome = false;
    let leaves = 0;
    const listed = trees.listed!;
    for (let i = 0; i < trees.mode.length; i++) {
      if (trees.mode[i] !== LEAF) continue;
      leaves++;
      let count = 0;
      for (let c = 0; c < classes; c++) {
        if (!listed[i * classes + c]) continue;
        count++;
        weighed.add(c);
        if (trees.weights[i * classes + c]! < 0) positive = false;
      }
      without1 ||= !listed[i * classes + 1];
      withoutAny ||= count === 0;
      withoutSome ||= count < classes;
    }
    const binary = classes === 2 && weighed.size === 1;
    // What onnxruntime leaves undefined: a score column it never writes, a label of class -1.
    if (classes === 2 && base.length === 1 && !binary && without1) {
      throw new UnsupportedGraph('TreeEnsembleClassifier: a binary score without its second column');
    }
    if (classes > 2 && base.length !== 0 && base.length !== classes) {
      throw new UnsupportedGraph(`TreeEnsembleClassifier: ${base.length} base_values for ${classes} classes`);
    }
    if (classes > 2 && base.length === 0 && withoutAny) {
      throw new UnsupportedGraph('TreeEnsembleClassifier: a leaf weighs no class');
    }
    const float = trees.threshold instanceof Float32Array;
    const params = { classes, float, labels, post, base, binary, positive };
    if (trees.roots.length === 0) return { ...params, trees, compact: undefined };
    // Where every split sends NaN to its true child (LightGBM's), NaN inputs are walked as -Infinity instead.
    const nanTrue = everySplit(trees, (i) => trees.missingTrue[i] === 1);
    const plain = nanTrue ? { ...trees, missingTrue: new Uint8Array(trees.mode.length) } : trees;
    // XGBoost's `x < t` splits, over float32 values, are `x <= t'` with t' the float32 just below t.
    const strict = float && everySplit(plain, (i) => plain.mode[i] === 1 && plain.missingTrue[i] === 0);
    const compared = depthFirst(strict ? lessThanAsAtMost(plain) : plain);
    const shape = treeShape([compared], [undefined]);
    const { width } = shape;
    // A NaN walked as -Infinity goes true at every threshold but a NaN one.
    const farthest =
      nanTrue && !everySplit(compared, (i) => compared.threshold[i] === compared.threshold[i])
        ? undefined
        : shape.farthest;
    const treeClasses = farthest !== undefined ? classOfEachTree(compared) : undefined;
    if (farthest !== undefined && treeClasses) {
      // Each leaf holds its weight of the one class its tree weighs.
      const values = new Float64Array(compared.mode.length);
      for (let i = 0; i < values.length; i++) {
        for (let c = 0; c < classes; c++) {
          if (compared.listed![i * classes + c]) values[i] = compared.weights[i * classes + c]!;
        }
      }
      const laid = compactTrees([compared], [undefined], [values], width, farthest, !float);
      const first = new Uint8Array(treeClasses.length);
      const seen = new Set<number>();
      treeClasses.forEach((c, k) => {
        if (!seen.has(c)) first[k] = 1;
        seen.add(c);
      });
      const trained = { of: Int32Array.from(treeClasses), first, count: classes };
      return {
        ...params,
        trees: undefined,
        compact: { ...laid, width, strict, nanTrue, classes: trained, weighed: [...seen] },
      };
    }
    // Where every leaf weighs every class (`leaves` counts those no root reaches too, which renumbering drops).
    if (farthest !== undefined && classes > 2 && !withoutSome && leaves < 2 ** 24) {
      // Each leaf holds the number of its row of weights (exact in a float32 split below 2^24).
      const row = new Float64Array(compared.mode.length);
      const leafWeights = float ? new Float32Array(leaves * classes) : new Float64Array(leaves * classes);
      for (let i = 0, l = 0; i < row.length; i++) {
        if (compared.mode[i] !== LEAF) continue;
        row[i] = l;
        leafWeights.set(compared.weights.subarray(i * classes, (i + 1) * classes), l++ * classes);
      }
      const laid = compactTrees([compared], [undefined], [row], width, farthest, !float);
      return { ...params, trees: undefined, compact: { ...laid, width, strict, nanTrue, leafWeights } };
    }
    return { ...params, trees, compact: undefined };
  },
  absent: (p) => (p.labels ? [] : [0]),
  run(p, [x]) {
    expectType(x!, ['float', 'double'], 'TreeEnsembleClassifier');
    if (x!.dims.length !== 2) throw new UnsupportedGraph('TreeEnsembleClassifier: input must be [N, F]');
    const [rows, f] = x!.dims as [number, number];
    const { classes } = p;
    const label = alloc('int64', [rows]);
    const out = alloc('float', [rows, classes]);
    const z = out.data;
    const round = p.float ? f32 : (v: number) => v;
    const sums = new Float64Array(rows * classes);
    // Which classes the leaves a row reached list a weight for: onnxruntime's has_score.
    const has = new Uint8Array(rows * classes);
    if (p.compact) {
      if (f < p.compact.width) throw new UnsupportedGraph('TreeEnsembleClassifier: input narrower than its splits');
      if (p.compact.strict && x!.type !== 'float') {
        throw new UnsupportedGraph('TreeEnsembleClassifier: x < threshold splits over a double input');
      }
      const xs = p.compact.nanTrue ? nanAsLowest(x!.data) : x!.data;
      // Each row's sums of its leaves' weights per class, rounded by the array's type as they grow.
      const sum = alloc(p.float ? 'float' : 'double', [rows, classes]).data;
      if (p.compact.leafWeights) {
        compactRowSums(p.compact, xs, rows, f, sum, p.compact.leafWeights, classes);
        sums.set(sum);
        has.fill(1);
      } else {
        compactSums(p.compact, xs, rows, f, sum, p.compact.classes);
        for (let r = 0; r < rows; r++) {
          for (const c of p.compact.weighed) {
            sums[r * classes + c] = sum[r * classes + c]!;
            has[r * classes + c] = 1;
          }
        }
      }
    } else {
      const trees = p.trees!;
      checkFeatures(trees, f, 'TreeEnsembleClassifier');
      const { weights } = trees;
      const listed = trees.listed!;
      // Tree by tree over the rows: a tree's nodes stay in cache for every row.
      for (const root of trees.roots) {
        for (let r = 0; r < rows; r++) {
          const i = leafOf(trees, root, x!.data, r * f) * classes;
          const at = r * classes;
          for (let c = 0; c < classes; c++) {
            if (!listed[i + c]) continue;
            sums[at + c] = round(sums[at + c]! + weights[i + c]!);
            has[at + c] = 1;
          }
        }
      }
    }
    for (let r = 0; r < rows; r++) {
      const at = r * classes;
      const acc = sums.subarray(at, at + classes);
      const scored = has.subarray(at, at + classes);
      label.data[r] = classes > 2 ? finishMany(p, acc, scored, z, at) : finishTwo(p, acc, scored, z, at, round);
    }
    return [label, out];
  },
};

/**
 * The one class each tree's leaves weigh, in the order of the roots, or undefined where a leaf weighs none or
 * several, or two leaves of a tree weigh different classes.
 */
function classOfEachTree(trees: TreeParams): number[] | undefined {
  const classes = trees.targets;
  const listed = trees.listed!;
  const out: number[] = [];
  for (const root of trees.roots) {
    let tree = -1;
    const stack = [root];
    while (stack.length > 0) {
      const i = stack.pop()!;
      if (trees.mode[i] !== LEAF) {
        stack.push(trees.trueChild[i]!, trees.falseChild[i]!);
        continue;
      }
      let only = -1;
      for (let c = 0; c < classes; c++) {
        if (!listed[i * classes + c]) continue;
        if (only >= 0) return undefined;
        only = c;
      }
      if (only < 0 || (tree >= 0 && only !== tree)) return undefined;
      tree = only;
    }
    out.push(tree);
  }
  return out;
}

/** `xs` with every NaN as -Infinity (a copy where it has one). */
function nanAsLowest(xs: Tensor['data']): Tensor['data'] {
  let i = 0;
  while (i < xs.length && xs[i] === xs[i]) i++;
  if (i === xs.length) return xs;
  const out = xs.slice();
  for (; i < out.length; i++) if (out[i] !== out[i]) out[i] = -Infinity;
  return out;
}

/** Whether `test` holds for every split of `trees` (by its index). */
function everySplit(trees: TreeParams, test: (i: number) => boolean): boolean {
  for (let i = 0; i < trees.mode.length; i++) if (trees.mode[i] !== LEAF && !test(i)) return false;
  return true;
}

/**
 * `trees` (float32 thresholds, every split `x < t`) with every split `x <= t'`, t' the float32 below t: the same
 * branch for every float32 x and NaN (t = -Infinity, which no x is below, becomes NaN, which no x is at most).
 */
function lessThanAsAtMost(trees: TreeParams): TreeParams {
  const mode = trees.mode.slice();
  const threshold = (trees.threshold as Float32Array).slice();
  const bits = new Int32Array(threshold.buffer);
  for (let i = 0; i < mode.length; i++) {
    if (mode[i] === LEAF) continue;
    mode[i] = 0;
    const t = threshold[i]!;
    if (t === -Infinity) threshold[i] = NaN;
    else if (t === 0) threshold[i] = -1.401298464324817e-45;
    else if (t === t) bits[i] = bits[i]! + (t > 0 ? -1 : 1);
  }
  return { ...trees, mode, threshold };
}

/** Three or more classes: base values added, scores transformed; the label of the class with the top score. */
function finishMany(
  p: TreeClassifierParams,
  acc: Float64Array,
  has: Uint8Array,
  z: Tensor['data'],
  at: number,
): number {
  const classes = acc.length;
  for (let c = 0; c < p.base.length; c++) {
    acc[c] = has[c] ? f32(acc[c]! + p.base[c]!) : p.base[c]!;
    has[c] = 1;
  }
  let top = -1;
  for (let c = 0; c < classes; c++) if (has[c] && (top < 0 || acc[c]! > acc[top]!)) top = c;
  for (let c = 0; c < classes; c++) z[at + c] = acc[c]!;
  transform(z as Float32Array, at, classes, p.post);
  return p.labels?.[top] ?? 0;
}

/**
 * Two classes, as onnxruntime's TreeAggregatorClassifier finishes them: the label it picks and `[score of class 0,
 * score of class 1]` written at `at`.
 */
function finishTwo(
  p: TreeClassifierParams,
  acc: Float64Array,
  has: Uint8Array,
  z: Tensor['data'],
  at: number,
  round: (v: number) => number,
): number {
  const has0 = has[0] === 1;
  const has1 = has[1] === 1;
  let s0 = acc[0]!;
  let s1 = acc[1]!;
  let one = false;
  let second = -1;
  if (p.base.length === 2) {
    if (has1) {
      // As onnxruntime: class 1's score becomes its base value plus class 0's sum.
      s1 = round(p.base[1]! + s0);
      s0 = -s1;
    } else {
      s1 = round(s1 + p.base[1]!);
      s0 = round(s0 + p.base[0]!);
    }
  } else if (p.base.length === 1) {
    s0 = round(s0 + p.base[0]!);
    one = !has1;
  } else if (p.base.length === 0) {
    second = 3;
    one = !has1;
  }
  const pos = has1 ? s1 : has0 ? s0 : 0;
  // Outside the binary case onnxruntime labels a row 1 or 0 whatever the model's labels are.
  let y = pos > 0 ? 1 : 0;
  if (p.binary) {
    second = p.positive ? (pos > 0.5 ? 0 : 1) : pos > 0 ? 2 : 3;
    y = p.labels?.[second === 0 || second === 2 ? 1 : 0] ?? 0;
  }
  if (!one) {
    // A class no leaf scored is written as 0, whatever its sum or base value.
    z[at] = has0 ? s0 : 0;
    z[at + 1] = has1 ? s1 : 0;
    transform(z as Float32Array, at, 2, p.post);
  } else if (p.post === 'LOGISTIC') {
    z[at] = logistic(-s0);
    z[at + 1] = logistic(s0);
  } else {
    z[at] = second <= 1 ? f32(1 - s0) : -s0;
    z[at + 1] = s0;
  }
  return y;
}

interface LinearClassifierParams {
  coefficients: Float32Array;
  intercepts: Float32Array;
  labels: number[] | undefined;
  labelCount: number;
  post: Transform;
}

const linearClassifier: OpDef<LinearClassifierParams> = {
  prepare(ctx) {
    const attr = attrReader(ctx);
    const post = transformOf(ctx);
    const coefficients = Float32Array.from(attr.numbers('coefficients'));
    const intercepts = Float32Array.from(attr.numbers('intercepts', []));
    const { labels, count } = labelsOf(ctx, 'classlabels_ints');
    const k = intercepts.length;
    if (k === 0 || coefficients.length % k !== 0) {
      throw new UnsupportedGraph(`LinearClassifier: ${coefficients.length} coefficients for ${k} intercepts`);
    }
    return { coefficients, intercepts, labels, labelCount: count, post };
  },
  absent: (p) => (p.labels ? [] : [0]),
  run(p, [x]) {
    expectType(x!, ['float', 'double'], 'LinearClassifier');
    if (x!.dims.length !== 2) throw new UnsupportedGraph('LinearClassifier: input must be [N, F]');
    const [rows, f] = x!.dims as [number, number];
    const { coefficients: w, intercepts: b } = p;
    const k = b.length;
    if (w.length !== k * f)
      throw new UnsupportedGraph(`LinearClassifier: ${w.length / k} coefficients a class for ${f} features`);
    // One row of coefficients for two labels: onnxruntime adds the second column as 1 - s.
    const second = k === 1 && p.labelCount === 2;
    const cols = second ? 2 : k;
    const label = alloc('int64', [rows]);
    const out = alloc('float', [rows, cols]);
    const z = out.data;
    for (let r = 0; r < rows; r++) {
      // onnxruntime casts a double input to float32 before its Gemm.
      const xr = r * f;
      let top = 0;
      for (let c = 0; c < k; c++) {
        let v = 0;
        for (let j = 0; j < f; j++) v += f32(x!.data[xr + j]!) * w[c * f + j]!;
        const s = f32(f32(v) + b[c]!);
        z[r * cols + c] = s;
        if (s > z[r * cols + top]!) top = c;
      }
      if (k === 1) {
        const s = z[r * cols]!;
        const y = s > 0 ? 1 : 0;
        label.data[r] = p.labels && p.labels.length === 2 ? p.labels[y]! : y;
        if (second) {
          const v = p.post === 'LOGISTIC' ? logistic(s) : s;
          z[r * 2] = f32(1 - v);
          z[r * 2 + 1] = v;
        }
      } else {
        if (p.labels) label.data[r] = p.labels[top] ?? top;
        transform(z as Float32Array, r * cols, k, p.post);
      }
    }
    return [label, out];
  },
};

/**
 * Normalizer: each row divided by its largest value (MAX), the sum of its absolute values (L1) or its L2 norm, in
 * float32 as onnxruntime computes it; a row whose divisor is 0 is left as it is. skl2onnx follows a one-vs-rest
 * LogisticRegression's LinearClassifier with an L1 Normalizer.
 */
const normalizer: OpDef<{ norm: 'MAX' | 'L1' | 'L2' }> = {
  prepare(ctx) {
    const norm = attrReader(ctx).string('norm', 'MAX');
    if (norm !== 'MAX' && norm !== 'L1' && norm !== 'L2') throw new UnsupportedGraph(`Normalizer: norm ${norm}`);
    return { norm };
  },
  run({ norm }, [x]) {
    expectType(x!, ['float', 'double'], 'Normalizer');
    const dims = x!.dims;
    if (dims.length < 1 || dims.length > 2) throw new UnsupportedGraph('Normalizer: input must be [N, C] or [C]');
    const width = dims[dims.length - 1]!;
    const out = alloc('float', [...dims]);
    const xs = x!.data;
    const ys = out.data;
    for (let at = 0; at < xs.length; at += width) {
      let d = norm === 'MAX' ? -3.4028234663852886e38 : 0;
      for (let i = at; i < at + width; i++) {
        const v = f32(xs[i]!);
        if (norm === 'MAX') d = Math.max(d, v);
        else if (norm === 'L1') d = f32(d + Math.abs(v));
        else {
          ys[i] = f32(xs[i]! * xs[i]!);
          d = f32(d + ys[i]!);
        }
      }
      for (let i = at; i < at + width; i++) {
        const v = f32(xs[i]!);
        if (d === 0) ys[i] = v;
        else if (norm === 'L2') ys[i] = (xs[i]! < 0 ? -1 : 1) * Math.sqrt(f32(ys[i]! / d));
        else ys[i] = v / d;
      }
    }
    return [out];
  },
};

/**
 * ArrayFeatureExtractor: the columns `indices` of each row of X (a [C] input is one row), as skl2onnx picks a
 * binary LinearSVC's positive-class score from LinearClassifier's two columns.
 */
const arrayFeatureExtractor: OpDef<undefined> = {
  prepare: () => undefined,
  run(_p, [x, indices]) {
    expectType(x!, ['float', 'double', 'int64'], 'ArrayFeatureExtractor');
    expectType(indices!, ['int64'], 'ArrayFeatureExtractor');
    const dims = x!.dims;
    if (dims.length === 0) throw new UnsupportedGraph('ArrayFeatureExtractor: a scalar input');
    const stride = dims[dims.length - 1]!;
    const picks = indices!.data;
    for (const k of picks) {
      if (k < 0 || k >= stride) throw new UnsupportedGraph(`ArrayFeatureExtractor: index ${k} of ${stride}`);
    }
    const n = picks.length;
    const out = alloc(x!.type, dims.length === 1 ? [1, n] : [...dims.slice(0, -1), n]);
    const rows = stride === 0 ? 0 : x!.data.length / stride;
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < n; j++) out.data[r * n + j] = x!.data[r * stride + picks[j]!]!;
    }
    return [out];
  },
};

/** The classifiers of the fast path and the operators that follow them in exports, by name. */
export const classifierOps: Record<string, OpDef> = {
  TreeEnsembleClassifier: treeEnsembleClassifier,
  LinearClassifier: linearClassifier,
  Normalizer: normalizer,
  ArrayFeatureExtractor: arrayFeatureExtractor,
};
