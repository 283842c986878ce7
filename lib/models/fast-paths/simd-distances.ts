/**
 * The fused nearest-neighbour node's work in WebAssembly SIMD (fused-neighbors.ts): float32 rows' Euclidean
 * distances to float32 samples, and each row's k nearest.
 *
 * Distances, four samples at a time. Each lane computes exactly what the scalar loop computes: the difference in
 * float32 (`f32x4.sub`, as `Math.fround(s - x)`), its square added in double in feature order (`f64x2.mul`,
 * `f64x2.add` from 0: a float32's square is exact in double), the sum rounded to float32
 * (`f32x4.demote_f64x2_zero`) and its square root in float32 (`f32x4.sqrt`, correctly rounded as
 * `Math.fround(Math.sqrt(v))`). So the distances are the same bit for bit: 60 rows to 240 samples of 7 features in
 * 36 µs, against 230 µs for the scalar loop (one thread, 2026-12-04).
 *
 * The k nearest, as TopK keeps the k smallest (an equal distance's lower index first), with few branches on the
 * data: TopK's heap (linear-ops.ts) costs about 2 µs a line of 240 across many devices' models, most of it
 * mispredicted branches. See `SELECT` below; a line with NaN is left to the caller's heap.
 *
 * The module is a few hundred bytes written below, instantiated once per thread on first use; where WebAssembly
 * SIMD is not available (`WebAssembly.validate` refuses the module) {@link simdNearest} is undefined and the
 * scalar loop and the heap run.
 */

import {
  ADD,
  AND,
  ANY_TRUE,
  BLOCK,
  br,
  brIf,
  CTZ,
  DEMOTE,
  DIV_U,
  END,
  EQZ,
  F32,
  F32_EQ,
  F32_LOAD,
  F32_MAX,
  F32_STORE,
  F32X4_EQ,
  F32X4_LE,
  F32X4_LT,
  F32X4_MAX,
  F32X4_MIN,
  F32X4_NE,
  F32X4_SPLAT,
  F32X4_SQRT,
  F32X4_SUB,
  f32x4Lane,
  F64X2_ADD,
  F64X2_MUL,
  GE_U,
  get,
  I32,
  I32_LOAD,
  I32_STORE,
  i32,
  I32X4_BITMASK,
  I32X4_LT_S,
  I32X4_SPLAT,
  I32X4_SUB,
  i32x4Lane,
  IF,
  instantiate,
  LOOP,
  LT_U,
  MUL,
  PROMOTE_LOW,
  set,
  SHL,
  SHR_U,
  shuffle,
  SUB,
  tee,
  f32,
  V128,
  V128_AND,
  V128_LOAD,
  V128_OR,
  V128_STORE,
  V128_STORE_ANY,
  V128_ZERO,
  v128Const,
  align16,
  holdBytes,
  kernelModule,
  type KernelMemory,
} from './wasm-encoding';

