/**
 * A program that is nothing but dense layers one after the other (an autoencoder, an MLP: fused-dense.ts), run as
 * one WebAssembly function made for its shape: the layers' sizes, biases and activations are written into the
 * code, so each row's inputs are read once, every layer's outputs stay in registers (v128 locals) for the next,
 * and no loop runs over inputs or outputs. The weights stay data (one function serves every model of the shape).
 * A reconstruction model's per-row error against its input (reconstruction-error.ts) is computed in the same
 * function, so a device's rows go in and its scores come out, nothing in between.
 *
 * Each value is what the layers compute one by one (simd-dense.ts) bit for bit: the products summed in double in
 * input order from 0, rounded to float32 before the bias where the graph stores a MatMul's result before its Add,
 * the bias, the activation (the same Tanh code) and each layer's output rounded to float32; the error as
 * {@link reconstructionError} computes it (differences, squares or absolute values and their sum in double, in
 * column order, the mean rounded to float32).
 *
 * The bench's 7-4-7 autoencoder (Tanh): 60 rows through both layers and the squared error took 5.0 to 6.1 µs here
 * (2026-12-08, one thread, Node 24), against 6.5 to 8.0 µs for the two dense-layer calls and the error computed
 * after them; most of it is the Tanh (with a Relu instead, 2.3 to 2.6 µs against 5.4 to 6.6 µs).
 * A chain larger than {@link MAX_CHAIN_PRODUCTS} pairs of products a row keeps its layers as nodes of their own.
 */
import { LruCache } from '../../lru-cache';
import type { ReconstructionError } from '../reconstruction-error';
import type { DenseParams } from './fused-dense';
import type { GraphProgram } from './graph-program';
import { paddedWidth, tanhCode, type TanhLocals } from './simd-dense';
import {
  ADD,
  BLOCK,
  br,
  brIf,
  DEMOTE,
  END,
  F32_DEMOTE_F64,
  F32_STORE,
  F64,
  f64,
  F64_ABS,
  F64_ADD,
  F64_DIV,
  F64_MUL,
  F64_PROMOTE_F32,
  F64_SUB,
  F64X2_ADD,
  F64X2_MUL,
  F64X2_PMAX,
  F64X2_SPLAT,
  f64x2Lane,
  f32LoadAt,
  GE_U,
  get,
  I32,
  i32,
  instantiate,
  LOOP,
  MUL,
  PROMOTE_LOW,
  set,
  SHL,
  shuffle,
  store64Lane0At,
  tee,
  V128,
  v128LoadAt,
  V128_ZERO,
  align16,
  holdBytes,
  kernelModule,
  type KernelMemory,
} from './wasm-encoding';

/**
 * The most pairs of products (an input by two outputs) a chain computes for a row, over all its layers: its code
 * is about 12 bytes a pair, so at most about 50 KB. A larger chain runs layer by layer (simd-dense.ts).
 */
export const MAX_CHAIN_PRODUCTS = 4096;

/** What a chain's function writes for each row: its last layer's outputs, or their error against the row. */
export type ChainOutput = 'outputs' | ReconstructionError;

/** The dense layers of a program that is a chain of them and nothing else, ready to run. */
export interface DenseChain {
  /** Inputs of a row. */
  readonly k: number;
  /** Outputs of a row. */
  readonly n: number;
  /**
   * The last layer's outputs ([rows, n] float32) into `out`, or each row's `output` error against its input (then
   * n = k) into `out` ([rows]); false, computing nothing, where WebAssembly SIMD is not available.
   */
  run(x: Float32Array, rows: number, output: ChainOutput, out: Float32Array): boolean;
}

/**
 * The chain of `program`: its nodes are fused dense layers, the first reading the program's float32 input, each
 * next one the output of the one before, the last writing the program's output, within {@link MAX_CHAIN_PRODUCTS};
 * undefined for any other program.
 */
export function denseChainOf(program: GraphProgram): DenseChain | undefined {
  const { nodes } = program;
  if (nodes.length === 0 || program.inputType !== 'float') return undefined;
  let slot = program.input;
  let products = 0;
  const layers: DenseParams[] = [];
  for (const node of nodes) {
    if (node.domain !== 'fused' || node.op !== 'Dense' || node.inputs.length !== 1 || node.inputs[0] !== slot) {
      return undefined;
    }
    const layer = node.params as DenseParams;
    // A MatMul refuses float32 rows by weights of another type; a Gemm takes matrices only (the rows are one).
    if (layer.origin === 'MatMul' && layer.weightsType !== 'float') return undefined;
    if (layers.length > 0 && layers[layers.length - 1]!.n !== layer.k) return undefined;
    products += layer.k * (paddedWidth(layer.n) / 2);
    layers.push(layer);
    slot = node.outputs[0]!;
  }
  if (slot !== program.output || products > MAX_CHAIN_PRODUCTS) return undefined;
  return new Chain(layers);
}

