/**
 * A TreeEnsembleRegressor's or TreeEnsembleClassifier's trees as flat arrays, read from its attributes with
 * onnxruntime's semantics, and the walk from a root to the leaf a row reaches: tree thresholds compared in float32
 * (in double when given as a double tensor), NaN taking the true branch only where
 * `nodes_missing_value_tracks_true` says so. Both operators and the fused tree-sum evaluator walk trees with these.
 */
import { attrReader, type PrepareContext } from './op-types';
import { UnsupportedGraph } from './tensor';

const MODES = ['BRANCH_LEQ', 'BRANCH_LT', 'BRANCH_GTE', 'BRANCH_GT', 'BRANCH_EQ', 'BRANCH_NEQ', 'LEAF'];
/** The mode code of a leaf. */
export const LEAF = 6;

/** Trees flattened into arrays: node i's test (feature, threshold, mode) and children, each tree from its root. */
export interface TreeArrays {
  roots: Int32Array;
  feature: Int32Array;
  threshold: Float32Array | Float64Array;
  mode: Uint8Array;
  trueChild: Int32Array;
  falseChild: Int32Array;
  missingTrue: Uint8Array;
}

/** An ensemble's trees with (for leaves) per-target weights: a regressor's targets, a classifier's classes. */
export interface TreeParams extends TreeArrays {
  /** [nodes * targets] */
  weights: Float64Array;
  /** A classifier's [nodes * classes]: 1 where the node's weights list the class, even with weight 0. */
  listed?: Uint8Array;
  targets: number;
  base: Float64Array;
  average: boolean;
}

function floatsOrTensor(attr: ReturnType<typeof attrReader>, name: string): ArrayLike<number> | undefined {
  const t = attr.tensor(`${name}_as_tensor`);
  if (t) return t.data;
  return attr.has(name) ? attr.numbers(name) : undefined;
}

/**
 * The trees of a TreeEnsembleRegressor node (leaf weights in its `target_*` attributes, `n_targets` of them) or of a
 * TreeEnsembleClassifier (in `class_*`, one per class of `classes`); throws UnsupportedGraph for anything it does
 * not reproduce.
 */