const F32X4_INF = v128Const(new Uint8Array(new Float32Array(4).fill(Infinity).buffer));
const F32X4_NEG_INF = v128Const(new Uint8Array(new Float32Array(4).fill(-Infinity).buffer));
const I32X4_MAX = v128Const(new Uint8Array(new Int32Array(4).fill(0x7fffffff).buffer));
/** Bytes 8 to 15 (lanes 2 and 3 of four floats) in the low half. */
const HIGH_TO_LOW = shuffle([8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
/** The low halves of two vectors side by side. */
const LOWS = shuffle([0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]);

// distances(s, x, o, n, f, groups): parameters 0-5; locals 6-10 i32 (r, g, c, sp, xp), 11-14 v128 (lo, hi, d, t).
const [S, X, O, N, F, GROUPS, R, G, C, SP, XP, LO, HI, D, T] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
/** The double lanes on the stack squared and added to local `acc`. */
const addSquares = (acc: number) => [...tee(T), ...get(T), ...F64X2_MUL, ...get(acc), ...F64X2_ADD, ...set(acc)];
const CODE = [
  ...i32(0), ...set(R),
  ...BLOCK, ...LOOP,
  ...get(R), ...get(N), GE_U, ...brIf(1),
  ...i32(0), ...set(G),
  ...BLOCK, ...LOOP,
  ...get(G), ...get(GROUPS), GE_U, ...brIf(1),
  ...V128_ZERO, ...set(LO), ...V128_ZERO, ...set(HI),
  // sp = s + g * 16; xp = x + r * f * 4
  ...get(S), ...get(G), ...i32(4), SHL, ADD, ...set(SP),
  ...get(X), ...get(R), ...get(F), MUL, ...i32(2), SHL, ADD, ...set(XP),
  ...i32(0), ...set(C),
  ...BLOCK, ...LOOP,
  ...get(C), ...get(F), GE_U, ...brIf(1),
  // d = samples[c][4g .. 4g+3] - x[r][c], in float32
  ...get(SP), ...V128_LOAD, ...get(XP), ...F32_LOAD, ...F32X4_SPLAT, ...F32X4_SUB, ...set(D),
  // lo += double(d[0..1])², hi += double(d[2..3])²
  ...get(D), ...PROMOTE_LOW, ...addSquares(LO),
  ...get(D), ...get(D), ...HIGH_TO_LOW, ...PROMOTE_LOW, ...addSquares(HI),
  // sp += groups * 16 (the next feature's samples); xp += 4; c += 1
  ...get(SP), ...get(GROUPS), ...i32(4), SHL, ADD, ...set(SP),
  ...get(XP), ...i32(4), ADD, ...set(XP),
  ...get(C), ...i32(1), ADD, ...set(C),
  ...br(0), END, END,
  // o[(r * groups + g) * 16 ..] = sqrt(float32(lo) ++ float32(hi))
  ...get(O), ...get(R), ...get(GROUPS), MUL, ...get(G), ADD, ...i32(4), SHL, ADD,
  ...get(LO), ...DEMOTE, ...get(HI), ...DEMOTE, ...LOWS, ...F32X4_SQRT, ...V128_STORE,
  ...get(G), ...i32(1), ADD, ...set(G),
  ...br(0), END, END,
  ...get(R), ...i32(1), ADD, ...set(R),
  ...br(0), END, END,
  END,
]; // prettier-ignore

/**
 * nearest(lines, stride, n, k, outV, outI, candV, candI, cap): per line of distances (line r at lines + r * stride
 * floats, its lanes past the samples +inf), its k smallest in order, an equal distance's lower index first, into
 * outV and outI at r * k; where the line holds NaN, or more than `cap` distances are at most the bound below,
 * outI[r * k] is -1 and the caller keeps that line's k (TopK's heap, whose order for NaN this does not copy).
 *
 * 1. A bound: the line's vectors in ceil(k / 4) blocks; each block's minimum per lane is the least of a set of
 *    its own, so the greatest of those 4 * ceil(k / 4) >= k minima is at least the k-th smallest distance.
 * 2. The candidates, in index order: every distance at most the bound (the k smallest are among them).
 * 3. Each candidate's rank: the candidates smaller than it, or equal with a lower index, counted four at a time,
 *    without a branch on the data; a candidate of rank below k is written at its rank.
 */
const [LINES, STRIDE, NN, K, OUT_V, OUT_I, CAND_V, CAND_I, CAP] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
const [RR, BASE, GG, BB, Q, GI, TO, CC, MASK, J, I, RANK, JJ, T0] = [
  9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
];
const [TMAX, BMIN, NANS, VI, II, ACC] = [23, 24, 25, 26, 27, 28];
/** Address of element `index` (a local) of the 4-byte array at `array` (a local). */
const at4 = (array: number, index: number) => [...get(array), ...get(index), ...i32(2), SHL, ADD];
const SELECT = [
  ...get(STRIDE), ...i32(2), SHR_U, ...set(GG),
  ...get(K), ...i32(3), ADD, ...i32(2), SHR_U, ...set(BB),
  ...i32(0), ...set(RR),
  ...BLOCK, ...LOOP, // rows
  ...get(RR), ...get(NN), GE_U, ...brIf(1),
  ...get(LINES), ...get(RR), ...get(STRIDE), MUL, ...i32(2), SHL, ADD, ...set(BASE),
  ...BLOCK, // done with the row
  ...BLOCK, // the row falls back
  // 1. The bound, and whether the line holds NaN.
  ...F32X4_NEG_INF, ...set(TMAX), ...V128_ZERO, ...set(NANS),
  ...i32(0), ...set(Q),
  ...BLOCK, ...LOOP, // blocks
  ...get(Q), ...get(BB), GE_U, ...brIf(1),
  ...get(Q), ...get(GG), MUL, ...get(BB), DIV_U, ...set(GI),
  ...get(Q), ...i32(1), ADD, ...get(GG), MUL, ...get(BB), DIV_U, ...set(TO),
  ...F32X4_INF, ...set(BMIN),
  ...BLOCK, ...LOOP, // the block's vectors
  ...get(GI), ...get(TO), GE_U, ...brIf(1),
  ...get(BASE), ...get(GI), ...i32(4), SHL, ADD, ...V128_LOAD, ...tee(VI),
  ...get(BMIN), ...F32X4_MIN, ...set(BMIN),
  ...get(NANS), ...get(VI), ...get(VI), ...F32X4_NE, ...V128_OR, ...set(NANS),
  ...get(GI), ...i32(1), ADD, ...set(GI),
  ...br(0), END, END,
  ...get(TMAX), ...get(BMIN), ...F32X4_MAX, ...set(TMAX),
  ...get(Q), ...i32(1), ADD, ...set(Q),
  ...br(0), END, END,
  ...get(NANS), ...ANY_TRUE, ...brIf(0),
  ...get(TMAX), ...f32x4Lane(0), ...get(TMAX), ...f32x4Lane(1), F32_MAX,
  ...get(TMAX), ...f32x4Lane(2), F32_MAX, ...get(TMAX), ...f32x4Lane(3), F32_MAX, ...set(T0),
  // An infinite bound would let the lanes past the samples in.
  ...get(T0), ...f32(Infinity), F32_EQ, ...brIf(0),
  // 2. The candidates.
  ...i32(0), ...set(CC),
  ...get(T0), ...F32X4_SPLAT, ...set(BMIN),
  ...i32(0), ...set(GI),
  ...BLOCK, ...LOOP, // vectors
  ...get(GI), ...get(GG), GE_U, ...brIf(1),
  ...get(BASE), ...get(GI), ...i32(4), SHL, ADD, ...V128_LOAD, ...get(BMIN), ...F32X4_LE, ...I32X4_BITMASK, ...set(MASK),
  ...BLOCK, ...LOOP, // its lanes at most the bound
  ...get(MASK), EQZ, ...brIf(1),
  ...get(CC), ...get(CAP), GE_U, ...brIf(4), // too many: the row falls back
  ...get(GI), ...i32(2), SHL, ...get(MASK), CTZ, ADD, ...set(J),
  ...at4(CAND_V, CC), ...at4(BASE, J), ...F32_LOAD, ...F32_STORE,
  ...at4(CAND_I, CC), ...get(J), ...I32_STORE,
  ...get(CC), ...i32(1), ADD, ...set(CC),
  ...get(MASK), ...get(MASK), ...i32(1), SUB, AND, ...set(MASK),
  ...br(0), END, END,
  ...get(GI), ...i32(1), ADD, ...set(GI),
  ...br(0), END, END,
  // Four entries past the last that no candidate counts: +inf at the greatest index.
  ...at4(CAND_V, CC), ...F32X4_INF, ...V128_STORE_ANY,
  ...at4(CAND_I, CC), ...I32X4_MAX, ...V128_STORE_ANY,
  // 3. Ranks.
  ...i32(0), ...set(I),
  ...BLOCK, ...LOOP, // candidates
  ...get(I), ...get(CC), GE_U, ...brIf(1),
  ...at4(CAND_V, I), ...F32_LOAD, ...F32X4_SPLAT, ...set(VI),
  ...at4(CAND_I, I), ...I32_LOAD, ...I32X4_SPLAT, ...set(II),
  ...V128_ZERO, ...set(ACC),
  ...i32(0), ...set(JJ),
  ...BLOCK, ...LOOP, // the candidates four at a time
  ...get(JJ), ...get(CC), GE_U, ...brIf(1),
  ...get(ACC),
  ...at4(CAND_V, JJ), ...V128_LOAD, ...get(VI), ...F32X4_LT,
  ...at4(CAND_V, JJ), ...V128_LOAD, ...get(VI), ...F32X4_EQ,
  ...at4(CAND_I, JJ), ...V128_LOAD, ...get(II), ...I32X4_LT_S,
  ...V128_AND, ...V128_OR, ...I32X4_SUB, ...set(ACC),
  ...get(JJ), ...i32(4), ADD, ...set(JJ),
  ...br(0), END, END,
  ...get(ACC), ...i32x4Lane(0), ...get(ACC), ...i32x4Lane(1), ADD,
  ...get(ACC), ...i32x4Lane(2), ADD, ...get(ACC), ...i32x4Lane(3), ADD, ...set(RANK),
  ...get(RANK), ...get(K), LT_U, ...IF,
  ...get(OUT_V), ...get(RR), ...get(K), MUL, ...get(RANK), ADD, ...i32(2), SHL, ADD, ...at4(CAND_V, I), ...F32_LOAD, ...F32_STORE,
  ...get(OUT_I), ...get(RR), ...get(K), MUL, ...get(RANK), ADD, ...i32(2), SHL, ADD, ...at4(CAND_I, I), ...I32_LOAD, ...I32_STORE,
  END,
  ...get(I), ...i32(1), ADD, ...set(I),
  ...br(0), END, END,
  ...br(1), // done
  END, // the row falls back
  ...get(OUT_I), ...get(RR), ...get(K), MUL, ...i32(2), SHL, ADD, ...i32(-1), ...I32_STORE,
  END, // done with the row
  ...get(RR), ...i32(1), ADD, ...set(RR),
  ...br(0), END, END,
  END,
]; // prettier-ignore

const MODULE = kernelModule([
  {
    name: 'distances',
    params: 6,
    locals: [
      [5, I32],
      [4, V128],
    ],
    code: CODE,
  },
  {
    name: 'nearest',
    params: 9,
    locals: [
      [13, I32],
      [1, F32],
      [6, V128],
    ],
    code: SELECT,
  },
]);

interface Kernel {
  memory: KernelMemory;
  distances(s: number, x: number, o: number, n: number, f: number, groups: number): void;
  nearest(
    lines: number,
    stride: number,
    n: number,
    k: number,
    outV: number,
    outI: number,
    candV: number,
    candI: number,
    cap: number,
  ): void;
}

/** This thread's instance; null where WebAssembly SIMD is not available. */
let kernel: Kernel | null | undefined;

function instance(): Kernel | null {
  if (kernel === undefined) {
    kernel = instantiate<Kernel>(MODULE);
  }
  return kernel;
}

/** Whether this thread computes distances in WebAssembly SIMD. */
export function simdAvailable(): boolean {
  return instance() !== null;
}

/** The most candidates a line's selection ranks (their count squared is its cost); a line with more falls back. */
const MAX_CANDIDATES = 128;

/** What {@link simdNearest} computed, views valid until the next call on this thread. */
export interface SimdNearest {
  /** Row r's distance to sample j at r * stride + j (stride: m rounded up to 4; the lanes past m are not samples). */
  lines: Float32Array;
  stride: number;
  /** Row r's k nearest distances at r * k, nearest first. */
  values: Float32Array;
  /**
   * Their sample indices; -1 at r * k where the caller keeps the row's k from its line (a line with NaN, or with
   * more than MAX_CANDIDATES distances under the bound).
   */
  indices: Int32Array;
}

/**
 * Each of the `n` rows of `x` ([n, f] float32) to each of the `m` samples ([m, f] float32), and each row's `k`
 * nearest, an equal distance's lower index first; undefined where WebAssembly SIMD is not available.
 */
export function simdNearest(
  x: Float32Array,
  n: number,
  f: number,
  samples: Float32Array,
  m: number,
  k: number,
): SimdNearest | undefined {
  const w = instance();
  if (!w) return undefined;
  const stride = (m + 3) & ~3;
  const xAt = f * stride * 4;
  const linesAt = xAt + align16(n * f * 4);
  const valuesAt = linesAt + n * stride * 4;
  const indicesAt = valuesAt + align16(n * k * 4);
  const candidatesAt = indicesAt + align16(n * k * 4);
  const candidateIndicesAt = candidatesAt + align16((MAX_CANDIDATES + 4) * 4);
  const bytes = candidateIndicesAt + (MAX_CANDIDATES + 4) * 4;
  holdBytes(w.memory, bytes);
  const buffer = w.memory.buffer;
  // The samples feature by feature, each feature's m values padded to the stride with +inf: a padded lane's
  // distance is +inf (NaN for a row that is not finite), which no selection keeps.
  const s = new Float32Array(buffer, 0, f * stride);
  for (let c = 0; c < f; c++) {
    const row = c * stride;
    for (let j = 0; j < m; j++) s[row + j] = samples[j * f + c]!;
    for (let j = m; j < stride; j++) s[row + j] = Infinity;
  }
  new Float32Array(buffer, xAt, n * f).set(x.subarray(0, n * f));
  w.distances(0, xAt, linesAt, n, f, stride >> 2);
  w.nearest(linesAt, stride, n, k, valuesAt, indicesAt, candidatesAt, candidateIndicesAt, MAX_CANDIDATES);
  return {
    lines: new Float32Array(buffer, linesAt, n * stride),
    stride,
    values: new Float32Array(buffer, valuesAt, n * k),
    indices: new Int32Array(buffer, indicesAt, n * k),
  };
}
