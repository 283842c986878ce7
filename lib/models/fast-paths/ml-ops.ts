/**
 * The ai.onnx.ml operators scikit-learn models are exported with (TreeEnsembleRegressor for forests,
 * LabelEncoder for the isolation forest's path-length tables, SVMRegressor for one-class SVMs, Scaler for a
 * pipeline's StandardScaler, FeatureVectorizer for a DataFrame's columns joined, Imputer for a SimpleImputer),
 * following onnxruntime's semantics: tree thresholds compared in float32, NaN taking the true branch only where
 * `nodes_missing_value_tracks_true` says so, SVM kernels `exp(-γ‖x-s‖²)`, `(γ x·s + c)^d`, `tanh(γ x·s + c)`, a
 * Scaler's `(x - offset) · scale` rounded as onnxruntime rounds it.
 */
import { classifierOps } from './classifier-ops';
import { attrReader, type OpDef } from './op-types';
import { alloc, expectType, UnsupportedGraph, type Tensor } from './tensor';
import { Carve, checkFeatures, leafOf, readTrees, type TreeParams } from './tree-ensemble';

const treeEnsembleRegressor: OpDef<TreeParams> = {
  prepare(ctx) {
    const post = attrReader(ctx).string('post_transform', 'NONE');
    if (post !== 'NONE') throw new UnsupportedGraph(`TreeEnsembleRegressor: post_transform ${post}`);
    return readTrees(ctx);
  },
  run(p, [x]) {
    expectType(x!, ['float', 'double'], 'TreeEnsembleRegressor');
    if (x!.dims.length !== 2) throw new UnsupportedGraph('TreeEnsembleRegressor: input must be [N, F]');
    const [rows, f] = x!.dims as [number, number];
    checkFeatures(p, f, 'TreeEnsembleRegressor');
    const out = alloc('float', [rows, p.targets]);
    const acc = alloc('double', [p.targets]).data;
    const { weights, targets } = p;
    for (let r = 0; r < rows; r++) {
      acc.fill(0);
      for (const root of p.roots) {
        const i = leafOf(p, root, x!.data, r * f);
        for (let t = 0; t < targets; t++) acc[t] = acc[t]! + weights[i * targets + t]!;
      }
      for (let t = 0; t < targets; t++) {
        out.data[r * targets + t] = (p.average ? acc[t]! / p.roots.length : acc[t]!) + p.base[t]!;
      }
    }
    return [out];
  },
};

interface LabelEncoderParams {
  /**
   * The values by key, when the keys are small non-negative integers (an isolation forest's leaf ids): `value[k]`
   * where `has[k]`. Otherwise `table`.
   */
  dense?: { value: Float64Array; has: Uint8Array };
  table?: Map<number, number>;
  fallback: number;
  to: 'float' | 'int64';
}

/** Keys up to this many times their count (and this much more) are held in a dense table. */
const DENSE_SPREAD = 4;
const DENSE_SLACK = 64;

const labelEncoder: OpDef<LabelEncoderParams> = {
  prepare(ctx) {
    const attr = attrReader(ctx);
    if (ctx.opset < 2) throw new UnsupportedGraph('LabelEncoder: opset 1 maps strings');
    const keys = attr.has('keys_int64s') ? attr.numbers('keys_int64s') : undefined;
    const floats = attr.has('values_floats') ? attr.numbers('values_floats') : undefined;
    const ints = attr.has('values_int64s') ? attr.numbers('values_int64s') : undefined;
    const values = floats ?? ints;
    if (!keys || !values || keys.length !== values.length) throw new UnsupportedGraph('LabelEncoder: int64 keys');
    const fallback = floats ? attr.float('default_float', -0) : attr.int('default_int64', -1);
    const to = floats ? 'float' : 'int64';
    let max = -1;
    for (let i = 0; i < keys.length && max < Infinity; i++) {
      const k = keys[i]!;
      max = Number.isInteger(k) && k >= 0 ? Math.max(max, k) : Infinity;
    }
    if (max <= DENSE_SPREAD * keys.length + DENSE_SLACK) {
      // One buffer for both (a forest has two encoders a tree, each array of them a backing store of its own).
      const buffer = new Carve(new ArrayBuffer(9 * (max + 1)));
      const dense = { value: buffer.take(Float64Array, max + 1, 8), has: buffer.take(Uint8Array, max + 1, 1) };
      // In order, so a repeated key maps to its last value, as in the table below.
      for (let i = 0; i < keys.length; i++) {
        dense.value[keys[i]!] = values[i]!;
        dense.has[keys[i]!] = 1;
      }
      return { dense, fallback, to };
    }
    const table = new Map<number, number>();
    for (let i = 0; i < keys.length; i++) table.set(keys[i]!, values[i]!);
    return { table, fallback, to };
  },
  run({ dense, table, fallback, to }, [x]) {
    expectType(x!, ['int64'], 'LabelEncoder');
    const out = alloc(to, x!.dims);
    const xs = x!.data;
    if (dense) {
      const { value, has } = dense;
      // An int64 tensor holds integers: one within the table's range is an index.
      for (let i = 0; i < xs.length; i++) {
        const k = xs[i]!;
        out.data[i] = k >= 0 && k < has.length && has[k] ? value[k]! : fallback;
      }
    } else {
      for (let i = 0; i < xs.length; i++) out.data[i] = table!.get(xs[i]!) ?? fallback;
    }
    return [out];
  },
};

