/**
 * A dense layer in WebAssembly SIMD (fused-dense.ts): float32 rows times constant weights, the bias, and a Tanh or
 * Relu, two output columns at a time in double lanes. Each lane computes exactly what the graph's nodes compute
 * one by one (linear-ops.ts, elementwise-ops.ts): the products of float32 inputs and weights summed in double in
 * input order from 0 (`f64x2.mul`, `f64x2.add`), rounded to float32 before the bias where the graph stores a
 * MatMul's result before its Add, the bias added in double, the sum rounded to float32 (`f32x4.demote_f64x2_zero`),
 * and a Relu as `x > 0 ? x : 0` (`f64x2.pmax` with 0). So those are the same bit for bit.
 *
 * The Tanh of a lane is computed in double from the float32 it follows, as tanh(v) = e / (e + 2) with e = expm1(2|v|)
 * and v's sign: expm1 by a reduction to r = 2|v| - n ln 2 (|r| <= ln 2 / 2; ln 2 in two parts, so n ln 2 is exact),
 * its Taylor series to the 13th power (the next term is under 5e-18 of r) and 2^n (n <= 58: |v| is capped at 20,
 * where tanh is 1 in double). That is within a few units in the last place of double of `Math.tanh`, so rounded to
 * float32 the two agree unless the exact value lies within about 1e-15 of the halfway point between two float32
 * values (about one value in 10^8); then they differ by one float32 unit. NaN stays NaN and ±0 stays ±0.
 *
 * The bench's 7-4-7 autoencoder's two layers on 60 rows took 6.5 to 6.9 µs here, copies in and out included, against
 * about 15 µs for the scalar loops with `Math.tanh` (one thread, 2026-12-06). Where WebAssembly SIMD is not
 * available {@link simdDense} returns false and the caller's scalar loop runs.
 */
import {
  ADD,
  AND,
  BLOCK,
  br,
  brIf,
  DEMOTE,
  END,
  F32_LOAD,
  F64_PROMOTE_F32,
  F64X2_ABS,
  F64X2_ADD,
  f64x2Const,
  F64X2_DIV,
  F64X2_MIN,
  F64X2_MUL,
  F64X2_NEAREST,
  F64X2_PMAX,
  F64X2_SPLAT,
  F64X2_SUB,
  GE_U,
  get,
  I32,
  i32,
  I32X4_TRUNC_SAT_F64X2_S_ZERO,
  I64X2_ADD,
  I64X2_EXTEND_LOW_I32X4_S,
  I64X2_SHL,
  IF,
  instantiate,
  LOOP,
  MUL,
  PROMOTE_LOW,
  set,
  SHL,
  V128,
  V128_BITSELECT,
  V128_LOAD,
  V128_STORE64_LANE0,
  v128Const,
  V128_ZERO,
  align16,
  kernelModule,
  KernelViews,
  type KernelMemory,
} from './wasm-encoding';

/** What a dense layer multiplies, adds and applies, as {@link simdDense} takes it. */
export interface DenseLayer {
  /** Inputs per row. */
  k: number;
  /** Outputs per row. */
  n: number;
  /** The weights input by input: [k, np], np = n rounded up to even, the padding 0. */
  w: Float64Array;
  /** The bias, [np]; none for a layer without one. */
  b: Float64Array | undefined;
  /** Whether the product is rounded to the output type before the bias is added (a MatMul then an Add). */
  roundFirst: boolean;
  activation: 'tanh' | 'relu' | undefined;
}

/** Outputs rounded up to a whole number of double pairs. */
export const paddedWidth = (n: number) => (n + 1) & ~1;

// dense(x, w, b, o, m, k, np, flags): parameters 0-7; locals 8-13 i32 (i, j, p, xp, wp, op), 14-20 v128.
const [X, W, B, O, M, K, NP, FLAGS, I, J, P, XP, WP, OP] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
const [ACC, V, U, N, R, T, S] = [14, 15, 16, 17, 18, 19, 20];
const HAS_BIAS = 1;
const ROUND_FIRST = 2;
const TANH = 4;
const RELU = 8;

