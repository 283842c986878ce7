/**
 * Element-wise ONNX operators (arithmetic, comparisons, activations, Cast, Where) with numpy broadcasting. Each
 * result is computed in double and stored in the output's typed array, so a float result is the correctly
 * rounded float32 of one operation, as onnxruntime computes it.
 */
import { attrReader, type OpDef } from './op-types';
import { alloc, broadcastDims, broadcastIndex, expectType, UnsupportedGraph, type DType, type Tensor } from './tensor';

const NUMERIC: DType[] = ['float', 'double', 'int64'];
const FLOATS: DType[] = ['float', 'double'];

type Data = Tensor['data'];

/**
 * An operator's loop over whole arrays, written out per operator: one loop shared by every operator and calling
 * its scalar function per element cannot have the arithmetic inlined (V8 shares the loop's type feedback between
 * them) and runs about six times slower, which a forest's compile (its per-leaf chains) and every small model's
 * element-wise nodes pay.
 */
type UnaryLoop = (a: Data, o: Data, n: number) => void;

function unary(fn: (x: number) => number, types: DType[] = FLOATS, loop?: UnaryLoop): OpDef<string> {
  return {
    prepare: (ctx) => ctx.op,
    run(op, [x]) {
      expectType(x!, types, op);
      const out = alloc(x!.type, x!.dims);
      const a = x!.data;
      const o = out.data;
      if (loop) loop(a, o, a.length);
      else for (let i = 0; i < a.length; i++) o[i] = fn(a[i]!);
      return [out];
    },
  };
}

/**
 * A binary operator's loops (see {@link UnaryLoop}): both operands whole, a scalar right, a scalar left, and
 * optionally a row of `m` right (or left) repeated against the other operand whole.
 */
interface BinaryLoops {
  both(x: Data, y: Data, o: Data, n: number): void;
  right(x: Data, c: number, o: Data, n: number): void;
  left(c: number, y: Data, o: Data, n: number): void;
  rowRight?(x: Data, y: Data, o: Data, n: number, m: number): void;
  rowLeft?(x: Data, y: Data, o: Data, n: number, m: number): void;
}

function binary(
  fn: (a: number, b: number) => number,
  result: 'same' | 'bool',
  types: DType[] = NUMERIC,
  loops?: BinaryLoops,
): OpDef<string> {
  return {
    prepare: (ctx) => ctx.op,
    run(op, [a, b]) {
      expectType(a!, types, op);
      if (a!.type !== b!.type) throw new UnsupportedGraph(`${op}: inputs of types ${a!.type} and ${b!.type}`);
      const dims = broadcastDims([a!.dims, b!.dims], op);
      const out = alloc(result === 'bool' ? 'bool' : a!.type, dims);
      const x = a!.data;
      const y = b!.data;
      const o = out.data;
      const int = result === 'same' && a!.type === 'int64';
      const n = o.length;
      if (x.length === n && y.length === n) {
        if (loops) loops.both(x, y, o, n);
        else for (let i = 0; i < n; i++) o[i] = fn(x[i]!, y[i]!);
      } else if (x.length === n && y.length === 1) {
        const c = y[0]!;
        if (loops) loops.right(x, c, o, n);
        else for (let i = 0; i < n; i++) o[i] = fn(x[i]!, c);
      } else if (x.length === 1 && y.length === n) {
        const c = x[0]!;
        if (loops) loops.left(c, y, o, n);
        else for (let i = 0; i < n; i++) o[i] = fn(c, y[i]!);
      } else if (x.length === n && trailing(b!.dims, dims)) {
        // A row of parameters against every row of the input (a mean, a bias): no index arrays.
        const m = y.length;
        if (loops?.rowRight) loops.rowRight(x, y, o, n, m);
        else for (let at = 0; at < n; at += m) for (let j = 0; j < m; j++) o[at + j] = fn(x[at + j]!, y[j]!);
      } else if (y.length === n && trailing(a!.dims, dims)) {
        const m = x.length;
        if (loops?.rowLeft) loops.rowLeft(x, y, o, n, m);
        else for (let at = 0; at < n; at += m) for (let j = 0; j < m; j++) o[at + j] = fn(x[j]!, y[at + j]!);
      } else {
        const ix = broadcastIndex(a!.dims, dims);
        const iy = broadcastIndex(b!.dims, dims);
        for (let i = 0; i < n; i++) o[i] = fn(x[ix ? ix[i]! : i]!, y[iy ? iy[i]! : i]!);
      }
      if (int) for (let i = 0; i < n; i++) o[i] = Math.trunc(o[i]!);
      return [out];
    },
  };
}

