/**
 * The value each leaf of a tree adds to an isolation forest's sum: the element-wise nodes skl2onnx puts after each
 * one-tree ensemble (leaf id -> sample count and depth -> path length), run by the fast path's own operators on a
 * tensor of the tree's leaves, so that each leaf's value is exactly what the node-by-node program computes for a
 * row reaching it. Trees whose chains are the same nodes wired the same way (skl2onnx writes every tree's alike)
 * run together on one tensor of all their leaves: a forest's chains cost a few dozen operator calls instead of a
 * few thousand. A step whose parameters differ between the trees (each tree's own LabelEncoder tables) runs once
 * per tree on that tree's leaves.
 */
import type { ProgramNode } from './graph-program';
import type { OpDef } from './op-types';
import { alloc, resetScratch, size, UnsupportedGraph, type Tensor } from './tensor';
import { LEAF, type TreeParams } from './tree-ensemble';

/** A one-tree ensemble node and the element-wise nodes after it, in graph order. */
export interface TreeChain {
  node: ProgramNode;
  chain: ProgramNode[];
}

/** Each tree's value at each of its leaves (by node index; 0 elsewhere), the values' type and trailing shape. */
export interface LeafValues {
  type: 'float' | 'double';
  tail: number[];
  byNode: Float64Array[];
}

/**
 * The value of `values[k]` (a slot of tree k's chain, or its ensemble's output) at each leaf of `trees[k]`. Throws
 * UnsupportedGraph when a chain does not keep one number per leaf, or the trees give values of different types.
 */
export function leafValues(
  trees: readonly TreeChain[],
  values: readonly number[],
  constants: ReadonlyMap<number, Tensor>,
  ops: (n: ProgramNode) => OpDef,
): LeafValues {
  // Trees grouped by the shape of their chain: each tree is compared with the first tree of each group so far.
  const shapes: ChainShape[] = [];
  const groups: number[][] = [];
  trees.forEach((tree, k) => {
    const g = shapes.findIndex((other) => hasShape(other, tree, values[k]!));
    if (g >= 0) groups[g]!.push(k);
    else {
      shapes.push(chainShape(tree, values[k]!));
      groups.push([k]);
    }
  });
  const byNode = new Array<Float64Array>(trees.length);
  let out: Omit<LeafValues, 'byNode'> | undefined;
  groups.forEach((members, g) => {
    const group = members.map((k) => trees[k]!);
    const result = runChains(group, shapes[g]!, constants, ops);
    if (out && (result.type !== out.type || result.tail.join() !== out.tail.join())) {
      throw new UnsupportedGraph('TreeSum: trees of different value types or shapes');
    }
    out = { type: result.type, tail: result.tail };
    members.forEach((k, m) => (byNode[k] = result.byNode[m]!));
  });
  if (!out) throw new UnsupportedGraph('TreeSum: no trees');
  return { ...out, byNode };
}

/**
 * What a chain computes independently of its slots. A computed value's role is a positive number: 1 for the
 * ensemble's output, then one per output of each step in order; a constant's is -2 - its slot (the same constant
 * value), an absent input's -1. Two chains with the same steps and roles compute the same thing.
 */
interface ChainShape {
  chain: readonly ProgramNode[];
  /** Computed slot -> its role. */
  roles: Map<number, number>;
  /** Per step: its input count, its inputs' roles and its output count. */
  wiring: number[];
  /** The role of the value wanted. */
  value: number;
}

function chainShape(tree: TreeChain, value: number): ChainShape {
  const roles = new Map<number, number>([[tree.node.outputs[0]!, 1]]);
  const role = (s: number) => (s < 0 ? -1 : (roles.get(s) ?? -2 - s));
  const wiring: number[] = [];
  let next = 2;
  for (const n of tree.chain) {
    wiring.push(n.inputs.length);
    for (const s of n.inputs) wiring.push(role(s));
    wiring.push(n.outputs.length);
    for (const o of n.outputs) {
      if (o >= 0) roles.set(o, next);
      next++;
    }
  }
  return { chain: tree.chain, roles, wiring, value: role(value) };
}

/**
 * The role each slot has in the chain being matched by {@link hasShape} (0: none given yet), by slot: a forest
 * matches a hundred chains, each without a map of its own. Cleared after each match.
 */
let roleOf = new Int32Array(4096);

/** The role of slot `s` in the chain being matched, as {@link chainShape} numbers roles. */
function roleIn(s: number): number {
  if (s < 0) return -1;
  return s < roleOf.length && roleOf[s] !== 0 ? roleOf[s]! : -2 - s;
}

function giveRole(s: number, role: number): void {
  if (s >= roleOf.length) {
    const grown = new Int32Array(Math.max(2 * roleOf.length, s + 1));
    grown.set(roleOf);
    roleOf = grown;
  }
  roleOf[s] = role;
}

/** Whether `tree`'s chain, wanting slot `value`, is `shape`: the same steps with the same roles wired in. */
function hasShape(shape: ChainShape, tree: TreeChain, value: number): boolean {
  const { chain } = tree;
  const { wiring } = shape;
  if (chain.length !== shape.chain.length) return false;
  giveRole(tree.node.outputs[0]!, 1);
  let same = true;
  let w = 0;
  let next = 2;
  for (let j = 0; j < chain.length && same; j++) {
    const n = chain[j]!;
    const m = shape.chain[j]!;
    same = n.op === m.op && n.domain === m.domain && wiring[w++] === n.inputs.length;
    for (let i = 0; i < n.inputs.length && same; i++) same = wiring[w++] === roleIn(n.inputs[i]!);
    same &&= wiring[w++] === n.outputs.length;
    for (const o of n.outputs) {
      if (o >= 0) giveRole(o, next);
      next++;
    }
  }
  same &&= w === wiring.length && roleIn(value) === shape.value;
  roleOf[tree.node.outputs[0]!] = 0;
  for (const n of chain) for (const o of n.outputs) if (o >= 0) roleOf[o] = 0;
  return same;
}

