/**
 * Fuses the dense layers of an MLP, an autoencoder or a linear projection (PCA's transform and inverse): a Gemm,
 * or a MatMul and the Add of a constant bias, by constant weights, and the Tanh or Relu after it, become one node
 * ({@link dense}) that computes a row's outputs in one pass, in WebAssembly SIMD for float32 rows (simd-dense.ts)
 * and in a scalar loop otherwise. Each output is what the graph's nodes compute one by one, bit for bit (the Tanh
 * within one float32 unit, see simd-dense.ts), without the product and the activation's tensors in between.
 * A Gemm with alpha or beta other than 1 (beta 0 is no bias), a transposed input, or a bias per row is left as it
 * is, as is a MatMul by a computed right-hand side.
 */
import type { GemmParams } from './linear-ops';
import type { GraphProgram, ProgramNode } from './graph-program';
import type { OpDef } from './op-types';
import { paddedWidth, simdDense, type DenseLayer } from './simd-dense';
import { alloc, expectType, size, UnsupportedGraph, type DType, type Tensor } from './tensor';

/** The fused layer: what {@link simdDense} takes, and what the nodes it replaces check of their input. */
export interface DenseParams extends DenseLayer {
  /** The node whose product it computes: a Gemm takes matrices only, a MatMul an input of its weights' type. */
  origin: 'Gemm' | 'MatMul';
  weightsType: DType;
  /** The bias's rank: a [1, n] bias makes a MatMul of a vector [1, n]. */
  biasRank: number;
}

/** [..., k] (a Gemm: [m, k]) -> [..., n]: the layer's outputs, of the input's type. */
export const dense: OpDef<DenseParams> = {
  prepare() {
    throw new UnsupportedGraph('Dense is made by fuseDense, not read from a graph');
  },
  run(params, [x]) {
    const { origin, k, n } = params;
    expectType(x!, FLOATS, origin);
    const dims = x!.dims;
    if (origin === 'Gemm' && dims.length !== 2) throw new UnsupportedGraph('Gemm: inputs must be matrices');
    if (origin === 'MatMul' && x!.type !== params.weightsType) {
      throw new UnsupportedGraph('MatMul: inputs of different types');
    }
    if (dims.length < 1 || dims[dims.length - 1] !== k) {
      throw new UnsupportedGraph(`${origin}: [${dims.join(',')}] by weights of ${k} inputs`);
    }
    const m = size(dims) / k;
    const out = alloc(x!.type, outputDims(dims, n, params.biasRank));
    if (x!.type !== 'float' || !simdDense(x!.data as Float32Array, m, params, out.data as Float32Array)) {
      scalarDense(x!.data, m, params, out.data, x!.type === 'float');
    }
    return [out];
  },
};

const FLOATS: readonly DType[] = ['float', 'double'];

/** The output's shape: the input's with n outputs for its k (a vector by a [1, n] bias: [1, n]). */
function outputDims(dims: readonly number[], n: number, biasRank: number): number[] {
  if (dims.length === 2) return [dims[0]!, n];
  return dims.length === 1 && biasRank === 2 ? [1, n] : [...dims.slice(0, -1), n];
}

/** The layer as its nodes compute it, each result stored in the input's type (float32 where `float`). */
export function scalarDense(x: Tensor['data'], m: number, layer: DenseLayer, out: Tensor['data'], float: boolean) {
  const { k, n, w, b, roundFirst, activation } = layer;
  const np = paddedWidth(n);
  const round = float ? Math.fround : (v: number) => v;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += x[i * k + p]! * w[p * np + j]!;
      if (roundFirst) s = round(s);
      if (b) s += b[j]!;
      const g = round(s);
      out[i * n + j] = activation === 'tanh' ? Math.tanh(g) : activation === 'relu' ? (g > 0 ? g : 0) : g;
    }
  }
}

/** Whether `t` adds the same bias to every row of n outputs: a scalar, [n] or [1, n]. */
function isRowBias(t: Tensor, n: number): boolean {
  const count = size(t.dims);
  if (count === 1) return t.dims.every((d) => d === 1);
  return (
    count === n && t.dims[t.dims.length - 1] === n && (t.dims.length === 1 || (t.dims.length === 2 && t.dims[0] === 1))
  );
}