/**
 * Whether `dims` broadcast to `out` by repetition alone: past their leading 1s they are `out`'s last dimensions,
 * so element i of the output takes element i mod size(dims) of the operand.
 */
function trailing(dims: readonly number[], out: readonly number[]): boolean {
  let first = 0;
  while (first < dims.length && dims[first] === 1) first++;
  const offset = out.length - dims.length;
  for (let i = first; i < dims.length; i++) if (dims[i] !== out[offset + i]) return false;
  return true;
}

/** A variadic operator's fold of one operand into the accumulator (see {@link UnaryLoop}): whole, or a scalar. */
interface FoldLoops {
  both(acc: Data, d: Data, n: number): void;
  scalar(acc: Data, c: number, n: number): void;
}

/** Max, Min, Sum, Mean: any number of inputs, broadcast together, folded left to right. */
function variadic(fn: (a: number, b: number) => number, loops: FoldLoops, mean = false): OpDef<string> {
  return {
    prepare: (ctx) => ctx.op,
    run(op, inputs) {
      const xs = inputs as Tensor[];
      const type = xs[0]!.type;
      for (const x of xs) {
        expectType(x, NUMERIC, op);
        if (x.type !== type) throw new UnsupportedGraph(`${op}: inputs of different types`);
      }
      const dims = broadcastDims(
        xs.map((x) => x.dims),
        op,
      );
      const out = alloc(type, dims);
      const acc = alloc('double', dims).data;
      xs.forEach((x, k) => {
        const d = x.data;
        // An operand of the output's size is the output's shape (it broadcast to it); a single value, a constant.
        if (d.length === acc.length) {
          if (k === 0) acc.set(d);
          else loops.both(acc, d, acc.length);
        } else if (d.length === 1) {
          if (k === 0) acc.fill(d[0]!);
          else loops.scalar(acc, d[0]!, acc.length);
        } else {
          const ix = broadcastIndex(x.dims, dims)!;
          for (let i = 0; i < acc.length; i++) acc[i] = k === 0 ? d[ix[i]!]! : fn(acc[i]!, d[ix[i]!]!);
        }
        // Every step of the fold rounds as onnxruntime's pairwise kernels do.
        if (type === 'float') for (let i = 0; i < acc.length; i++) acc[i] = Math.fround(acc[i]!);
      });
      for (let i = 0; i < acc.length; i++) out.data[i] = mean ? acc[i]! / xs.length : acc[i]!;
      return [out];
    },
  };
}

const ONNX_TYPES: Record<number, DType> = { 1: 'float', 7: 'int64', 9: 'bool', 11: 'double' };

const cast: OpDef<DType> = {
  prepare(ctx) {
    const code = attrReader(ctx).int('to');
    const to = ONNX_TYPES[code];
    if (!to) throw new UnsupportedGraph(`Cast: target type ${code} is not supported`);
    return to;
  },
  run(to, [x]) {
    const out = alloc(to, x!.dims);
    const a = x!.data;
    const o = out.data;
    if (to === 'int64' && x!.type !== 'bool') {
      for (let i = 0; i < a.length; i++) {
        if (!Number.isFinite(a[i]!)) throw new UnsupportedGraph(`Cast: ${a[i]} has no int64 value`);
        // + 0: an int64 has no negative zero (Math.trunc(-0.5) is -0, and 1 / -0 would be -Infinity downstream).
        o[i] = Math.trunc(a[i]!) + 0;
      }
    } else if (to === 'bool') {
      for (let i = 0; i < a.length; i++) o[i] = a[i] !== 0 ? 1 : 0;
    } else {
      o.set(a);
    }
    return [out];
  },
};

const where: OpDef<null> = {
  prepare: () => null,
  run(_, [c, a, b]) {
    expectType(c!, ['bool'], 'Where');
    if (a!.type !== b!.type) throw new UnsupportedGraph('Where: branches of different types');
    const dims = broadcastDims([c!.dims, a!.dims, b!.dims], 'Where');
    const out = alloc(a!.type, dims);
    const [ic, ia, ib] = [c!, a!, b!].map((t) => broadcastIndex(t.dims, dims));
    for (let i = 0; i < out.data.length; i++) {
      out.data[i] = c!.data[ic ? ic[i]! : i] ? a!.data[ia ? ia[i]! : i]! : b!.data[ib ? ib[i]! : i]!;
    }
    return [out];
  },
};

