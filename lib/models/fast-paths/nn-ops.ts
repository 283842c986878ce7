/**
 * The layers `torch.onnx.export` (and tf2onnx) write into small autoencoders besides Gemm/MatMul and the plain
 * activations: activations with parameters (LeakyRelu, PRelu, Elu, Selu, Celu, HardSigmoid, HardSwish, Softplus,
 * Softsign, ThresholdedRelu, Mish, Clip as ReLU6 and Hardtanh), GELU (as `Erf` arithmetic, or the opset 20
 * `Gelu`), Softmax and LogSoftmax, BatchNormalization, LayerNormalization and Dropout as they run in inference.
 * Each value is computed in double and rounded once to the output type, within float32 tolerance of onnxruntime's
 * float kernels.
 */
import { attrReader, type OpDef } from './op-types';
import { alloc, broadcastDims, broadcastIndex, expectType, size, UnsupportedGraph, type Tensor } from './tensor';

const FLOATS = ['float', 'double'] as const;

/** An element-wise activation whose formula takes the node's attributes (`a`, `b`: alpha and beta or gamma). */
function activation(
  read: (attr: ReturnType<typeof attrReader>) => { a: number; b: number },
  fn: (x: number, a: number, b: number) => number,
): OpDef<{ op: string; a: number; b: number }> {
  return {
    prepare: (ctx) => ({ op: ctx.op, ...read(attrReader(ctx)) }),
    run({ op, a, b }, [x]) {
      expectType(x!, [...FLOATS], op);
      const out = alloc(x!.type, x!.dims);
      const xs = x!.data;
      const o = out.data;
      for (let i = 0; i < xs.length; i++) o[i] = fn(xs[i]!, a, b);
      return [out];
    },
  };
}

/** The parameters of an activation without attributes. */
const none = () => ({ a: 0, b: 0 });
const alpha = (fallback: number) => (attr: ReturnType<typeof attrReader>) => ({
  a: attr.float('alpha', fallback),
  b: 0,
});
const clip01 = (v: number) => Math.max(0, Math.min(1, v));

/**
 * The error function in double precision (JavaScript has none): its Maclaurin series below |x| = 3 (terms fall
 * below 1e-17 of the sum; cancellation costs at most e^9 ulps, about 1e-12), the continued fraction of erfc above,
 * and ±1 past 6, where erfc is below 2e-17.
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (!(ax < 6)) return Number.isNaN(x) ? x : Math.sign(x);
  if (ax < 3) {
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let n = 1; n < 80 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= -x2 / n;
      sum += term / (2 * n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated from the tail.
  let tail = ax;
  for (let k = 60; k >= 1; k--) tail = ax + k / 2 / tail;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / tail;
  return Math.sign(x) * (1 - erfc);
}

/** PRelu: the slope broadcast to the input (one per channel, usually). */
const prelu: OpDef<null> = {
  prepare: () => null,
  run(_, [x, slope]) {
    expectType(x!, [...FLOATS], 'PRelu');
    if (slope!.type !== x!.type) throw new UnsupportedGraph('PRelu: slope of another type');
    const dims = broadcastDims([x!.dims, slope!.dims], 'PRelu');
    if (dims.join() !== x!.dims.join()) throw new UnsupportedGraph('PRelu: slope wider than the input');
    const out = alloc(x!.type, dims);
    const is = broadcastIndex(slope!.dims, dims);
    const xs = x!.data;
    const s = slope!.data;
    for (let i = 0; i < xs.length; i++) {
      const v = xs[i]!;
      out.data[i] = v < 0 ? s[is ? is[i]! : i]! * v : v;
    }
    return [out];
  },
};

interface BatchNormParams {
  /** Per channel: the factor and the offset a value is mapped by, `x * scale + bias`. */
  scale: Float64Array;
  bias: Float64Array;
  /** The factors rounded as onnxruntime rounds them for float input (it folds them in the input's type). */
  scale32: Float32Array;
  bias32: Float32Array;
}

/**
 * BatchNormalization with its running statistics (inference): onnxruntime folds them into one factor and offset
 * per channel (axis 1), `1 / sqrt(var + ε) · scale` and `B - mean · factor`, and maps `x · factor + offset`.
 */