export function readTrees(ctx: PrepareContext, classes?: number): TreeParams {
  const attr = attrReader(ctx);
  const op = ctx.op;
  const agg = attr.string('aggregate_function', 'SUM');
  if (agg !== 'SUM' && agg !== 'AVERAGE') throw new UnsupportedGraph(`tree aggregate_function ${agg}`);
  const treeIds = attr.numbers('nodes_treeids');
  const nodeIds = attr.numbers('nodes_nodeids');
  const n = treeIds.length;
  const values = floatsOrTensor(attr, 'nodes_values') ?? [];
  const modes = attr.strings('nodes_modes');
  const features = attr.numbers('nodes_featureids');
  const trues = attr.numbers('nodes_truenodeids');
  const falses = attr.numbers('nodes_falsenodeids');
  const missingName = 'nodes_missing_value_tracks_true';
  const missing = attr.has(missingName) ? attr.numbers(missingName) : undefined;
  const lengths = [nodeIds, values, modes, features, trues, falses, missing ?? treeIds].map((a) => a.length);
  if (lengths.some((l) => l !== n)) throw new UnsupportedGraph(`${op}: node arrays differ in length`);
  const targets = classes ?? attr.int('n_targets', 1);
  const index = new NodeIndex(treeIds, nodeIds, op);
  // One buffer for the node arrays (and the roots' search below): a typed array of more than 64 bytes allocates a
  // backing store of its own, and a forest of 100 one-tree ensembles would allocate a thousand.
  const float32 = !(values instanceof Float64Array);
  const listed = classes === undefined ? 0 : n * targets;
  const buffer = new Carve(new ArrayBuffer(8 * n * targets + 4 * n * (float32 ? 4 : 3) + 3 * n + listed));
  const p: TreeParams = {
    roots: new Int32Array(0),
    weights: buffer.take(Float64Array, n * targets, 8),
    feature: buffer.take(Int32Array, n, 4),
    trueChild: buffer.take(Int32Array, n, 4),
    falseChild: buffer.take(Int32Array, n, 4),
    // Thresholds given as floats compare in float32; as a double tensor, in double.
    threshold: float32 ? buffer.take(Float32Array, n, 4) : values,
    mode: buffer.take(Uint8Array, n, 1),
    missingTrue: buffer.take(Uint8Array, n, 1),
    targets,
    // A regressor without base values adds zeros; a classifier's count of them changes how its scores finish.
    base: Float64Array.from(floatsOrTensor(attr, 'base_values') ?? new Array<number>(classes ? 0 : targets).fill(0)),
    average: agg === 'AVERAGE',
  };
  p.feature.set(features);
  if (float32) p.threshold.set(values);
  modeCodes(modes, p.mode, op);
  if (missing) p.missingTrue.set(missing);
  if (listed) p.listed = buffer.take(Uint8Array, listed, 1);
  // A classifier's base values are checked by the classifier: onnxruntime reads 0, 1, 2 or one per class.
  if (classes === undefined && p.base.length !== targets) throw new UnsupportedGraph(`${op}: base_values length`);
  const child = buffer.take(Uint8Array, n, 1);
  for (let i = 0; i < n; i++) {
    if (p.mode[i] === LEAF) continue;
    p.trueChild[i] = index.of(treeIds[i]!, trues[i]!);
    p.falseChild[i] = index.of(treeIds[i]!, falses[i]!);
    child[p.trueChild[i]!] = 1;
    child[p.falseChild[i]!] = 1;
  }
  const prefix = classes === undefined ? 'target' : 'class';
  const tIds = attr.numbers(`${prefix}_treeids`);
  const tNodes = attr.numbers(`${prefix}_nodeids`);
  const tTargets = attr.numbers(`${prefix}_ids`);
  const tWeights = floatsOrTensor(attr, `${prefix}_weights`) ?? [];
  if ([tNodes, tTargets, tWeights].some((a) => a.length !== tIds.length)) {
    throw new UnsupportedGraph(`${op}: ${prefix} arrays differ in length`);
  }
  for (let j = 0; j < tIds.length; j++) {
    const i = index.of(tIds[j]!, tNodes[j]!);
    const t = tTargets[j]!;
    if (t < 0 || t >= targets || p.mode[i] !== LEAF) throw new UnsupportedGraph(`${op}: ${prefix} id ${t}`);
    p.weights[i * targets + t] = p.weights[i * targets + t]! + tWeights[j]!;
    if (p.listed) p.listed[i * targets + t] = 1;
  }
  const roots: number[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    if (child[i] || seen.has(treeIds[i]!)) continue;
    seen.add(treeIds[i]!);
    roots.push(i);
  }
  let trees = 1;
  if (!index.ordered) {
    const ids = new Set<number>();
    for (let i = 0; i < n; i++) ids.add(treeIds[i]!);
    trees = ids.size;
  }
  if (n > 0 && seen.size !== trees) throw new UnsupportedGraph(`${op}: a tree has no root`);
  p.roots = Int32Array.from(roots);
  return p;
}

/**
 * Where node (tree, id) of an ensemble's node arrays is. Module-level classes rather than closures made per call
 * here and below: tsx names every closure it makes (a property definition each), and a forest prepares a hundred
 * ensembles.
 */
class NodeIndex {
  /** One tree numbered 0..n-1 in order (as skl2onnx writes each of an isolation forest's) needs no table. */
  readonly ordered: boolean;
  private readonly byKey: Map<number, number> | undefined;

  constructor(
    private readonly treeIds: ArrayLike<number>,
    nodeIds: ArrayLike<number>,
    private readonly op: string,
  ) {
    const n = treeIds.length;
    let ordered = true;
    for (let i = 0; i < n && ordered; i++) ordered = treeIds[i] === treeIds[0] && nodeIds[i] === i;
    this.ordered = ordered;
    if (!ordered) {
      this.byKey = new Map();
      for (let i = 0; i < n; i++) this.byKey.set(treeNodeKey(treeIds[i]!, nodeIds[i]!), i);
    }
  }

  /** The index of node `node` of tree `tree`; throws when there is none. */
  of(tree: number, node: number): number {
    const n = this.treeIds.length;
    const i = this.byKey
      ? this.byKey.get(treeNodeKey(tree, node))
      : tree === this.treeIds[0] && node >= 0 && node < n
        ? node
        : undefined;
    if (i === undefined) throw new UnsupportedGraph(`${this.op}: tree ${tree} has no node ${node}`);
    return i;
  }
}

/** (tree, node) as one number: tree ids stay far below 2^21 and node ids below 2^32. */
function treeNodeKey(tree: number, node: number): number {
  return tree * 4294967296 + node;
}

/** Typed arrays cut one after the other from one buffer. */
export class Carve {
  private offset = 0;

  constructor(private readonly buffer: ArrayBuffer) {}

  take<T>(make: new (b: ArrayBuffer, offset: number, length: number) => T, length: number, width: number): T {
    const view = new make(this.buffer, this.offset, length);
    this.offset += length * width;
    return view;
  }
}

