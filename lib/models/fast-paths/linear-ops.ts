/**
 * ONNX linear-algebra and reduction operators (MatMul, Gemm, ReduceSum, ReduceMean, ReduceSumSquare, ReduceMax,
 * ReduceMin, ReduceL2, ReduceLogSumExp) and TopK as the fast path evaluates them: sums accumulate in double and round once
 * to the output type, which is within float32 tolerance of onnxruntime's float accumulation.
 */
import { attrReader, type OpDef } from './op-types';
import { intsFrom } from './shape-ops';
import { alloc, expectType, size, UnsupportedGraph, type Tensor } from './tensor';

const FLOATS = ['float', 'double'] as const;

/** A [..., M, K] x [K, N] (or [K]) product; a batched right-hand side is not supported. */
const matmul: OpDef<null> = {
  prepare: () => null,
  run(_, [a, b]) {
    expectType(a!, [...FLOATS], 'MatMul');
    if (a!.type !== b!.type) throw new UnsupportedGraph('MatMul: inputs of different types');
    if (b!.dims.length > 2 || a!.dims.length < 1) throw new UnsupportedGraph('MatMul: batched right-hand side');
    const vector = b!.dims.length === 1;
    const k = a!.dims[a!.dims.length - 1]!;
    const n = vector ? 1 : b!.dims[1]!;
    if (b!.dims[0] !== k) throw new UnsupportedGraph(`MatMul: [${a!.dims.join(',')}] x [${b!.dims.join(',')}]`);
    const m = size(a!.dims) / k;
    const lead = a!.dims.slice(0, -1);
    const out = alloc(a!.type, vector ? lead : [...lead, n]);
    const x = a!.data;
    const w = b!.data;
    const o = out.data;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += x[i * k + p]! * w[p * n + j]!;
        o[i * n + j] = s;
      }
    }
    return [out];
  },
};

export interface GemmParams {
  alpha: number;
  beta: number;
  transA: boolean;
  transB: boolean;
}

const gemm: OpDef<GemmParams> = {
  prepare(ctx) {
    const attr = attrReader(ctx);
    return {
      alpha: attr.float('alpha', 1),
      beta: attr.float('beta', 1),
      transA: attr.int('transA', 0) !== 0,
      transB: attr.int('transB', 0) !== 0,
    };
  },
  run({ alpha, beta, transA, transB }, [a, b, c]) {
    expectType(a!, [...FLOATS], 'Gemm');
    if (a!.dims.length !== 2 || b!.dims.length !== 2) throw new UnsupportedGraph('Gemm: inputs must be matrices');
    const [m, k] = transA ? [a!.dims[1]!, a!.dims[0]!] : [a!.dims[0]!, a!.dims[1]!];
    const [k2, n] = transB ? [b!.dims[1]!, b!.dims[0]!] : [b!.dims[0]!, b!.dims[1]!];
    if (k !== k2) throw new UnsupportedGraph('Gemm: inner dimensions differ');
    const out = alloc(a!.type, [m, n]);
    const x = a!.data;
    const w = b!.data;
    // C broadcasts to [M, N] from [], [N], [1, N], [M, 1] or [M, N].
    const cd = c ? c.dims : [];
    const cRows = cd.length === 2 ? cd[0]! : 1;
    const cCols = cd.length === 0 ? 1 : cd[cd.length - 1]!;
    if (c && ((cRows !== 1 && cRows !== m) || (cCols !== 1 && cCols !== n))) {
      throw new UnsupportedGraph('Gemm: C does not broadcast to the output');
    }
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          s += x[transA ? p * m + i : i * k + p]! * w[transB ? j * k + p : p * n + j]!;
        }
        let v = alpha * s;
        if (c && beta !== 0) v += beta * c.data[(cRows === 1 ? 0 : i) * cCols + (cCols === 1 ? 0 : j)]!;
        out.data[i * n + j] = v;
      }
    }
    return [out];
  },
};

export interface ReduceParams {
  axes: number[] | undefined;
  keepdims: boolean;
  noopWithEmptyAxes: boolean;
}

type Reduction = 'sum' | 'mean' | 'sumsquare' | 'max' | 'min' | 'l2' | 'logsumexp';

