/**
 * Fuses the graph skl2onnx writes for an IsolationForest (per tree: a Gather of the input's columns, a one-tree
 * TreeEnsembleRegressor whose leaf value is the leaf's id, and about 25 element-wise nodes that turn the leaf into
 * the tree's path length; then one Sum over the trees and a few element-wise nodes) into one loop over all trees.
 *
 * Recognised by structure, not by names: a Sum whose every input depends on exactly one one-tree ensemble through
 * element-wise nodes and scalar constants. The trees may read the input through a row-wise prefix (a pipeline's
 * scaler: a Scaler node, or Cast, Mul, Add, ... with constants of one row at most), which is kept before the fused
 * node. Each tree's chain depends on nothing but the leaf a row reaches, so it
 * is evaluated once per leaf, at compile time, by the same operators the generic path runs (tree-chains.ts: the
 * chain's value per leaf, exact as onnxruntime computes it); a row then walks each tree to its leaf and adds the leaf's value,
 * in the Sum's order and rounding. What follows the Sum keeps its generic nodes. Any other graph is unchanged.
 */
import type { GraphProgram, ProgramNode } from './graph-program';
import type { OpDef } from './op-types';
import type { ReshapeParams } from './shape-ops';
import { alloc, size, UnsupportedGraph, type Tensor } from './tensor';
import { leafValues, type TreeChain } from './tree-chains';
import { LEAF, leafOf, type TreeArrays, type TreeParams } from './tree-ensemble';

/** The element-wise operators a tree's chain and the tail after the Sum may use (row by row, no mixing). */
const ELEMENTWISE = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Neg', 'Abs', 'Log', 'Exp', 'Sqrt', 'Reciprocal',
  'Equal', 'Greater', 'GreaterOrEqual', 'Less', 'LessOrEqual', 'Cast', 'LabelEncoder', 'Identity',
]); // prettier-ignore

/**
 * Every tree of the sum in flat arrays, each tree's leaves holding their value in the sum: `feature` is the input
 * column a split reads (the Gather's columns already applied), and a leaf's children are -1.
 */
export interface GeneralTreeSum extends TreeArrays {
  layout: 'general';
  /** At a leaf: the tree's value in the sum. */
  value: Float32Array | Float64Array;
}

/**
 * The trees of a sum whose every split is `x <= threshold` with NaN going false, and whose true child follows its
 * split (the depth-first order scikit-learn numbers nodes in, and skl2onnx keeps): 7 bytes a node in float32,
 * against 22 in {@link GeneralTreeSum}, so that three times as many forests stay compiled in a cache's bytes.
 */
export interface CompactTreeSum {
  layout: 'compact';
  roots: Int32Array;
  /** At a split: the input column it reads. */
  column: Uint8Array | Uint16Array | Int32Array;
  /** At a split: its threshold; at a leaf: the tree's value in the sum (double when either is). */
  split: Float32Array | Float64Array;
  /** At a split: how many nodes ahead its false child is; 0 at a leaf. */
  skip: Uint16Array | Uint32Array;
}

/** The fused trees of a sum and what the evaluator needs besides them. */
export type TreeSumParams = (GeneralTreeSum | CompactTreeSum) & {
  /** The sum's values are float32 (rounded as the Sum rounds) rather than double. */
  float: boolean;
  /** Input columns the splits read: the input must be at least this wide. */
  width: number;
  /** The sum's shape after its leading (row) axis. */
  tail: number[];
};

/** The fused loop: per row, each tree's leaf value summed in the Sum's order, rounded as the Sum rounds. */
export const treeSum: OpDef<TreeSumParams> = {
  prepare() {
    throw new UnsupportedGraph('TreeSum is made by fuseTreeSums, not read from a graph');
  },
  run(p, [x]) {
    const [rows, f] = x!.dims as [number, number];
    if (x!.dims.length !== 2 || f < p.width) throw new UnsupportedGraph('TreeSum: input narrower than its splits');
    const out = alloc(p.float ? 'float' : 'double', [rows, ...p.tail]);
    if (p.layout === 'compact') compactSums(p, x!.data, rows, f, out.data);
    else generalSums(p, x!.data, rows, f, out.data);
    return [out];
  },
};