/** Sum's and Mean's fold. */
const SUM: FoldLoops = {
  both: (acc, d, n) => {
    for (let i = 0; i < n; i++) acc[i] = acc[i]! + d[i]!;
  },
  scalar: (acc, c, n) => {
    for (let i = 0; i < n; i++) acc[i] = acc[i]! + c;
  },
};

const relu = (x: number) => (x > 0 ? x : 0);
const sigmoid = (x: number) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

/** Max's comparison (NaN wins, as in onnxruntime), and Min's. */
const max = (a: number, b: number) => (a >= b || Number.isNaN(a) ? a : b);
const min = (a: number, b: number) => (a <= b || Number.isNaN(a) ? a : b);

/** The element-wise operators of the default (ai.onnx) domain, by name. */
export const elementwiseOps: Record<string, OpDef> = {
  Add: binary((a, b) => a + b, 'same', NUMERIC, {
    both: (x, y, o, n) => { for (let i = 0; i < n; i++) o[i] = x[i]! + y[i]!; },
    right: (x, c, o, n) => { for (let i = 0; i < n; i++) o[i] = x[i]! + c; },
    left: (c, y, o, n) => { for (let i = 0; i < n; i++) o[i] = c + y[i]!; },
    rowRight: (x, y, o, n, m) => { for (let at = 0; at < n; at += m) for (let j = 0; j < m; j++) o[at + j] = x[at + j]! + y[j]!; },
    rowLeft: (x, y, o, n, m) => { for (let at = 0; at < n; at += m) for (let j = 0; j < m; j++) o[at + j] = x[j]! + y[at + j]!; },
  }),
  Sub: binary((a, b) => a - b, 'same', NUMERIC, {
    both: (x, y, o, n) => { for (let i = 0; i < n; i++) o[i] = x[i]! - y[i]!; },
    right: (x, c, o, n) => { for (let i = 0; i < n; i++) o[i] = x[i]! - c; },
    left: (c, y, o, n) => { for (let i = 0; i < n; i++) o[i] = c - y[i]!; },
    rowRight: (x, y, o, n, m) => { for (let at = 0; at < n; at += m) for (let j = 0; j < m; j++) o[at + j] = x[at + j]! - y[j]!; },
    rowLeft: (x, y, o, n, m) => { for (let at = 0; at < n; at += m) for (let j = 0; j < m; j++) o[at + j] = x[j]! - y[at + j]!; },
  }),
  Mul: binary((a, b) => a * b, 'same', NUMERIC, {
    both: (x, y, o, n) => { for (let i = 0; i < n; i++) o[i] = x[i]! * y[i]!; },
    right: (x, c, o, n) => { for (let i = 0; i < n; i++) o[i] = x[i]! * c; },
    left: (c, y, o, n) => { for (let i = 0; i < n; i++) o[i] = c * y[i]!; },
    rowRight: (x, y, o, n, m) => { for (let at = 0; at < n; at += m) for (let j = 0; j < m; j++) o[at + j] = x[at + j]! * y[j]!; },
    rowLeft: (x, y, o, n, m) => { for (let at = 0; at < n; at += m) for (let j = 0; j < m; j++) o[at + j] = x[j]! * y[at + j]!; },
  }),
  Div: binary((a, b) => a / b, 'same', NUMERIC, {
    both: (x, y, o, n) => { for (let i = 0; i < n; i++) o[i] = x[i]! / y[i]!; },
    right: (x, c, o, n) => { for (let i = 0; i < n; i++) o[i] = x[i]! / c; },
    left: (c, y, o, n) => { for (let i = 0; i < n; i++) o[i] = c / y[i]!; },
    rowRight: (x, y, o, n, m) => { for (let at = 0; at < n; at += m) for (let j = 0; j < m; j++) o[at + j] = x[at + j]! / y[j]!; },
    rowLeft: (x, y, o, n, m) => { for (let at = 0; at < n; at += m) for (let j = 0; j < m; j++) o[at + j] = x[j]! / y[at + j]!; },
  }),
  Pow: binary((a, b) => Math.pow(a, b), 'same', FLOATS),
  Equal: binary((a, b) => (a === b ? 1 : 0), 'bool', NUMERIC, {
    both: (x, y, o, n) => { for (let i = 0; i < n; i++) o[i] = x[i] === y[i] ? 1 : 0; },
    right: (x, c, o, n) => { for (let i = 0; i < n; i++) o[i] = x[i] === c ? 1 : 0; },
    left: (c, y, o, n) => { for (let i = 0; i < n; i++) o[i] = c === y[i] ? 1 : 0; },
  }),
  Greater: binary((a, b) => (a > b ? 1 : 0), 'bool', NUMERIC, {
    both: (x, y, o, n) => { for (let i = 0; i < n; i++) o[i] = x[i]! > y[i]! ? 1 : 0; },
    right: (x, c, o, n) => { for (let i = 0; i < n; i++) o[i] = x[i]! > c ? 1 : 0; },
    left: (c, y, o, n) => { for (let i = 0; i < n; i++) o[i] = c > y[i]! ? 1 : 0; },
  }),
  GreaterOrEqual: binary((a, b) => (a >= b ? 1 : 0), 'bool'),
  Less: binary((a, b) => (a < b ? 1 : 0), 'bool', NUMERIC, {
    both: (x, y, o, n) => { for (let i = 0; i < n; i++) o[i] = x[i]! < y[i]! ? 1 : 0; },
    right: (x, c, o, n) => { for (let i = 0; i < n; i++) o[i] = x[i]! < c ? 1 : 0; },
    left: (c, y, o, n) => { for (let i = 0; i < n; i++) o[i] = c < y[i]! ? 1 : 0; },
  }),
  LessOrEqual: binary((a, b) => (a <= b ? 1 : 0), 'bool'),
  And: binary((a, b) => (a && b ? 1 : 0), 'bool', ['bool']),
  Or: binary((a, b) => (a || b ? 1 : 0), 'bool', ['bool']),
  Max: variadic(max, {
    both: (acc, d, n) => { for (let i = 0; i < n; i++) acc[i] = max(acc[i]!, d[i]!); },
    scalar: (acc, c, n) => { for (let i = 0; i < n; i++) acc[i] = max(acc[i]!, c); },
  }),
  Min: variadic(min, {
    both: (acc, d, n) => { for (let i = 0; i < n; i++) acc[i] = min(acc[i]!, d[i]!); },
    scalar: (acc, c, n) => { for (let i = 0; i < n; i++) acc[i] = min(acc[i]!, c); },
  }),
  Sum: variadic((a, b) => a + b, SUM),
  Mean: variadic((a, b) => a + b, SUM, true),
  Neg: unary((x) => -x, NUMERIC, (a, o, n) => { for (let i = 0; i < n; i++) o[i] = -a[i]!; }),
  Abs: unary(Math.abs, NUMERIC),
  Sign: unary((x) => (x > 0 ? 1 : x < 0 ? -1 : 0), NUMERIC),
  Log: unary(Math.log, FLOATS, (a, o, n) => { for (let i = 0; i < n; i++) o[i] = Math.log(a[i]!); }),
  Exp: unary(Math.exp, FLOATS, (a, o, n) => { for (let i = 0; i < n; i++) o[i] = Math.exp(a[i]!); }),
  Sqrt: unary(Math.sqrt, FLOATS, (a, o, n) => { for (let i = 0; i < n; i++) o[i] = Math.sqrt(a[i]!); }),
  Reciprocal: unary((x) => 1 / x),
  Floor: unary(Math.floor),
  Ceil: unary(Math.ceil),
  Relu: unary(relu, FLOATS, (a, o, n) => { for (let i = 0; i < n; i++) o[i] = relu(a[i]!); }),
  Sigmoid: unary(sigmoid, FLOATS, (a, o, n) => { for (let i = 0; i < n; i++) o[i] = sigmoid(a[i]!); }),
  Tanh: unary(Math.tanh, FLOATS, (a, o, n) => { for (let i = 0; i < n; i++) o[i] = Math.tanh(a[i]!); }),
  Not: unary((x) => (x ? 0 : 1), ['bool']),
  Cast: cast,
  Where: where,
}; // prettier-ignore