/** ReduceSum takes its axes as an input from opset 13, the others from opset 18. */
function reduce(kind: Reduction, axesInputFrom: number): OpDef<ReduceParams> {
  return {
    prepare(ctx) {
      const attr = attrReader(ctx);
      return {
        axes: ctx.opset >= axesInputFrom ? intsFrom(ctx, 1, 'axes') : intsFrom(ctx, ctx.inputCount, 'axes'),
        keepdims: attr.int('keepdims', 1) !== 0,
        noopWithEmptyAxes: attr.int('noop_with_empty_axes', 0) !== 0,
      };
    },
    run({ axes, keepdims, noopWithEmptyAxes }, [x]) {
      expectType(x!, [...FLOATS], 'Reduce');
      const r = x!.dims.length;
      if (axes === undefined || axes.length === 0) {
        if (noopWithEmptyAxes) return [x!];
        axes = x!.dims.map((_, i) => i);
      }
      const reduced = new Set(axes.map((a) => (a < 0 ? a + r : a)));
      const outDims = x!.dims.map((d, i) => (reduced.has(i) ? 1 : d));
      const out = alloc(x!.type, keepdims ? outDims : outDims.filter((_, i) => !reduced.has(i)));
      const n = size(out.dims);
      const acc = alloc('double', [n]).data.fill(kind === 'max' ? -Infinity : kind === 'min' ? Infinity : 0);
      // Output strides over the input's axes (0 on reduced axes).
      const strides = new Array<number>(r).fill(0);
      let stride = 1;
      for (let i = r - 1; i >= 0; i--) {
        if (!reduced.has(i)) {
          strides[i] = stride;
          stride *= x!.dims[i]!;
        }
      }
      // LogSumExp as onnxruntime computes it: log(Σ exp(v - m)) + m, m the largest finite value (0 when none), found
      // by a first pass over the same elements.
      const peak = kind === 'logsumexp' ? alloc('double', [n]).data.fill(-Infinity) : undefined;
      const data = x!.data;
      // The last axes reduced: each output sums a block of consecutive elements, in the same order as below.
      const lastAxes = [...reduced].every((i) => i >= r - reduced.size);
      if (lastAxes && !peak) reduceBlocks(kind, data, acc, n);
      for (let pass = peak ? 0 : lastAxes ? 2 : 1; pass < 2; pass++) {
        const counter = new Array<number>(r).fill(0);
        let at = 0;
        for (let k = 0; k < data.length; k++) {
          const v = data[k]!;
          if (pass === 0) {
            if (v - v === 0 && v > peak![at]!) peak![at] = v;
          } else if (kind === 'max') acc[at] = Math.max(acc[at]!, v);
          else if (kind === 'min') acc[at] = Math.min(acc[at]!, v);
          else if (peak) acc[at] = acc[at]! + Math.exp(v - peak[at]!);
          else acc[at] = acc[at]! + (kind === 'sumsquare' || kind === 'l2' ? v * v : v);
          for (let j = r - 1; j >= 0; j--) {
            counter[j]! += 1;
            at += strides[j]!;
            if (counter[j]! < x!.dims[j]!) break;
            at -= strides[j]! * x!.dims[j]!;
            counter[j] = 0;
          }
        }
        if (pass === 0) for (let i = 0; i < n; i++) if (peak![i] === -Infinity) peak![i] = 0;
      }
      const count = size(x!.dims) / Math.max(1, n);
      for (let i = 0; i < n; i++) {
        out.data[i] =
          kind === 'mean'
            ? acc[i]! / count
            : kind === 'l2'
              ? Math.sqrt(acc[i]!)
              : peak
                ? Math.log(acc[i]!) + peak[i]!
                : acc[i]!;
      }
      return [out];
    },
  };
}

/**
 * Reduces consecutive blocks of `data` into `acc` (one block per element of `acc`), element by element in order
 * as the general loop does, with one loop per reduction.
 */
function reduceBlocks(kind: Reduction, data: Tensor['data'], acc: Tensor['data'], n: number): void {
  const block = n === 0 ? 0 : data.length / n;
  for (let i = 0, at = 0; i < n; i++, at += block) {
    let a = acc[i]!;
    const end = at + block;
    if (kind === 'max') for (let k = at; k < end; k++) a = Math.max(a, data[k]!);
    else if (kind === 'min') for (let k = at; k < end; k++) a = Math.min(a, data[k]!);
    else if (kind === 'sumsquare' || kind === 'l2') for (let k = at; k < end; k++) a += data[k]! * data[k]!;
    else for (let k = at; k < end; k++) a += data[k]!;
    acc[i] = a;
  }
}

export interface TopKParams {
  axis: number;
  largest: boolean;
  /** The attribute k (before opset 10); from opset 10 k is the second input. */
  k: number | undefined;
}

/**
 * TopK: the k largest (or smallest) values along an axis and their int64 indices, sorted, an equal value's lower
 * index first, as onnxruntime orders them. Each line keeps its best k so far in a heap whose root is the worst of
 * them, so a value that does not beat it costs one comparison and one that does about log2(k) moves; the k are
 * sorted at the end. A LocalOutlierFactor's 20 neighbours in 60 lines of 240 (scratch loop, 2,000 calls, five
 * rounds): 82 to 94 µs a call, against 135 to 147 keeping the k in order as they come.
 */