/**
 * The code of each mode name into `codes`. A forest repeats a few names thousands of times, each repeat the same
 * string (the reader shares them): the names seen so far are compared first, by identity before content.
 */
function modeCodes(modes: readonly string[], codes: Uint8Array, op: string): void {
  const seen: string[] = [];
  const seenCodes: number[] = [];
  for (let i = 0; i < modes.length; i++) {
    const m = modes[i]!;
    let s = 0;
    while (s < seen.length && seen[s] !== m) s++;
    if (s === seen.length) {
      const k = MODES.indexOf(m);
      if (k < 0) throw new UnsupportedGraph(`${op}: mode ${m}`);
      seen.push(m);
      seenCodes.push(k);
    }
    codes[i] = seenCodes[s]!;
  }
}

/** Fails unless every split of `p` reads one of the `width` columns of its input. */
export function checkFeatures(p: Pick<TreeArrays, 'feature' | 'mode'>, width: number, op: string): void {
  for (let i = 0; i < p.feature.length; i++) {
    const f = p.feature[i]!;
    if (p.mode[i] !== LEAF && (f < 0 || f >= width)) throw new UnsupportedGraph(`${op}: feature id ${f}`);
  }
}

/** The node index of the leaf row `base` of `x` reaches from `root`. */
export function leafOf(p: Omit<TreeArrays, 'roots'>, root: number, x: ArrayLike<number>, base: number): number {
  const { feature, threshold, mode, trueChild, falseChild, missingTrue } = p;
  let i = root;
  while (mode[i] !== LEAF) {
    const v = x[base + feature[i]!]!;
    const t = threshold[i]!;
    const m = mode[i]!;
    const hit = m === 0 ? v <= t : m === 1 ? v < t : m === 2 ? v >= t : m === 3 ? v > t : m === 4 ? v === t : v !== t;
    i = hit || (missingTrue[i] && v !== v) ? trueChild[i]! : falseChild[i]!;
  }
  return i;
}

/**
 * `trees` with each tree's nodes renumbered depth first, a split's true child right after it, as scikit-learn
 * numbers them and as the compact layout (fused-trees.ts) needs; LightGBM's trees, through onnxmltools, are
 * numbered breadth first. Nodes no root reaches are left out. `trees` itself where it is in that order already, or
 * where a node is reached twice (trees sharing a subtree stay in the general layout).
 */
export function depthFirst(trees: TreeParams): TreeParams {
  const { mode, trueChild, falseChild, targets } = trees;
  const n = mode.length;
  let ordered = true;
  for (let i = 0; i < n && ordered; i++) {
    ordered = mode[i] === LEAF || (trueChild[i] === i + 1 && falseChild[i]! > i);
  }
  if (ordered) return trees;
  // old[j]: the node that comes j-th; at[i]: where node i comes (-1 until reached).
  const old: number[] = [];
  const at = new Int32Array(n).fill(-1);
  const roots = new Int32Array(trees.roots.length);
  const stack: number[] = [];
  for (let k = 0; k < roots.length; k++) {
    roots[k] = old.length;
    stack.push(trees.roots[k]!);
    while (stack.length > 0) {
      const i = stack.pop()!;
      if (at[i]! >= 0) return trees;
      at[i] = old.length;
      old.push(i);
      if (mode[i] !== LEAF) stack.push(falseChild[i]!, trueChild[i]!);
    }
  }
  const m = old.length;
  const threshold = trees.threshold instanceof Float64Array ? new Float64Array(m) : new Float32Array(m);
  const out: TreeParams = {
    ...trees,
    roots,
    feature: new Int32Array(m),
    threshold,
    mode: new Uint8Array(m),
    trueChild: new Int32Array(m),
    falseChild: new Int32Array(m),
    missingTrue: new Uint8Array(m),
    weights: new Float64Array(m * targets),
    ...(trees.listed ? { listed: new Uint8Array(m * targets) } : {}),
  };
  for (let j = 0; j < m; j++) {
    const i = old[j]!;
    out.feature[j] = trees.feature[i]!;
    out.threshold[j] = trees.threshold[i]!;
    out.mode[j] = mode[i]!;
    out.missingTrue[j] = trees.missingTrue[i]!;
    if (mode[i] !== LEAF) {
      out.trueChild[j] = at[trueChild[i]!]!;
      out.falseChild[j] = at[falseChild[i]!]!;
      continue;
    }
    for (let t = 0; t < targets; t++) {
      out.weights[j * targets + t] = trees.weights[i * targets + t]!;
      if (out.listed) out.listed[j * targets + t] = trees.listed![i * targets + t]!;
    }
  }
  return out;
}