const KERNELS = ['LINEAR', 'POLY', 'RBF', 'SIGMOID'] as const;

interface SvmParams {
  kernel: (typeof KERNELS)[number];
  gamma: number;
  coef0: number;
  degree: number;
  /** [supports, F]; empty in linear mode. */
  vectors: Float32Array;
  coefficients: Float32Array;
  supports: number;
  rho: number;
  oneClass: boolean;
}

const svmRegressor: OpDef<SvmParams> = {
  prepare(ctx) {
    const attr = attrReader(ctx);
    if (attr.string('post_transform', 'NONE') !== 'NONE') throw new UnsupportedGraph('SVM post_transform');
    const name = attr.string('kernel_type', 'LINEAR');
    // The literal, not the decoded string: compared per support vector, an internalized string compares by identity.
    const kernel = KERNELS.find((k) => k === name);
    if (!kernel) throw new UnsupportedGraph(`SVM kernel ${name}`);
    const [gamma = 0, coef0 = 0, degree = 0] = attr.numbers('kernel_params', []);
    const rho = attr.numbers('rho', [0]);
    if (rho.length !== 1) throw new UnsupportedGraph('SVMRegressor: one rho');
    const supports = attr.int('n_supports', 0);
    const vectors = Float32Array.from(attr.numbers('support_vectors', []));
    const coefficients = Float32Array.from(attr.numbers('coefficients'));
    if (supports > 0 && (coefficients.length !== supports || vectors.length % supports !== 0)) {
      throw new UnsupportedGraph('SVMRegressor: support vectors and coefficients differ');
    }
    return {
      kernel,
      gamma,
      coef0,
      degree,
      vectors,
      coefficients,
      supports,
      rho: rho[0]!,
      oneClass: attr.int('one_class', 0) !== 0,
    };
  },
  run(p, [x]) {
    expectType(x!, ['float', 'double'], 'SVMRegressor');
    const [rows, f] = x!.dims as [number, number];
    const linear = p.supports === 0;
    if ((linear && p.coefficients.length !== f) || (!linear && p.vectors.length !== p.supports * f)) {
      throw new UnsupportedGraph(`SVMRegressor: model has other than ${f} features`);
    }
    const out = alloc('float', [rows, 1]);
    svmScores(p, x!.data, rows, f, out.data);
    return [out];
  },
};

/**
 * Writes each row's Σ coefficient_j · K(x_r, support_j) + rho (or its sign, for `one_class`) into `out`, summed
 * in double and rounded once. One plain loop nest per kernel, with no call per support vector (a closure per
 * kernel term ran at half the speed), over the row copied into a double scratch. Four support vectors go through
 * the row together (each feature loaded once for four), and their terms are added to the sum one by one in
 * support order, so the result is the same as one support vector at a time, bit for bit. On the bench fleets (60
 * rows of 7 features; 44 poly and 36 rbf support vectors on average) the node took 24 to 28 µs a device against
 * 53 to 64 (poly) and 44 to 53 against 63 to 72 (rbf, where `Math.exp` is most of it). The kernel's name is the
 * literal, not the decoded attribute string, which compared character by character per support vector. A
 * polynomial kernel of small integer degree multiplies instead of calling `Math.pow`, which costs more than the dot
 * product it follows.
 */
function svmScores(p: SvmParams, xs: Tensor['data'], rows: number, f: number, out: Tensor['data']): void {
  const { rho, oneClass } = p;
  const row = new Float64Array(f);
  for (let r = 0, o = 0; r < rows; r++, o += f) {
    for (let k = 0; k < f; k++) row[k] = xs[o + k]!;
    const sum =
      (p.supports === 0 ? linearSum(p, row) : p.kernel === 'RBF' ? rbfSum(p, row) : dotKernelSum(p, row)) + rho;
    out[r] = oneClass ? (sum > 0 ? 1 : -1) : sum;
  }
}

function linearSum({ coefficients: c }: SvmParams, row: Float64Array): number {
  let v = 0;
  for (let k = 0; k < row.length; k++) v += row[k]! * c[k]!;
  return v;
}