const LN2_HI = 6.9314718036912381649e-1;
const LN2_LO = 1.9082149292705877e-10;
/** 1/i! for i = 13 down to 2: expm1's Taylor coefficients after the first, highest first (Horner's order). */
const EXPM1_TERMS = Array.from({ length: 12 }, (_, t) => {
  let f = 1;
  for (let i = 2; i <= 13 - t; i++) f *= i;
  return 1 / f;
});
/** The Tanh's constants, made once (a chain's code holds them once per pair of outputs per row). */
const TWENTY = f64x2Const(20);
const INV_LN2 = f64x2Const(1 / Math.LN2);
const LN2_HI_2 = f64x2Const(LN2_HI);
const LN2_LO_2 = f64x2Const(LN2_LO);
const ONE = f64x2Const(1);
const TWO = f64x2Const(2);
const EXPM1_CONSTS = EXPM1_TERMS.map(f64x2Const);
const SIGN_BITS = v128Const(new Uint8Array(new BigUint64Array([1n << 63n, 1n << 63n]).buffer));
const ONE_BITS = v128Const(new Uint8Array(new Float64Array([1, 1]).buffer));

/** The seven v128 locals {@link tanhCode} uses: `acc`, then six of scratch. */
export type TanhLocals = readonly [number, number, number, number, number, number, number];

/**
 * The local `acc` := tanh of `acc` rounded to float32, in double (see the file's comment), with six v128 locals of
 * scratch (`v`, `u`, `n`, `r`, `t`, `s`), as statements that each leave the stack empty: the dense layer's and, one
 * step of several at a time, the dense chain's (simd-chain.ts).
 */
function tanhStatements([ACC, V, U, N, R, T, S]: TanhLocals): number[][] {
  return [
    // v = float32(acc); u = 2 min(|v|, 20)
    [...get(ACC), ...DEMOTE, ...PROMOTE_LOW, ...set(V)],
    [...get(V), ...F64X2_ABS, ...TWENTY, ...F64X2_MIN, ...set(U)],
    [...get(U), ...get(U), ...F64X2_ADD, ...set(U)],
    // n = nearest(u / ln 2); r = u - n ln 2
    [...get(U), ...INV_LN2, ...F64X2_MUL, ...F64X2_NEAREST, ...set(N)],
    [...get(U), ...get(N), ...LN2_HI_2, ...F64X2_MUL, ...F64X2_SUB,
      ...get(N), ...LN2_LO_2, ...F64X2_MUL, ...F64X2_SUB, ...set(R)],
    // t = expm1(r) = r + r² (1/2! + r (1/3! + ... r / 13!)), by Horner's rule
    [...EXPM1_CONSTS[0]!, ...set(T)],
    ...EXPM1_CONSTS.slice(1).map((c) => [...get(T), ...get(R), ...F64X2_MUL, ...c, ...F64X2_ADD, ...set(T)]),
    [...get(T), ...get(R), ...F64X2_MUL, ...get(R), ...F64X2_MUL, ...get(R), ...F64X2_ADD, ...set(T)],
    // s = 2^n (n's bits in the exponent of 1.0); e = expm1(u) = s t + (s - 1)
    [...get(N), ...I32X4_TRUNC_SAT_F64X2_S_ZERO, ...I64X2_EXTEND_LOW_I32X4_S, ...i32(52), ...I64X2_SHL,
      ...ONE_BITS, ...I64X2_ADD, ...set(S)],
    [...get(S), ...get(T), ...F64X2_MUL, ...get(S), ...ONE, ...F64X2_SUB, ...F64X2_ADD, ...set(T)],
    // tanh = e / (e + 2), with v's sign
    [...get(T), ...get(T), ...TWO, ...F64X2_ADD, ...F64X2_DIV, ...set(T)],
    [...get(V), ...get(T), ...SIGN_BITS, ...V128_BITSELECT, ...set(ACC)],
  ]; // prettier-ignore
}

/**
 * The Tanh of several accumulators (each with its own scratch locals), as statements that each leave the stack empty,
 * one step of each accumulator in turn: the same operations on each as alone, so the same bits, in an order that lets
 * the CPU overlap their chains of dependent steps (the expm1's twelve) instead of waiting out each one's latency.
 */
export function tanhSteps(...sets: readonly TanhLocals[]): number[][] {
  const each = sets.map(tanhStatements);
  return each[0]!.flatMap((_, i) => each.map((statements) => statements[i]!));
}

/** {@link tanhSteps} as one sequence of code. */
export const tanhCode = (...sets: readonly TanhLocals[]): number[] => tanhSteps(...sets).flat();