/**
 * Each row's sum over the compact trees, in the Sum's order, into `out` (scratch memory: every row written, a
 * fusion has at least one tree). Tree by tree over the rows, each row's sum kept in `out` as it grows, so a float
 * sum is rounded to float32 at each step by the output's own type, as the Sum rounds; a tree's nodes stay in cache
 * for every row, 22 % faster than row by row for 60 rows of 100 trees. With `classes` (a classifier whose trees each
 * weigh one class), tree k adds to column `classes.of[k]` of `classes.count` per row instead: a column no tree adds
 * to is left unwritten.
 */
export function compactSums(
  p: CompactTreeSum,
  xs: Tensor['data'],
  rows: number,
  f: number,
  out: Tensor['data'],
  classes?: TreeClasses,
) {
  const { roots, column, split, skip } = p;
  const width = classes ? classes.count : 1;
  for (let k = 0; k < roots.length; k++) {
    const root = roots[k]!;
    const first = classes ? classes.first[k] === 1 : k === 0;
    for (let r = 0, base = 0, o = classes ? classes.of[k]! : 0; r < rows; r++, base += f, o += width) {
      let i = root;
      for (let s = skip[i]!; s !== 0; s = skip[i]!) i += xs[base + column[i]!]! <= split[i]! ? 1 : s;
      const value = split[i]!;
      out[o] = first ? value : out[o]! + value;
    }
  }
}

/**
 * {@link compactSums} for trees whose every leaf weighs each of `width` classes (scikit-learn's forests of three
 * classes or more): a leaf holds the row of its weights in `weights` ([leaves, width]), and each row's `width` sums
 * grow in `out` ([rows, width]) tree by tree, rounded by the output's type as they grow.
 */
export function compactRowSums(
  p: CompactTreeSum,
  xs: Tensor['data'],
  rows: number,
  f: number,
  out: Tensor['data'],
  weights: Float32Array | Float64Array,
  width: number,
) {
  const { roots, column, split, skip } = p;
  for (let k = 0; k < roots.length; k++) {
    const root = roots[k]!;
    for (let r = 0, base = 0, o = 0; r < rows; r++, base += f, o += width) {
      let i = root;
      for (let s = skip[i]!; s !== 0; s = skip[i]!) i += xs[base + column[i]!]! <= split[i]! ? 1 : s;
      const w = split[i]! * width;
      if (k === 0) for (let c = 0; c < width; c++) out[o + c] = weights[w + c]!;
      else for (let c = 0; c < width; c++) out[o + c] = out[o + c]! + weights[w + c]!;
    }
  }
}

/** The class each compact tree of a classifier weighs, in the order of its roots, and which tree comes first for its class. */
export interface TreeClasses {
  of: Int32Array;
  /** 1 for the first tree of its class. */
  first: Uint8Array;
  count: number;
}

/** {@link compactSums} for the general layout. */
function generalSums(
  p: GeneralTreeSum & TreeSumParams,
  xs: Tensor['data'],
  rows: number,
  f: number,
  out: Tensor['data'],
) {
  const { roots, float } = p;
  for (let r = 0; r < rows; r++) {
    const base = r * f;
    let acc = 0;
    for (let k = 0; k < roots.length; k++) {
      const value = p.value[leafOf(p, roots[k]!, xs, base)]!;
      acc = k === 0 ? value : float ? Math.fround(acc + value) : acc + value;
    }
    out[r] = acc;
  }
}

type Label =
  | { kind: 'input' | 'const' | 'sum' | 'tail' | 'replaced' }
  | { kind: 'gather'; columns: number[] }
  | { kind: 'tree'; t: number };

/** Operators a row-wise prefix before the trees may use (each row's values from that row and constants alone). */
const PREFIX = new Set(['Scaler', 'Cast', 'Identity', 'Add', 'Sub', 'Mul', 'Div']);