/** The weights [k, n] (or [n, k], `transposed`) input by input, each input's n padded to an even count. */
function weightsOf(t: Tensor, transposed: boolean): { k: number; n: number; w: Float64Array } {
  const [rows, cols] = t.dims as [number, number];
  const [k, n] = transposed ? [cols, rows] : [rows, cols];
  const np = paddedWidth(n);
  const w = new Float64Array(k * np);
  for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) w[p * np + j] = t.data[transposed ? j * k + p : p * n + j]!;
  return { k, n, w };
}

/** A bias of n outputs (see {@link isRowBias}), padded as the weights are. */
function biasOf(t: Tensor, n: number): Float64Array {
  const b = new Float64Array(paddedWidth(n));
  for (let j = 0; j < n; j++) b[j] = t.data[t.data.length === 1 ? 0 : j]!;
  return b;
}

/** `program` with each dense layer fused into one {@link dense} node, or `program` itself when it has none. */
export function fuseDense(program: GraphProgram): GraphProgram {
  const uses = new Int32Array(program.slots);
  const reader = new Map<number, ProgramNode>();
  for (const node of program.nodes) {
    for (const s of node.inputs) {
      if (s < 0) continue;
      uses[s]!++;
      reader.set(s, node);
    }
  }
  uses[program.output]!++;
  const constants = new Map(program.constants);
  /** The node that alone reads `slot` (which is not the program's output), where it is one of `ops`. */
  const onlyUse = (slot: number | undefined, ops: readonly string[]) => {
    if (slot === undefined || slot < 0 || uses[slot] !== 1) return undefined;
    const node = reader.get(slot);
    return node && node.domain === 'ai.onnx' && ops.includes(node.op) ? node : undefined;
  };
  const removed = new Set<ProgramNode>();
  const replaced = new Map<ProgramNode, ProgramNode>();
  for (const node of program.nodes) {
    if (node.domain !== 'ai.onnx' || (node.op !== 'Gemm' && node.op !== 'MatMul')) continue;
    const weights = constants.get(node.inputs[1] ?? -1);
    if (!weights || weights.dims.length !== 2 || (weights.type !== 'float' && weights.type !== 'double')) continue;
    let layer: Omit<DenseParams, 'activation'>;
    let last = node;
    if (node.op === 'Gemm') {
      const { alpha, beta, transA, transB } = node.params as GemmParams;
      const cSlot = node.inputs[2] ?? -1;
      const c = cSlot >= 0 ? constants.get(cSlot) : undefined;
      if (transA || alpha !== 1 || (cSlot >= 0 && !c)) continue;
      const { k, n, w } = weightsOf(weights, transB);
      const bias = c && beta !== 0 ? c : undefined;
      if (bias && (beta !== 1 || !isRowBias(bias, n))) continue;
      layer = {
        origin: 'Gemm',
        weightsType: weights.type,
        k,
        n,
        w,
        b: bias && biasOf(bias, n),
        biasRank: 0,
        roundFirst: false,
      };
    } else {
      const { k, n, w } = weightsOf(weights, false);
      const add = onlyUse(node.outputs[0], ['Add']);
      const other = add && add.inputs.length === 2 ? add.inputs.find((s) => s !== node.outputs[0]) : undefined;
      const bias = other === undefined ? undefined : constants.get(other);
      const fused = bias && bias.type === weights.type && isRowBias(bias, n) ? bias : undefined;
      if (fused) {
        removed.add(add!);
        last = add!;
      }
      layer = {
        origin: 'MatMul',
        weightsType: weights.type,
        k,
        n,
        w,
        b: fused && biasOf(fused, n),
        biasRank: fused ? fused.dims.length : 0,
        roundFirst: fused !== undefined,
      };
    }
    const act = onlyUse(last.outputs[0], ['Tanh', 'Relu']);
    if (act) removed.add(act);
    const params: DenseParams = { ...layer, activation: act ? (act.op === 'Tanh' ? 'tanh' : 'relu') : undefined };
    const outputs = (act ?? last).outputs.slice(0, 1);
    replaced.set(node, { domain: 'fused', op: 'Dense', params, inputs: [node.inputs[0]!], outputs });
  }
  if (replaced.size === 0) return program;
  const nodes = program.nodes.filter((n) => !removed.has(n)).map((n) => replaced.get(n) ?? n);
  const used = new Set(nodes.flatMap((n) => n.inputs));
  return { ...program, constants: program.constants.filter(([slot]) => used.has(slot)), nodes };
}
