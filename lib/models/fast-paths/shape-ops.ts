/**
 * ONNX operators that move data without arithmetic (Reshape, Flatten, Squeeze, Unsqueeze, Gather, Concat,
 * Transpose of a matrix, Identity, Constant's value) and Shape, as the fast path evaluates them. A shape computed
 * from the input (`x.view(x.size(0), -1)` in torch: Shape, Gather, Unsqueeze, Concat, Reshape) is followed at
 * run time.
 */
import { attrReader, type OpDef, type PrepareContext } from './op-types';
import { alloc, size, UnsupportedGraph, type Tensor } from './tensor';

/** An int64 list given as a constant input (opset >= 13 style) or an attribute (older opsets). */
export function intsFrom(ctx: PrepareContext, input: number, attr: string): number[] | undefined {
  const constant = ctx.constants[input];
  if (constant) return Array.from(constant.data);
  if (input < ctx.inputCount) throw new UnsupportedGraph(`${ctx.op}: ${attr} must be a constant`);
  return ctx.attrs.has(attr) ? Array.from(attrReader(ctx).numbers(attr)) : undefined;
}

const view = (t: Tensor, dims: number[]): Tensor => ({ type: t.type, dims, data: t.data });

/** Reshape to a constant shape (`shape`), or to the one its second input computes (`shape` undefined). */
export interface ReshapeParams {
  shape: number[] | undefined;
  allowzero: number;
}

const reshape: OpDef<ReshapeParams> = {
  prepare(ctx) {
    const allowzero = attrReader(ctx).int('allowzero', 0);
    // A shape input that is not a constant is computed from the input: read at run time.
    if (ctx.inputCount > 1 && !ctx.constants[1]) return { shape: undefined, allowzero };
    const shape = intsFrom(ctx, 1, 'shape');
    if (!shape) throw new UnsupportedGraph('Reshape: no shape');
    return { shape, allowzero };
  },
  run({ shape: fixed, allowzero }, [x, computed]) {
    if (!fixed && computed?.type !== 'int64') throw new UnsupportedGraph('Reshape: shape not int64');
    const shape = fixed ?? Array.from(computed!.data);
    const dims = shape.map((d, i) => (d === 0 && !allowzero ? x!.dims[i]! : d));
    const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const out = dims.map((d) => (d === -1 ? size(x!.dims) / known : d));
    if (size(out) !== size(x!.dims) || !out.every(Number.isInteger)) {
      throw new UnsupportedGraph(`Reshape: [${x!.dims.join(',')}] cannot become [${shape.join(',')}]`);
    }
    return [view(x!, out)];
  },
};

/** Shape: the input's dimensions as int64, `start` to `end` (opset 15), negative ones counting from the end. */
const shapeOf: OpDef<{ start: number; end: number | undefined }> = {
  prepare(ctx) {
    const attr = attrReader(ctx);
    return { start: attr.int('start', 0), end: attr.has('end') ? attr.int('end') : undefined };
  },
  run({ start, end }, [x]) {
    const r = x!.dims.length;
    const clamp = (i: number) => Math.min(r, Math.max(0, i < 0 ? i + r : i));
    const dims = x!.dims.slice(clamp(start), clamp(end ?? r));
    const out = alloc('int64', [dims.length]);
    out.data.set(dims);
    return [out];
  },
};

const flatten: OpDef<number> = {
  prepare: (ctx) => attrReader(ctx).int('axis', 1),
  run(axis, [x]) {
    const a = axis < 0 ? axis + x!.dims.length : axis;
    return [view(x!, [size(x!.dims.slice(0, a)), size(x!.dims.slice(a))])];
  },
};