interface Tree extends TreeChain {
  columns: number[] | undefined;
}

/**
 * `program` with its tree sum fused into one node ({@link treeSum}) and its tail after the Sum kept, or
 * `program` itself when it has no such sum. `ops` are the generic operators, which evaluate each tree's chain
 * per leaf.
 */
export function fuseTreeSums(program: GraphProgram, ops: (n: ProgramNode) => OpDef): GraphProgram {
  // By slot: what each value is to the fusion.
  const labels = new Array<Label | undefined>(program.slots);
  const CONST: Label = { kind: 'const' };
  const constants = new Map(program.constants);
  for (const [slot] of program.constants) labels[slot] = CONST;
  labels[program.input] = { kind: 'input' };
  const trees: Tree[] = [];
  let sum: ProgramNode | undefined;
  const tail: ProgramNode[] = [];
  // The nodes between the input and the trees, and the value the trees read (the input, or the prefix's output).
  const prefix: ProgramNode[] = [];
  let source = program.input;
  for (const n of program.nodes) {
    // Without an array per node (a forest has 2,700): the inputs that are not constants, how many, the first one's
    // label and whether they are all one value (one tree's, or the sum's); and whether every constant broadcasts
    // as a scalar, which keeps a chain row by row (a Reshape's second input is its shape).
    let live = 0;
    let first: Label | undefined;
    let same = true;
    let scalarConstants = true;
    for (let i = 0; i < n.inputs.length; i++) {
      const s = n.inputs[i]!;
      const l = labels[s];
      if (l?.kind === 'const') {
        if (!(n.op === 'Reshape' && i === 1) && size(constants.get(s)!.dims) !== 1) scalarConstants = false;
      } else if (live++ === 0) first = l;
      else if (l?.kind !== first?.kind || (l?.kind === 'tree' && first?.kind === 'tree' && l.t !== first.t)) {
        same = false;
      }
    }
    const in0 = labels[n.inputs[0]!];
    if (trees.length === 0 && isPrefixStep(n, source, labels, constants)) {
      prefix.push(n);
      labels[source] = { kind: 'replaced' };
      source = n.outputs[0]!;
      labels[source] = { kind: 'input' };
      continue;
    }
    let label: Label | undefined;
    if (
      n.op === 'Gather' &&
      in0?.kind === 'input' &&
      labels[n.inputs[1]!]?.kind === 'const' &&
      (n.params === 1 || n.params === -1)
    ) {
      const indices = constants.get(n.inputs[1]!)!;
      const columns = Array.from(indices.data);
      const ok = indices.dims.length === 1 && columns.every((c) => Number.isInteger(c) && c >= 0);
      if (ok) label = { kind: 'gather', columns };
    } else if (n.op === 'TreeEnsembleRegressor' && (in0?.kind === 'gather' || in0?.kind === 'input')) {
      const p = n.params as TreeParams;
      if (p.roots.length === 1 && p.targets === 1) {
        trees.push({ node: n, columns: in0.kind === 'gather' ? in0.columns : undefined, chain: [] });
        label = { kind: 'tree', t: trees.length - 1 };
      }
    } else if (n.op === 'Sum' && !sum && live === n.inputs.length && live === trees.length) {
      const seen = new Set(n.inputs.map((s) => labels[s]).map((l) => (l?.kind === 'tree' ? l.t : -1)));
      if (!seen.has(-1) && seen.size === trees.length) {
        sum = n;
        label = { kind: 'sum' };
      }
    } else if (ELEMENTWISE.has(n.op) || (n.op === 'Reshape' && isColumn((n.params as ReshapeParams).shape))) {
      if (first && same && scalarConstants) {
        if (first.kind === 'tree') {
          trees[first.t]!.chain.push(n);
          label = first;
        } else if (first.kind === 'sum' || first.kind === 'tail') {
          tail.push(n);
          label = { kind: 'tail' };
        }
      }
    }
    if (!label) return program;
    for (const o of n.outputs) if (o >= 0) labels[o] = label;
  }
  const end = labels[program.output]?.kind;
  if (!sum || trees.length === 0 || (end !== 'sum' && end !== 'tail')) return program;
  const fused: ProgramNode = {
    domain: 'fused',
    op: 'TreeSum',
    params: treeSumParams(sum, trees, labels, constants, ops),
    inputs: [source],
    outputs: [sum.outputs[0]!],
  };
  const used = new Set([...prefix, ...tail].flatMap((n) => n.inputs));
  return {
    ...program,
    constants: program.constants.filter(([slot]) => used.has(slot)),
    nodes: [...prefix, fused, ...tail],
  };
}

