/**
 * ONNX linear-algebra and reduction operators (MatMul, Gemm, ReduceSum, ReduceMean, ReduceSumSquare, ReduceMax,
 * ReduceMin, ReduceL2, ReduceLogSumExp) as the fast path evaluates them: sums accumulate in double and round once
 * to the output type, which is within float32 tolerance of onnxruntime's float accumulation.
 */
import { attrReader, type OpDef } from './op-types';
import { intsFrom } from './shape-ops';
import { alloc, expectType, size, UnsupportedGraph } from './tensor';

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

interface GemmParams {
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

interface ReduceParams {
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
      for (let pass = peak ? 0 : 1; pass < 2; pass++) {
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
};