const topK: OpDef<TopKParams> = {
  prepare(ctx) {
    const attr = attrReader(ctx);
    if (attr.int('sorted', 1) === 0) throw new UnsupportedGraph('TopK: unsorted (its order is not specified)');
    return {
      axis: attr.int('axis', -1),
      largest: attr.int('largest', 1) !== 0,
      k: ctx.opset < 10 ? attr.int('k') : undefined,
    };
  },
  run({ axis, largest, k: kAttr }, [x, kInput]) {
    expectType(x!, ['float', 'double', 'int64'], 'TopK');
    const dims = x!.dims;
    const a = axis < 0 ? axis + dims.length : axis;
    const n = dims[a]!;
    const kValue = kAttr ?? kInput?.data[0];
    if (kValue === undefined || !(kValue >= 0 && kValue <= n)) throw new UnsupportedGraph(`TopK: k ${kValue} of ${n}`);
    // A small integer, not the double an int64 tensor holds: it indexes every comparison below.
    const k = kValue | 0;
    const inner = size(dims.slice(a + 1));
    const lines = size(dims) / Math.max(1, n * inner);
    const outDims = dims.map((d, i) => (i === a ? k : d));
    const values = alloc(x!.type, outDims);
    const indices = alloc('int64', outDims);
    // Keeping the largest of sign * v finds the smallest with the same comparisons (negation is exact).
    const sign = largest ? 1 : -1;
    const best = new Float64Array(k);
    const at = new Int32Array(k);
    for (let line = 0; line < lines; line++) {
      for (let q = 0; q < inner; q++) {
        const base = line * n * inner + q;
        bestOfLine(x!.data, base, inner, n, k, sign, best, at);
        const out = line * k * inner + q;
        for (let j = 0; j < k; j++) {
          values.data[out + j * inner] = sign * best[j]!;
          indices.data[out + j * inner] = at[j]!;
        }
      }
    }
    return [values, indices];
  },
};

/**
 * The k largest of sign * data[base + i * stride] (i < n) into `best` and their i into `at`, largest first and an
 * equal value's lower i first. While it fills, and after, `best` is a heap whose root is the worst kept: the least
 * value, of equal values the greatest i. Each new i is greater than every kept one, so it enters only when its
 * value is strictly greater than the root's.
 */
export function bestOfLine(
  data: Tensor['data'],
  base: number,
  stride: number,
  n: number,
  k: number,
  sign: number,
  best: Float64Array,
  at: Int32Array,
): void {
  if (k === 0) return;
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const v = sign * data[base + i * stride]!;
    let p: number;
    if (kept < k) {
      // Up from the new leaf past every parent better than it: an equal one is (its i is lower).
      p = kept++;
      while (p > 0) {
        const up = (p - 1) >> 1;
        if (!(v <= best[up]!)) break;
        best[p] = best[up]!;
        at[p] = at[up]!;
        p = up;
      }
    } else {
      if (!(v > best[0]!)) continue;
      // Down from the root, which it replaces, past every child worse than it.
      p = 0;
      for (;;) {
        let c = 2 * p + 1;
        if (c >= k) break;
        const o = c + 1;
        if (o < k && (best[o]! < best[c]! || (best[o] === best[c] && at[o]! > at[c]!))) c = o;
        if (!(best[c]! < v)) break;
        best[p] = best[c]!;
        at[p] = at[c]!;
        p = c;
      }
    }
    best[p] = v;
    at[p] = i;
  }
  // Best first: greater value, then lower i.
  for (let j = 1; j < k; j++) {
    const v = best[j]!;
    const i = at[j]!;
    let t = j;
    for (; t > 0 && (best[t - 1]! < v || (best[t - 1] === v && at[t - 1]! > i)); t--) {
      best[t] = best[t - 1]!;
      at[t] = at[t - 1]!;
    }
    best[t] = v;
    at[t] = i;
  }
}

/** The linear-algebra and reduction operators of the default (ai.onnx) domain, by name. */
export const linearOps: Record<string, OpDef> = {
  MatMul: matmul,
  Gemm: gemm,
  ReduceSum: reduce('sum', 13),
  ReduceMean: reduce('mean', 18),
  ReduceSumSquare: reduce('sumsquare', 18),
  ReduceMax: reduce('max', 18),
  ReduceMin: reduce('min', 18),
  ReduceL2: reduce('l2', 18),
  ReduceLogSumExp: reduce('logsumexp', 18),
  TopK: topK,
};