function rbfSum({ vectors: sv, coefficients: c, supports: n, gamma }: SvmParams, row: Float64Array): number {
  const f = row.length;
  let total = 0;
  let j = 0;
  for (let s = 0; j + 3 < n; j += 4, s += 4 * f) {
    const s1 = s + f;
    const s2 = s1 + f;
    const s3 = s2 + f;
    let v0 = 0;
    let v1 = 0;
    let v2 = 0;
    let v3 = 0;
    for (let k = 0; k < f; k++) {
      const x = row[k]!;
      const d0 = x - sv[s + k]!;
      const d1 = x - sv[s1 + k]!;
      const d2 = x - sv[s2 + k]!;
      const d3 = x - sv[s3 + k]!;
      v0 += d0 * d0;
      v1 += d1 * d1;
      v2 += d2 * d2;
      v3 += d3 * d3;
    }
    total += c[j]! * Math.exp(-gamma * v0);
    total += c[j + 1]! * Math.exp(-gamma * v1);
    total += c[j + 2]! * Math.exp(-gamma * v2);
    total += c[j + 3]! * Math.exp(-gamma * v3);
  }
  for (let s = j * f; j < n; j++, s += f) {
    let v = 0;
    for (let k = 0; k < f; k++) {
      const d = row[k]! - sv[s + k]!;
      v += d * d;
    }
    total += c[j]! * Math.exp(-gamma * v);
  }
  return total;
}

function dotKernelSum(p: SvmParams, row: Float64Array): number {
  const { vectors: sv, coefficients: c, supports: n, kernel, gamma, coef0, degree } = p;
  // A poly kernel's integer degree up to 8 (multiplied out), 0 for any other degree (Math.pow), -1 sigmoid, -2 linear.
  const power =
    kernel === 'POLY'
      ? Number.isInteger(degree) && degree >= 1 && degree <= 8
        ? degree
        : 0
      : kernel === 'SIGMOID'
        ? -1
        : -2;
  const f = row.length;
  let total = 0;
  let j = 0;
  for (let s = 0; j + 3 < n; j += 4, s += 4 * f) {
    const s1 = s + f;
    const s2 = s1 + f;
    const s3 = s2 + f;
    let v0 = 0;
    let v1 = 0;
    let v2 = 0;
    let v3 = 0;
    for (let k = 0; k < f; k++) {
      const x = row[k]!;
      v0 += x * sv[s + k]!;
      v1 += x * sv[s1 + k]!;
      v2 += x * sv[s2 + k]!;
      v3 += x * sv[s3 + k]!;
    }
    if (power > 0) {
      const b0 = gamma * v0 + coef0;
      const b1 = gamma * v1 + coef0;
      const b2 = gamma * v2 + coef0;
      const b3 = gamma * v3 + coef0;
      v0 = b0;
      v1 = b1;
      v2 = b2;
      v3 = b3;
      for (let d = 1; d < power; d++) {
        v0 *= b0;
        v1 *= b1;
        v2 *= b2;
        v3 *= b3;
      }
    } else {
      v0 = kernelOf(p, power, v0);
      v1 = kernelOf(p, power, v1);
      v2 = kernelOf(p, power, v2);
      v3 = kernelOf(p, power, v3);
    }
    total += c[j]! * v0;
    total += c[j + 1]! * v1;
    total += c[j + 2]! * v2;
    total += c[j + 3]! * v3;
  }
  for (let s = j * f; j < n; j++, s += f) {
    let v = 0;
    for (let k = 0; k < f; k++) v += row[k]! * sv[s + k]!;
    total += c[j]! * kernelOf(p, power, v);
  }
  return total;
}

/** The kernel of a dot product `v`, by `power` as {@link dotKernelSum} sets it. */
function kernelOf({ gamma, coef0, degree }: SvmParams, power: number, v: number): number {
  if (power === -2) return v;
  const b = gamma * v + coef0;
  if (power < 0) return Math.tanh(b);
  if (power === 0) return Math.pow(b, degree);
  let q = b;
  for (let d = 1; d < power; d++) q *= b;
  return q;
}

/**
 * How many values of an attribute that holds one value a column, or one for all, a value of `x` cycles through, as
 * onnxruntime reads Scaler's and Imputer's: the input's columns (`dims[1]`, or `dims[0]` for a [C] input) or 1; fails
 * for any other count of `noun`.
 */
function perColumn(count: number, dims: readonly number[], op: string, noun: string): number {
  if (dims.length === 0) throw new UnsupportedGraph(`${op}: a scalar input`);
  const stride = dims.length === 1 ? dims[0]! : dims[1]!;
  const per = count === stride ? stride : count === 1 ? 1 : 0;
  if (per === 0) throw new UnsupportedGraph(`${op}: ${count} ${noun} for ${stride} columns`);
  return per;
}

interface ScalerParams {
  offset: Float32Array;
  scale: Float32Array;
}