/** Whether a Reshape's target shape is `[-1, 1]` (one value per row). */
function isColumn(shape: readonly number[] | undefined): boolean {
  return shape !== undefined && shape.length === 2 && shape[0] === -1 && shape[1] === 1;
}

/**
 * Whether `n` is a row-wise step from `source` (the input or the prefix so far) with one output: a {@link PREFIX}
 * operator whose other inputs are constants of at most one row (`[k]` or `[1, k]`), so each row of its output depends on
 * that row alone. Whether the shapes then fit is what the compiler's trial run checks.
 */
function isPrefixStep(
  n: ProgramNode,
  source: number,
  labels: readonly (Label | undefined)[],
  constants: ReadonlyMap<number, Tensor>,
): boolean {
  if (!PREFIX.has(n.op) || n.outputs.length !== 1 || n.outputs[0]! < 0) return false;
  if (n.op === 'Scaler' ? n.domain !== 'ai.onnx.ml' : n.domain !== 'ai.onnx') return false;
  return n.inputs.every((s, i) => {
    if (i === 0) return s === source;
    const c = labels[s]?.kind === 'const' ? constants.get(s) : undefined;
    return c !== undefined && c.dims.length <= 2 && (c.dims.length < 2 || c.dims[0] === 1);
  });
}

/** The flat trees in the Sum's order, each leaf holding its chain's value, computed by the generic operators. */
function treeSumParams(
  sum: ProgramNode,
  trees: Tree[],
  labels: readonly (Label | undefined)[],
  constants: Map<number, Tensor>,
  ops: (n: ProgramNode) => OpDef,
): TreeSumParams {
  const order = sum.inputs.map((s) => (labels[s] as { t: number }).t);
  const { type, tail, byNode } = leafValues(
    order.map((t) => trees[t]!),
    sum.inputs,
    constants,
    ops,
  );
  if (size(tail) !== 1) throw new UnsupportedGraph('TreeSum: a tree chain does not give one number per leaf');
  const params = order.map((t) => trees[t]!.node.params as TreeParams);
  const columns = order.map((t) => trees[t]!.columns);
  // First the input columns the splits read and whether every tree fits the compact layout; then the trees are
  // laid out once, in the layout they take.
  const { width, farthest } = treeShape(params, columns);
  const float = type === 'float';
  const laid =
    farthest !== undefined
      ? compactTrees(params, columns, byNode, width, farthest, !float)
      : generalTrees(params, columns, byNode, float);
  return { ...laid, float, width, tail };
}

/**
 * How wide an input the splits of `params` read (through each one's Gather `columns`), and, where every tree fits
 * the compact layout, how many nodes ahead its farthest false child is (undefined where one does not).
 */
export function treeShape(
  params: readonly TreeParams[],
  columns: readonly (number[] | undefined)[],
): { width: number; farthest: number | undefined } {
  let width = 0;
  let farthest: number | undefined = 0;
  params.forEach((p, k) => {
    for (let i = 0; i < p.mode.length; i++) {
      if (p.mode[i] === LEAF) continue;
      const column = columnOf(columns[k], p.feature[i]!);
      if (column >= width) width = column + 1;
      if (p.mode[i] !== 0 || p.missingTrue[i] || p.trueChild[i] !== i + 1 || p.falseChild[i]! <= i) {
        farthest = undefined;
      } else if (farthest !== undefined) farthest = Math.max(farthest, p.falseChild[i]! - i);
    }
  });
  return { width, farthest };
}