/** A chain's layers, their weights and biases packed as its function reads them. */
class Chain implements DenseChain {
  readonly k: number;
  readonly n: number;
  private readonly shape: string;
  /** Each layer's weights [k, np] then its bias [np] (where it has one), as doubles. */
  private readonly params: Float64Array;

  constructor(private readonly layers: readonly DenseParams[]) {
    this.k = layers[0]!.k;
    this.n = layers[layers.length - 1]!.n;
    this.shape = layers
      .map((l) => `${l.k}x${l.n}${l.b ? 'b' : ''}${l.roundFirst ? 'r' : ''}${l.activation ?? ''}`)
      .join();
    this.params = new Float64Array(layers.reduce((sum, l) => sum + l.w.length + (l.b?.length ?? 0), 0));
    let at = 0;
    for (const { w, b } of layers) {
      this.params.set(w, at);
      at += w.length;
      if (b) this.params.set(b, at);
      at += b?.length ?? 0;
    }
  }

  run(x: Float32Array, rows: number, output: ChainOutput, out: Float32Array): boolean {
    const kernel = kernelOf(this.shape, this.layers);
    if (!kernel) return false;
    const width = output === 'outputs' ? this.n : 1;
    const xAt = align16(this.params.length * 8);
    const oAt = align16(xAt + rows * this.k * 4);
    // An odd last layer writes its padding output past the row, where the next row starts: 4 bytes to spare.
    if (holdBytes(kernel.exports.memory, oAt + rows * width * 4 + 4)) kernel.views();
    kernel.f64.set(this.params, 0);
    kernel.f32.set(x.length === rows * this.k ? x : x.subarray(0, rows * this.k), xAt / 4);
    kernel.exports[output](xAt, 0, oAt, rows);
    // Copied value by value: a device's few hundred values, where a view to copy from would be an object a call.
    const f32 = kernel.f32;
    const from = oAt / 4;
    for (let i = 0; i < rows * width; i++) out[i] = f32[from + i]!;
    return true;
  }
}

interface ChainExports {
  memory: KernelMemory;
  outputs(x: number, w: number, o: number, m: number): void;
  mse(x: number, w: number, o: number, m: number): void;
  mae(x: number, w: number, o: number, m: number): void;
}

/** An instance of a chain shape's module and views of its memory (made again when the memory grows). */
class ChainKernel {
  f32: Float32Array;
  f64: Float64Array;

  constructor(readonly exports: ChainExports) {
    this.f32 = new Float32Array(exports.memory.buffer);
    this.f64 = new Float64Array(exports.memory.buffer);
  }

  views(): void {
    this.f32 = new Float32Array(this.exports.memory.buffer);
    this.f64 = new Float64Array(this.exports.memory.buffer);
  }
}

/** Chain shapes whose module this thread keeps (each a few kilobytes of code and 64 KiB of memory and up). */
const KERNELS_KEPT = 64;
/** This thread's modules by shape; null where WebAssembly SIMD is not available. */
const kernels = new LruCache<string, ChainKernel | null>(KERNELS_KEPT);

function kernelOf(shape: string, layers: readonly DenseParams[]): ChainKernel | null {
  let kernel = kernels.get(shape);
  if (kernel === undefined) {
    const exports = instantiate<ChainExports>(chainModule(layers));
    kernel = exports && new ChainKernel(exports);
    kernels.set(shape, kernel);
  }
  return kernel;
}

// Each function's parameters: x, w, o, m (i32). Locals: i, xp (i32), sum, d (f64), the Tanh's seven v128 and one
// v128 per pair of each layer's outputs.
const [X, W, O, M, I, XP, SUM, D] = [0, 1, 2, 3, 4, 5, 6, 7];
const TANH_LOCALS: TanhLocals = [8, 9, 10, 11, 12, 13, 14];
const ACC = TANH_LOCALS[0];
const XV = 15;
const FIRST_PAIR = 16;