/**
 * `(x - offset) · scale` per column (or one offset and scale for every value), as a float32 output. onnxruntime
 * holds the attributes as float32 and computes in the input's type: a float32 input rounds after the subtraction
 * and after the product, a double input only once at the end. A pipeline's StandardScaler exports as this node.
 */
const scaler: OpDef<ScalerParams> = {
  prepare(ctx) {
    const attr = attrReader(ctx);
    const scale = Float32Array.from(attr.numbers('scale', []));
    const offset = Float32Array.from(attr.numbers('offset', []));
    if (scale.length === 0 || scale.length !== offset.length) {
      throw new UnsupportedGraph('Scaler: scale and offset of one length, not empty');
    }
    return { offset, scale };
  },
  run({ offset, scale }, [x]) {
    expectType(x!, ['float', 'double'], 'Scaler');
    const dims = x!.dims;
    const per = perColumn(offset.length, dims, 'Scaler', 'offsets');
    const out = alloc('float', [...dims]);
    const xs = x!.data;
    const ys = out.data;
    if (x!.type === 'float') {
      for (let i = 0; i < xs.length; i++) ys[i] = Math.fround(xs[i]! - offset[i % per]!) * scale[i % per]!;
    } else {
      for (let i = 0; i < xs.length; i++) ys[i] = (xs[i]! - offset[i % per]!) * scale[i % per]!;
    }
    return [out];
  },
};

/**
 * FeatureVectorizer: its inputs side by side in one float [N, sum(inputdimensions)], as skl2onnx joins the one input
 * per column it writes for a DataFrame. As onnxruntime does: input i gives each row its first `inputdimensions[i]`
 * values (a [C] input is one row), zeros past the ones it has, cast to float32.
 */
const featureVectorizer: OpDef<{ widths: number[] }> = {
  prepare(ctx) {
    const widths = Array.from(attrReader(ctx).numbers('inputdimensions'));
    if (widths.length !== ctx.inputCount || widths.some((w) => !Number.isInteger(w) || w < 0)) {
      throw new UnsupportedGraph(
        `FeatureVectorizer: inputdimensions [${widths.join(', ')}] for ${ctx.inputCount} inputs`,
      );
    }
    return { widths };
  },
  run({ widths }, inputs) {
    const rowsOf = (t: Tensor) => (t.dims.length === 1 ? 1 : t.dims[0]!);
    const rows = rowsOf(inputs[0]!);
    const total = widths.reduce((a, b) => a + b, 0);
    const out = alloc('float', [rows, total]);
    out.data.fill(0);
    let at = 0;
    inputs.forEach((x, i) => {
      expectType(x!, ['float', 'double', 'int64'], 'FeatureVectorizer');
      if (rowsOf(x!) !== rows) throw new UnsupportedGraph('FeatureVectorizer: inputs of different row counts');
      const per = rows === 0 ? 0 : x!.data.length / rows;
      const take = Math.min(per, widths[i]!);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < take; c++) out.data[r * total + at + c] = x!.data[r * per + c]!;
      }
      at += widths[i]!;
    });
    return [out];
  },
};

interface ImputerParams {
  imputed: Float32Array;
  /** The value replaced: NaN replaces NaNs (scikit-learn's SimpleImputer), a number the values equal to it. */
  replaced: number;
}

/**
 * Imputer over a float32 input, as skl2onnx exports a SimpleImputer: every value equal to `replaced_value_float`
 * (every NaN when it is NaN) becomes its column's `imputed_value_floats` (or the one value given); others stay.
 */
const imputer: OpDef<ImputerParams> = {
  prepare(ctx) {
    const attr = attrReader(ctx);
    const imputed = Float32Array.from(attr.numbers('imputed_value_floats', []));
    if (imputed.length === 0) throw new UnsupportedGraph('Imputer: no imputed_value_floats (int64 values)');
    return { imputed, replaced: Math.fround(attr.float('replaced_value_float', 0)) };
  },
  run({ imputed, replaced }, [x]) {
    expectType(x!, ['float'], 'Imputer');
    const dims = x!.dims;
    const per = perColumn(imputed.length, dims, 'Imputer', 'imputed values');
    const out = alloc('float', [...dims]);
    const xs = x!.data;
    const ys = out.data;
    const nan = replaced !== replaced;
    for (let i = 0; i < xs.length; i++) {
      const v = xs[i]!;
      ys[i] = (nan ? v !== v : v === replaced) ? imputed[i % per]! : v;
    }
    return [out];
  },
};

/** The ai.onnx.ml operators of the fast path, by name. */
export const mlOps: Record<string, OpDef> = {
  TreeEnsembleRegressor: treeEnsembleRegressor,
  LabelEncoder: labelEncoder,
  SVMRegressor: svmRegressor,
  Scaler: scaler,
  FeatureVectorizer: featureVectorizer,
  Imputer: imputer,
  ...classifierOps,
};