const CODE = [
  ...i32(0), ...set(I),
  ...BLOCK, ...LOOP,
  ...get(I), ...get(M), GE_U, ...brIf(1),
  // xp = x + i k 4; op = o + i np 4
  ...get(X), ...get(I), ...get(K), MUL, ...i32(2), SHL, ADD, ...set(XP),
  ...get(O), ...get(I), ...get(NP), MUL, ...i32(2), SHL, ADD, ...set(OP),
  ...i32(0), ...set(J),
  ...BLOCK, ...LOOP,
  ...get(J), ...get(NP), GE_U, ...brIf(1),
  // acc = sum over p of double(x[i][p]) * w[p][j .. j+1], from 0
  ...V128_ZERO, ...set(ACC),
  ...get(W), ...get(J), ...i32(3), SHL, ADD, ...set(WP),
  ...i32(0), ...set(P),
  ...BLOCK, ...LOOP,
  ...get(P), ...get(K), GE_U, ...brIf(1),
  ...get(ACC),
  ...get(XP), ...get(P), ...i32(2), SHL, ADD, ...F32_LOAD, F64_PROMOTE_F32, ...F64X2_SPLAT,
  ...get(WP), ...V128_LOAD, ...F64X2_MUL, ...F64X2_ADD, ...set(ACC),
  ...get(WP), ...get(NP), ...i32(3), SHL, ADD, ...set(WP),
  ...get(P), ...i32(1), ADD, ...set(P),
  ...br(0), END, END,
  ...get(FLAGS), ...i32(ROUND_FIRST), AND, ...IF,
  ...get(ACC), ...DEMOTE, ...PROMOTE_LOW, ...set(ACC),
  END,
  ...get(FLAGS), ...i32(HAS_BIAS), AND, ...IF,
  ...get(ACC), ...get(B), ...get(J), ...i32(3), SHL, ADD, ...V128_LOAD, ...F64X2_ADD, ...set(ACC),
  END,
  ...get(FLAGS), ...i32(TANH), AND, ...IF, ...tanhCode([ACC, V, U, N, R, T, S]), END,
  // relu: pmax(0, acc) = 0 < acc ? acc : 0
  ...get(FLAGS), ...i32(RELU), AND, ...IF,
  ...V128_ZERO, ...get(ACC), ...F64X2_PMAX, ...set(ACC),
  END,
  // o[i][j .. j+1] = float32(acc)
  ...get(OP), ...get(J), ...i32(2), SHL, ADD, ...get(ACC), ...DEMOTE, ...V128_STORE64_LANE0,
  ...get(J), ...i32(2), ADD, ...set(J),
  ...br(0), END, END,
  ...get(I), ...i32(1), ADD, ...set(I),
  ...br(0), END, END,
  END,
]; // prettier-ignore

const MODULE = kernelModule([
  {
    name: 'dense',
    params: 8,
    locals: [
      [6, I32],
      [7, V128],
    ],
    code: CODE,
  },
]);

interface Kernel {
  memory: KernelMemory;
  dense(x: number, w: number, b: number, o: number, m: number, k: number, np: number, flags: number): void;
}

/** This thread's instance and views of its memory; null without SIMD. */
let kernel: KernelViews<Kernel> | null | undefined;

function instance(): KernelViews<Kernel> | null {
  if (kernel === undefined) {
    const exports = instantiate<Kernel>(MODULE);
    kernel = exports && new KernelViews(exports);
  }
  return kernel;
}

/**
 * The layer's outputs for the `m` rows of `x` ([m, k] float32) into `out` ([m, n] float32); false, computing
 * nothing, where WebAssembly SIMD is not available.
 */
export function simdDense(x: Float32Array, m: number, layer: DenseLayer, out: Float32Array): boolean {
  const w = instance();
  if (!w) return false;
  const { k, n, b, activation } = layer;
  const np = paddedWidth(n);
  const bAt = k * np * 8;
  const xAt = align16(bAt + np * 8);
  const oAt = align16(xAt + m * k * 4);
  const bytes = oAt + m * np * 4;
  w.hold(bytes);
  w.f64.set(layer.w, 0);
  if (b) w.f64.set(b, bAt / 8);
  const f32 = w.f32;
  f32.set(x.length === m * k ? x : x.subarray(0, m * k), xAt / 4);
  const flags =
    (b ? HAS_BIAS : 0) |
    (layer.roundFirst ? ROUND_FIRST : 0) |
    (activation === 'tanh' ? TANH : activation === 'relu' ? RELU : 0);
  w.exports.dense(xAt, 0, bAt, oAt, m, k, np, flags);
  const oAt4 = oAt / 4;
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[i * n + j] = f32[oAt4 + i * np + j]!;
  return true;
}