/** The module of a chain shape: one function for each {@link ChainOutput}. */
function chainModule(layers: readonly DenseParams[]): Uint8Array {
  // The v128 locals holding each layer's output pairs.
  const pairs: number[][] = [];
  let next = FIRST_PAIR;
  for (const { n } of layers) {
    pairs.push(Array.from({ length: paddedWidth(n) / 2 }, () => next++));
  }
  const k = layers[0]!.k;
  const layerCode: number[] = [];
  let at = 0;
  layers.forEach((layer, l) => {
    const np = paddedWidth(layer.n);
    const out = pairs[l]!;
    for (const q of out) layerCode.push(...V128_ZERO, ...set(q));
    for (let p = 0; p < layer.k; p++) {
      // The input p in both lanes: the row's value (float32 in memory), or the layer before's (a lane of a pair).
      if (l === 0) layerCode.push(...get(XP), ...f32LoadAt(p * 4), F64_PROMOTE_F32, ...F64X2_SPLAT);
      else {
        const from = pairs[l - 1]![p >> 1]!;
        layerCode.push(...get(from), ...get(from), ...shuffle(lanePair(p & 1)));
      }
      layerCode.push(...set(XV));
      out.forEach((q, j) => {
        layerCode.push(...get(q), ...get(XV), ...get(W), ...v128LoadAt(at + (p * np + 2 * j) * 8));
        layerCode.push(...F64X2_MUL, ...F64X2_ADD, ...set(q));
      });
    }
    at += layer.w.length * 8;
    out.forEach((q, j) => {
      if (layer.roundFirst) layerCode.push(...get(q), ...DEMOTE, ...PROMOTE_LOW, ...set(q));
      if (layer.b) layerCode.push(...get(q), ...get(W), ...v128LoadAt(at + j * 16), ...F64X2_ADD, ...set(q));
      if (layer.activation === 'tanh') layerCode.push(...get(q), ...set(ACC), ...tanhCode(TANH_LOCALS), ...get(ACC));
      // relu: pmax(0, acc) = 0 < acc ? acc : 0
      else if (layer.activation === 'relu') layerCode.push(...V128_ZERO, ...get(q), ...F64X2_PMAX);
      else layerCode.push(...get(q));
      // The layer's output, rounded to float32 as the graph stores it.
      layerCode.push(...DEMOTE, ...PROMOTE_LOW, ...set(q));
    });
    at += layer.b?.length ? layer.b.length * 8 : 0;
  });
  const last = pairs[pairs.length - 1]!;
  const n = layers[layers.length - 1]!.n;
  const outputs = last.flatMap((q, j) => [
    ...get(O), ...get(I), ...i32(n * 4), MUL, ADD, ...get(q), ...DEMOTE, ...store64Lane0At(j * 8),
  ]); // prettier-ignore
  const error = (kind: ReconstructionError) => [
    ...f64(0), ...set(SUM),
    ...Array.from({ length: k }, (_, j) => [
      ...get(SUM),
      ...get(XP), ...f32LoadAt(j * 4), F64_PROMOTE_F32, ...get(last[j >> 1]!), ...f64x2Lane(j & 1), F64_SUB,
      ...(kind === 'mse' ? [...tee(D), ...get(D), F64_MUL] : [F64_ABS]),
      F64_ADD, ...set(SUM),
    ]).flat(),
    ...get(O), ...get(I), ...i32(2), SHL, ADD, ...get(SUM), ...f64(k), F64_DIV, F32_DEMOTE_F64, ...F32_STORE,
  ]; // prettier-ignore
  const rowLoop = (write: number[]) => [
    ...i32(0), ...set(I),
    ...BLOCK, ...LOOP,
    ...get(I), ...get(M), GE_U, ...brIf(1),
    ...get(X), ...get(I), ...i32(k * 4), MUL, ADD, ...set(XP),
    ...layerCode,
    ...write,
    ...get(I), ...i32(1), ADD, ...set(I),
    ...br(0), END, END,
    END,
  ]; // prettier-ignore
  const locals = [
    [2, I32],
    [2, F64],
    [next - ACC, V128],
  ];
  const reconstructs = n === k;
  return kernelModule([
    { name: 'outputs', params: 4, locals, code: rowLoop(outputs) },
    // A chain whose output is not a row of its input's width has no error: an empty function stands in.
    { name: 'mse', params: 4, locals, code: reconstructs ? rowLoop(error('mse')) : [END] },
    { name: 'mae', params: 4, locals, code: reconstructs ? rowLoop(error('mae')) : [END] },
  ]);
}

/** The shuffle of a vector with itself that puts its lane `lane` (of two doubles) in both. */
const lanePair = (lane: number) => {
  const bytes = Array.from({ length: 8 }, (_, b) => lane * 8 + b);
  return [...bytes, ...bytes];
};