const batchNormalization: OpDef<BatchNormParams> = {
  prepare(ctx) {
    const attr = attrReader(ctx);
    if (attr.int('training_mode', 0) !== 0) throw new UnsupportedGraph('BatchNormalization: training mode');
    if (ctx.opset < 9 && attr.int('spatial', 1) !== 1) throw new UnsupportedGraph('BatchNormalization: spatial 0');
    const [, scale, bias, mean, variance] = ctx.constants;
    if (!scale || !bias || !mean || !variance) throw new UnsupportedGraph('BatchNormalization: statistics as inputs');
    const c = scale.data.length;
    if ([bias, mean, variance].some((t) => t.data.length !== c)) {
      throw new UnsupportedGraph('BatchNormalization: parameters of different lengths');
    }
    const epsilon = attr.float('epsilon', 1e-5);
    const out: BatchNormParams = {
      scale: new Float64Array(c),
      bias: new Float64Array(c),
      scale32: new Float32Array(c),
      bias32: new Float32Array(c),
    };
    const f = Math.fround;
    for (let i = 0; i < c; i++) {
      const factor = scale.data[i]! / Math.sqrt(variance.data[i]! + epsilon);
      out.scale[i] = factor;
      out.bias[i] = bias.data[i]! - mean.data[i]! * factor;
      out.scale32[i] = f(f(1 / f(Math.sqrt(f(variance.data[i]! + f(epsilon))))) * scale.data[i]!);
      out.bias32[i] = f(bias.data[i]! - f(mean.data[i]! * out.scale32[i]!));
    }
    return out;
  },
  run(p, [x]) {
    expectType(x!, [...FLOATS], 'BatchNormalization');
    const c = p.scale.length;
    if (x!.dims.length < 2 || x!.dims[1] !== c) {
      throw new UnsupportedGraph(`BatchNormalization: input [${x!.dims.join(',')}] for ${c} channels`);
    }
    const inner = size(x!.dims.slice(2));
    const out = alloc(x!.type, x!.dims);
    const float = x!.type === 'float';
    const scale = float ? p.scale32 : p.scale;
    const bias = float ? p.bias32 : p.bias;
    const xs = x!.data;
    for (let i = 0; i < xs.length; i++) {
      const ch = Math.floor(i / inner) % c;
      out.data[i] = float ? Math.fround(xs[i]! * scale[ch]!) + bias[ch]! : xs[i]! * scale[ch]! + bias[ch]!;
    }
    return [out];
  },
};

/**
 * LayerNormalization (opset 17, torch's `nn.LayerNorm`): the values of each row from `axis` on, less their mean,
 * over the square root of their variance plus ε, times Scale plus B (each of the normalised shape, or one value).
 * The optional outputs Mean and InvStdDev come out too, of the input's shape with the normalised dimensions 1.
 * Computed in double and rounded once (onnxruntime computes a float input's in float, within float32 tolerance).
 */
const layerNormalization: OpDef<{ axis: number; epsilon: number }> = {
  prepare(ctx) {
    const attr = attrReader(ctx);
    return { axis: attr.int('axis', -1), epsilon: attr.float('epsilon', 1e-5) };
  },
  run({ axis, epsilon }, [x, scale, bias]) {
    expectType(x!, [...FLOATS], 'LayerNormalization');
    const rank = x!.dims.length;
    const at = axis < 0 ? axis + rank : axis;
    if (at < 0 || at >= rank) throw new UnsupportedGraph(`LayerNormalization: axis ${axis} of a ${rank}-D input`);
    const n = size(x!.dims.slice(at));
    const param = (t: Tensor | undefined, name: string) => {
      if (t && t.data.length !== n && t.data.length !== 1) {
        throw new UnsupportedGraph(`LayerNormalization: ${name} of ${t.data.length} values for ${n}`);
      }
      return t;
    };
    if (!scale) throw new UnsupportedGraph('LayerNormalization: no Scale');
    const s = param(scale, 'Scale')!.data;
    const b = param(bias, 'B')?.data;
    const xs = x!.data;
    const out = alloc(x!.type, x!.dims);
    const statsDims = x!.dims.map((d, i) => (i < at ? d : 1));
    const means = alloc(x!.type, statsDims);
    const invStd = alloc(x!.type, statsDims);
    for (let row = 0, start = 0; start < xs.length; row++, start += n) {
      let sum = 0;
      for (let i = start; i < start + n; i++) sum += xs[i]!;
      const mean = sum / n;
      let squares = 0;
      for (let i = start; i < start + n; i++) squares += (xs[i]! - mean) ** 2;
      const inv = 1 / Math.sqrt(squares / n + epsilon);
      for (let i = 0; i < n; i++) {
        const v = (xs[start + i]! - mean) * inv * s[s.length === 1 ? 0 : i]!;
        out.data[start + i] = b ? v + b[b.length === 1 ? 0 : i]! : v;
      }
      means.data[row] = mean;
      invStd.data[row] = inv;
    }
    return [out, means, invStd];
  },
};

/**
 * Clip (torch's ReLU6 and Hardtanh): the input bounded by `min` and `max`, attributes before opset 11 and inputs
 * (one value each) from it; either may be left out: unbounded on that side. NaN stays NaN.
 */
const clip: OpDef<{ lo: number; hi: number } | null> = {
  prepare(ctx) {
    if (ctx.opset >= 11) return null;
    const attr = attrReader(ctx);
    return { lo: attr.float('min', -Infinity), hi: attr.float('max', Infinity) };
  },
  run(bounds, [x, min, max]) {
    expectType(x!, [...FLOATS], 'Clip');
    const bound = (t: Tensor | undefined, fallback: number) => {
      if (t && t.data.length !== 1) throw new UnsupportedGraph('Clip: a bound of more than one value');
      return t ? t.data[0]! : fallback;
    };
    const lo = bounds ? bounds.lo : bound(min, -Infinity);
    const hi = bounds ? bounds.hi : bound(max, Infinity);
    const out = alloc(x!.type, x!.dims);
    const xs = x!.data;
    for (let i = 0; i < xs.length; i++) {
      const v = xs[i]!;
      out.data[i] = v < lo ? lo : v > hi ? hi : v;
    }
    return [out];
  },
};