/** The chains of `trees`, all of `shape`, run on one tensor of all their leaves. */
function runChains(
  trees: readonly TreeChain[],
  shape: ChainShape,
  constants: ReadonlyMap<number, Tensor>,
  ops: (n: ProgramNode) => OpDef,
): LeafValues {
  const leaves = trees.map(({ node }) => {
    const p = node.params as TreeParams;
    const ids: number[] = [];
    for (let i = 0; i < p.mode.length; i++) if (p.mode[i] === LEAF) ids.push(i);
    return ids;
  });
  const counts = leaves.map((ids) => ids.length);
  const total = counts.reduce((a, b) => a + b, 0);
  resetScratch();
  // The ensemble's output at each leaf, as TreeEnsembleRegressor computes it for a row that reaches it.
  const start: Tensor = { type: 'float', dims: [total, 1], data: new Float32Array(total) };
  let at = 0;
  trees.forEach(({ node }, m) => {
    const p = node.params as TreeParams;
    for (const i of leaves[m]!) start.data[at++] = p.weights[i]! + p.base[0]!;
  });
  const values = new Map<number, Tensor>([[1, start]]);
  trees[0]!.chain.forEach((n, j) => {
    const live = n.inputs.map((s) => shape.roles.has(s));
    const inputs = n.inputs.map((s) => (s < 0 ? undefined : (values.get(shape.roles.get(s)!) ?? constants.get(s))));
    // Element-wise steps on inputs of one shape (and scalar constants) keep one value per leaf; [N] against
    // [N, 1] would broadcast to [N, N], which no chain giving one number per leaf has.
    const dims = inputs.filter((x, i) => live[i] && x).map((x) => x!.dims.join());
    if (dims.some((d) => d !== dims[0])) throw new UnsupportedGraph('TreeSum: a tree chain mixes shapes');
    const nodes = trees.map((tree) => tree.chain[j]!);
    const outs = nodes.every((o) => sameParams(o.params, n.params))
      ? ops(n).run(n.params, inputs)
      : perTree(nodes, inputs, live, counts, ops);
    n.outputs.forEach((o, k) => {
      const out = outs[k];
      if (o < 0 || !out) return;
      if (out.dims[0] !== total || size(out.dims) !== total) {
        throw new UnsupportedGraph('TreeSum: a tree chain does not give one number per leaf');
      }
      values.set(shape.roles.get(o)!, out);
    });
  });
  const result = values.get(shape.value);
  if (!result || (result.type !== 'float' && result.type !== 'double')) {
    throw new UnsupportedGraph('TreeSum: a tree chain does not give one number per leaf');
  }
  at = 0;
  const byNode = trees.map(({ node }, m) => {
    const table = new Float64Array((node.params as TreeParams).mode.length);
    for (const i of leaves[m]!) table[i] = result.data[at++]!;
    return table;
  });
  return { type: result.type, tail: result.dims.slice(1), byNode };
}

/**
 * One step of several chains whose parameters differ: each tree's node run on its own leaves (its `live` inputs
 * cut to them, constants whole), the outputs put back together in the trees' order.
 */
function perTree(
  nodes: readonly ProgramNode[],
  inputs: readonly (Tensor | undefined)[],
  live: readonly boolean[],
  counts: readonly number[],
  ops: (n: ProgramNode) => OpDef,
): Tensor[] {
  let at = 0;
  const parts = nodes.map((n, m) => {
    const cut = inputs.map((x, i) => (x && live[i] ? leafRows(x, at, counts[m]!) : x));
    at += counts[m]!;
    // Copied out of scratch memory, which the next tree's step may reuse.
    return ops(n)
      .run(n.params, cut)
      .map((t) => ({ type: t.type, dims: t.dims, data: t.data.slice() }));
  });
  return parts[0]!.map((first, k) => {
    const inner = first.dims.slice(1).join();
    const out = alloc(first.type, [at, ...first.dims.slice(1)]);
    let offset = 0;
    parts.forEach((part, m) => {
      const t = part[k]!;
      if (t.type !== first.type || t.dims[0] !== counts[m] || t.dims.slice(1).join() !== inner) {
        throw new UnsupportedGraph('TreeSum: a tree chain does not give one number per leaf');
      }
      out.data.set(t.data, offset);
      offset += t.data.length;
    });
    return out;
  });
}

/** Rows `from` to `from + n` of `x` along its first axis, as a view. */
function leafRows(x: Tensor, from: number, n: number): Tensor {
  const inner = size(x.dims.slice(1));
  return { type: x.type, dims: [n, ...x.dims.slice(1)], data: x.data.subarray(from * inner, (from + n) * inner) };
}

/** Whether two prepared parameters are the same plain data (primitives, and arrays and plain objects of them). */
function sameParams(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => sameParams(v, b[i]));
  }
  if (Object.getPrototypeOf(a) !== Object.prototype || Object.getPrototypeOf(b) !== Object.prototype) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = Object.keys(x);
  return keys.length === Object.keys(y).length && keys.every((k) => Object.hasOwn(y, k) && sameParams(x[k], y[k]));
}