/** The input column split feature `f` of a tree reads: through its Gather's `columns`, if any. */
function columnOf(columns: readonly number[] | undefined, f: number): number {
  const column = columns ? columns[f] : f;
  if (column === undefined || f < 0) throw new UnsupportedGraph(`TreeSum: feature ${f} outside the Gather`);
  return column;
}

/** The trees one after the other in flat arrays, each leaf holding its value (`values[k]`, by tree k's node). */
function generalTrees(
  params: readonly TreeParams[],
  columns: readonly (number[] | undefined)[],
  values: readonly Float64Array[],
  float: boolean,
): GeneralTreeSum {
  const total = params.reduce((n, p) => n + p.mode.length, 0);
  const double = params.some((p) => p.threshold instanceof Float64Array);
  const out: GeneralTreeSum = {
    layout: 'general',
    roots: new Int32Array(params.length),
    feature: new Int32Array(total),
    threshold: double ? new Float64Array(total) : new Float32Array(total),
    mode: new Uint8Array(total),
    trueChild: new Int32Array(total),
    falseChild: new Int32Array(total),
    missingTrue: new Uint8Array(total),
    value: float ? new Float32Array(total) : new Float64Array(total),
  };
  let at = 0;
  params.forEach((p, k) => {
    out.roots[k] = at + p.roots[0]!;
    out.mode.set(p.mode, at);
    out.threshold.set(p.threshold, at);
    out.missingTrue.set(p.missingTrue, at);
    for (let i = 0; i < p.mode.length; i++) {
      const j = at + i;
      if (p.mode[i] === LEAF) {
        out.trueChild[j] = -1;
        out.falseChild[j] = -1;
        out.value[j] = values[k]![i]!;
        continue;
      }
      out.trueChild[j] = at + p.trueChild[i]!;
      out.falseChild[j] = at + p.falseChild[i]!;
      out.feature[j] = columnOf(columns[k], p.feature[i]!);
    }
    at += p.mode.length;
  });
  return out;
}

/**
 * The trees in the compact layout: every split's true child follows it and its false child comes later, at most
 * `farthest` nodes ahead; splits read columns below `width`. Values in double when `doubleValues` (or any
 * threshold is a double). Every root of each ensemble, in order.
 */
export function compactTrees(
  params: readonly TreeParams[],
  columns: readonly (number[] | undefined)[],
  values: readonly Float64Array[],
  width: number,
  farthest: number,
  doubleValues: boolean,
): CompactTreeSum {
  const n = params.reduce((total, p) => total + p.mode.length, 0);
  const roots = new Int32Array(params.reduce((total, p) => total + p.roots.length, 0));
  let r = 0;
  const column = width <= 2 ** 8 ? new Uint8Array(n) : width <= 2 ** 16 ? new Uint16Array(n) : new Int32Array(n);
  const double = doubleValues || params.some((p) => p.threshold instanceof Float64Array);
  // Float32 thresholds and values are exact in a Float64Array, and float32 inputs compare with them as in float32.
  const split = double ? new Float64Array(n) : new Float32Array(n);
  const skip = farthest < 2 ** 16 ? new Uint16Array(n) : new Uint32Array(n);
  let at = 0;
  params.forEach((p, k) => {
    for (const root of p.roots) roots[r++] = at + root;
    for (let i = 0; i < p.mode.length; i++) {
      const j = at + i;
      if (p.mode[i] === LEAF) {
        split[j] = values[k]![i]!;
        continue;
      }
      column[j] = columnOf(columns[k], p.feature[i]!);
      split[j] = p.threshold[i]!;
      skip[j] = p.falseChild[i]! - i;
    }
    at += p.mode.length;
  });
  return { layout: 'compact', roots, column, split, skip };
}