/**
 * Softmax and LogSoftmax: from opset 13 over the one axis `axis` (default -1); before, over the input flattened to
 * two dimensions at `axis` (default 1), every value from `axis` on in one group. Largest value subtracted first.
 */
function softmax(log: boolean): OpDef<{ op: string; axis: number; flatten: boolean }> {
  return {
    prepare(ctx) {
      const flatten = ctx.opset < 13;
      return { op: ctx.op, axis: attrReader(ctx).int('axis', flatten ? 1 : -1), flatten };
    },
    run({ op, axis, flatten }, [x]) {
      expectType(x!, [...FLOATS], op);
      const dims = x!.dims;
      const at = axis < 0 ? axis + dims.length : axis;
      if (at < 0 || at >= dims.length) throw new UnsupportedGraph(`${op}: axis ${axis} of a ${dims.length}-D input`);
      // Groups of `n` values `stride` apart: blocks of `n * stride` values, each holding `stride` groups.
      const n = flatten ? size(dims.slice(at)) : dims[at]!;
      const stride = flatten ? 1 : size(dims.slice(at + 1));
      const xs = x!.data;
      const out = alloc(x!.type, dims);
      for (let block = 0; block < xs.length; block += n * stride) {
        for (let g = block; g < block + stride; g++) {
          let max = -Infinity;
          for (let i = 0; i < n; i++) max = Math.max(max, xs[g + i * stride]!);
          let sum = 0;
          for (let i = 0; i < n; i++) sum += Math.exp(xs[g + i * stride]! - max);
          for (let i = 0; i < n; i++) {
            const v = xs[g + i * stride]! - max;
            out.data[g + i * stride] = log ? v - Math.log(sum) : Math.exp(v) / sum;
          }
        }
      }
      return [out];
    },
  };
}

/** Dropout in inference: the input itself, and a mask of all true. A constant training mode of true is refused. */
const dropout: OpDef<null> = {
  prepare(ctx) {
    const training = ctx.inputCount > 2 ? ctx.constants[2] : undefined;
    if (ctx.inputCount > 2 && (!training || training.data[0] !== 0)) {
      throw new UnsupportedGraph('Dropout: training mode not a constant false');
    }
    if (ctx.opset < 7 && attrReader(ctx).int('is_test', 0) === 0) throw new UnsupportedGraph('Dropout: training');
    return null;
  },
  run(_, [x]) {
    const mask = alloc('bool', x!.dims);
    mask.data.fill(1);
    return [x!, mask];
  },
};

/** The layer operators of the default (ai.onnx) domain, by name. */
export const nnOps: Record<string, OpDef> = {
  LeakyRelu: activation(alpha(0.01), (x, a) => (x >= 0 ? x : a * x)),
  PRelu: prelu,
  Elu: activation(alpha(1), (x, a) => (x >= 0 ? x : a * (Math.exp(x) - 1))),
  Selu: activation(
    (attr) => ({ a: attr.float('alpha', 1.6732632423543772), b: attr.float('gamma', 1.0507010221481018) }),
    (x, a, g) => (x > 0 ? g * x : g * (a * Math.exp(x) - a)),
  ),
  Celu: activation(alpha(1), (x, a) => Math.max(0, x) + Math.min(0, a * (Math.exp(x / a) - 1))),
  HardSigmoid: activation(
    (attr) => ({ a: attr.float('alpha', 0.2), b: attr.float('beta', 0.5) }),
    (x, a, b) => clip01(a * x + b),
  ),
  HardSwish: activation(
    () => ({ a: 1 / 6, b: 0.5 }),
    (x, a, b) => x * clip01(a * x + b),
  ),
  Softplus: activation(none, (x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)))),
  Softsign: activation(none, (x) => x / (1 + Math.abs(x))),
  ThresholdedRelu: activation(alpha(1), (x, a) => (x > a ? x : 0)),
  Erf: activation(none, erf),
  Gelu: activation(
    (attr) => {
      const approximate = attr.string('approximate', 'none');
      if (approximate !== 'none' && approximate !== 'tanh') throw new UnsupportedGraph(`Gelu: ${approximate}`);
      return { a: approximate === 'tanh' ? 1 : 0, b: 0 };
    },
    (x, tanh) =>
      tanh
        ? 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)))
        : 0.5 * x * (1 + erf(x / Math.SQRT2)),
  ),
  Mish: activation(none, (x) => x * Math.tanh(x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)))),
  Clip: clip,
  Softmax: softmax(false),
  LogSoftmax: softmax(true),
  BatchNormalization: batchNormalization,
  LayerNormalization: layerNormalization,
  Dropout: dropout,
};

/** The operators whose presence makes a graph a neural network (`compiled:mlp`) in the path names. */
export const NN_OPS = Object.keys(nnOps);