const squeeze: OpDef<number[] | undefined> = {
  prepare: (ctx) => intsFrom(ctx, 1, 'axes'),
  run(axes, [x]) {
    const r = x!.dims.length;
    const drop = new Set((axes ?? x!.dims.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => (a < 0 ? a + r : a)));
    if ([...drop].some((a) => x!.dims[a] !== 1)) throw new UnsupportedGraph('Squeeze: axis of size other than 1');
    return [
      view(
        x!,
        x!.dims.filter((_, i) => !drop.has(i)),
      ),
    ];
  },
};

const unsqueeze: OpDef<number[]> = {
  prepare(ctx) {
    const axes = intsFrom(ctx, 1, 'axes');
    if (!axes) throw new UnsupportedGraph('Unsqueeze: no axes');
    return axes;
  },
  run(axes, [x]) {
    const r = x!.dims.length + axes.length;
    const at = new Set(axes.map((a) => (a < 0 ? a + r : a)));
    const dims: number[] = [];
    let k = 0;
    for (let i = 0; i < r; i++) dims.push(at.has(i) ? 1 : x!.dims[k++]!);
    return [view(x!, dims)];
  },
};

/** Gather along one axis with int64 indices (negative ones count from the end). */
const gather: OpDef<number> = {
  prepare: (ctx) => attrReader(ctx).int('axis', 0),
  run(axis, [x, indices]) {
    const r = x!.dims.length;
    const a = axis < 0 ? axis + r : axis;
    const n = x!.dims[a]!;
    const outer = size(x!.dims.slice(0, a));
    const inner = size(x!.dims.slice(a + 1));
    const idx = indices!.data;
    const out = alloc(x!.type, [...x!.dims.slice(0, a), ...indices!.dims, ...x!.dims.slice(a + 1)]);
    const from = x!.data;
    const to = out.data;
    let o = 0;
    for (let p = 0; p < outer; p++) {
      for (let t = 0; t < idx.length; t++) {
        const i = idx[t]! < 0 ? idx[t]! + n : idx[t]!;
        if (!(i >= 0 && i < n)) throw new UnsupportedGraph('Gather: index out of range');
        const at = (p * n + i) * inner;
        for (let q = 0; q < inner; q++) to[o++] = from[at + q]!;
      }
    }
    return [out];
  },
};

const concat: OpDef<number> = {
  prepare: (ctx) => attrReader(ctx).int('axis'),
  run(axis, inputs) {
    const xs = inputs as Tensor[];
    const first = xs[0]!;
    const a = axis < 0 ? axis + first.dims.length : axis;
    const dims = [...first.dims];
    dims[a] = xs.reduce((s, x) => s + x.dims[a]!, 0);
    const out = alloc(first.type, dims);
    const outer = size(first.dims.slice(0, a));
    let o = 0;
    for (let p = 0; p < outer; p++) {
      for (const x of xs) {
        if (x.type !== first.type) throw new UnsupportedGraph('Concat: inputs of different types');
        const chunk = size(x.dims.slice(a));
        out.data.set(x.data.subarray(p * chunk, (p + 1) * chunk), o);
        o += chunk;
      }
    }
    return [out];
  },
};

const transpose: OpDef<number[] | undefined> = {
  prepare: (ctx) => (ctx.attrs.has('perm') ? Array.from(attrReader(ctx).numbers('perm')) : undefined),
  run(perm, [x]) {
    if (x!.dims.length !== 2 || (perm && perm.join() !== '1,0')) {
      throw new UnsupportedGraph('Transpose: only a matrix transpose is supported');
    }
    const [m, n] = x!.dims as [number, number];
    const out = alloc(x!.type, [n, m]);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out.data[j * m + i] = x!.data[i * n + j]!;
    return [out];
  },
};

/** The data-movement operators of the default (ai.onnx) domain, by name. */
export const shapeOps: Record<string, OpDef> = {
  Reshape: reshape,
  Shape: shapeOf,
  Flatten: flatten,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Gather: gather,
  Concat: concat,
  Transpose: transpose,
  Identity: { prepare: () => null, run: (_, [x]) => [x!] },
};
