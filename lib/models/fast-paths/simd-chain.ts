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
 * Two rows at a time: their code interleaved statement by statement, and within a row every pair of a layer's
 * outputs through the Tanh a step of each in turn, so the CPU overlaps what would otherwise be one long chain of
 * dependent steps (the Tanh's expm1 above all) after another.
 *
 * The bench's 7-4-7 autoencoder (Tanh): 60 rows through both layers and the squared error took 3.2 to 3.5 µs here
 * (2026-12-08, one thread, Node 24), against 6.5 to 7.1 µs for the two dense-layer calls and the error computed
 * after them, and 4.5 to 4.6 µs for the chain a row at a time and a pair at a time. Making a shape's module takes 1
 * to 6 ms (a 32-16-32 chain's about 9 ms), once per thread.
 * A chain larger than {@link MAX_CHAIN_PRODUCTS} pairs of products a row keeps its layers as nodes of their own.
 */
import type { ReconstructionError } from '../reconstruction-error';
import type { DenseParams } from './fused-dense';
import type { GraphProgram } from './graph-program';
import { paddedWidth, tanhSteps, type TanhLocals } from './simd-dense';
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
  IF,
  LT_U,
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
  kernelModule,
  type KernelFunction,
  KernelViews,
  type KernelMemory,
} from './wasm-encoding';

/**
 * The most pairs of products (an input by two outputs) a chain computes for a row, over all its layers: its code
 * is about 18 bytes a pair for each of the three copies of a row's code (two rows interleaved, and an odd last row),
 * so at most about 60 KB, made in about 20 ms. A larger chain runs layer by layer (simd-dense.ts).
 */
export const MAX_CHAIN_PRODUCTS = 1024;

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
  /** The modules this chain ran in, by output (looked up once, not by a key string for every device). */
  private readonly kernels: { [output in ChainOutput]?: KernelViews<ChainExports> | null } = {};

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
    if (output !== 'outputs' && this.n !== this.k) {
      throw new RangeError(`a reconstruction error of ${this.n} outputs against ${this.k} inputs`);
    }
    const kernel = (this.kernels[output] ??= kernelOf(this.shape, this.layers, output));
    if (!kernel) return false;
    const width = output === 'outputs' ? this.n : 1;
    const xAt = align16(this.params.length * 8);
    const oAt = align16(xAt + rows * this.k * 4);
    // An odd last layer writes its padding output past the row, where the next row starts: 4 bytes to spare.
    kernel.hold(oAt + rows * width * 4 + 4);
    kernel.f64.set(this.params, 0);
    kernel.f32.set(x.length === rows * this.k ? x : x.subarray(0, rows * this.k), xAt / 4);
    kernel.exports.run(xAt, 0, oAt, rows);
    // Copied value by value: a device's few hundred values, where a view to copy from would be an object a call.
    const f32 = kernel.f32;
    const from = oAt / 4;
    for (let i = 0; i < rows * width; i++) out[i] = f32[from + i]!;
    return true;
  }
}

interface ChainExports {
  memory: KernelMemory;
  run(x: number, w: number, o: number, m: number): void;
}

/**
 * Chain shapes (and outputs) a thread makes a module for, each a few to tens of kilobytes of code and 64 KiB of
 * memory and up, made in a few milliseconds (see the file's comment). The shapes past them run layer by layer, as
 * any chain did before, rather than making modules again and again: a fleet of that many network shapes is not one
 * this was made for, and a worker restarted keeps the shapes it meets first.
 */
const KERNELS_MADE = 256;
/** This thread's modules by shape and output; null where WebAssembly SIMD is not available. */
const kernels = new Map<string, KernelViews<ChainExports> | null>();

/** This thread's instance of the module of a chain shape writing `output`, made the first time it is asked for. */
function kernelOf(
  shape: string,
  layers: readonly DenseParams[],
  output: ChainOutput,
): KernelViews<ChainExports> | null {
  const key = `${shape}:${output}`;
  let kernel = kernels.get(key);
  if (kernel === undefined) {
    if (kernels.size >= KERNELS_MADE) return null;
    const exports = instantiate<ChainExports>(chainModule(layers, output));
    kernel = exports && new KernelViews(exports);
    kernels.set(key, kernel);
  }
  return kernel;
}

// Each function's parameters: x, w, o, m (i32); then the loop's row (i32) and the locals of two rows (RowLocals),
// whose code is interleaved, a statement of each in turn, so that their chains of dependent steps overlap.
const [X, W, O, M, I] = [0, 1, 2, 3, 4];

type Scratch = [number, number, number, number, number, number];

/** The locals of one row's code. */
interface RowLocals {
  /** i32: the row's index, and the address of its inputs. */
  row: number;
  xp: number;
  /** f64: the error's sum, and a difference. */
  sum: number;
  d: number;
  /** v128: an input in both lanes, each layer's output pairs, and each Tanh pair's scratch. */
  xv: number;
  pairs: number[][];
  scratch: Scratch[];
}

/** The module of a chain shape writing `output`: one function, `run(x, w, o, m)`. */
function chainModule(layers: readonly DenseParams[], output: ChainOutput): Uint8Array {
  // Locals are declared by type: the i32s, then the f64s, then the v128s.
  const rowCount = [0, 1];
  let next = I + 1;
  const ints = rowCount.map(() => [next++, next++] as const);
  const floats = rowCount.map(() => [next++, next++] as const);
  const firstVector = next;
  const widest = Math.max(...layers.map((l) => (l.activation === 'tanh' ? paddedWidth(l.n) / 2 : 0)));
  const rows: RowLocals[] = rowCount.map((r) => ({
    row: ints[r]![0],
    xp: ints[r]![1],
    sum: floats[r]![0],
    d: floats[r]![1],
    xv: next++,
    pairs: layers.map((l) => Array.from({ length: paddedWidth(l.n) / 2 }, () => next++)),
    // Each pair's Tanh scratch (shared by the layers, which run one after the other).
    scratch: Array.from({ length: widest }, (): Scratch => [next++, next++, next++, next++, next++, next++]),
  }));
  const locals: KernelFunction['locals'] = [
    [1 + 2 * rowCount.length, I32],
    [2 * rowCount.length, F64],
    [next - firstVector, V128],
  ];
  const [a, b] = rows.map((r) => rowStatements(layers, r, output)) as [RowCode, RowCode];
  // Code appended part by part (a chain's is tens of thousands of bytes: spreading it into array literals cost more
  // than compiling it).
  const code: number[] = [];
  const emit = (...parts: readonly (readonly number[])[]) => {
    for (const part of parts) for (const byte of part) code.push(byte);
  };
  emit(i32(0), set(I), BLOCK, LOOP);
  // while i + 2 <= m: two rows a turn, their statements interleaved, then their writes one row after the other (an
  // odd last output written as a pair runs into the next row's first, which that row's write then sets)
  emit(get(M), get(I), i32(2), [ADD, LT_U], brIf(1));
  emit(get(I), set(a.row), get(I), i32(1), [ADD], set(b.row));
  a.compute.forEach((statement, i) => emit(statement, b.compute[i]!));
  emit(a.write, b.write);
  emit(get(I), i32(2), [ADD], set(I), br(0), [END, END]);
  // the last row of an odd count
  emit(get(I), get(M), [LT_U], IF, get(I), set(a.row), ...a.compute, a.write, [END, END]);
  return kernelModule([{ name: 'run', params: 4, locals, code }]);
}

/** One row's code: the local holding its index, the statements that compute its output, and those that write it. */
interface RowCode {
  row: number;
  compute: number[][];
  write: number[];
}

/**
 * One row's code in the row's locals: its statements up to its output (each leaving the stack empty, so that two
 * rows' can be interleaved) and the statements that write it.
 */
function rowStatements(layers: readonly DenseParams[], locals: RowLocals, output: ChainOutput): RowCode {
  const { row, xp, sum, d, xv, pairs, scratch } = locals;
  const k = layers[0]!.k;
  const compute: number[][] = [[...get(X), ...get(row), ...i32(k * 4), MUL, ADD, ...set(xp)]];
  let at = 0;
  layers.forEach((layer, l) => {
    const np = paddedWidth(layer.n);
    const out = pairs[l]!;
    for (const q of out) compute.push([...V128_ZERO, ...set(q)]);
    for (let p = 0; p < layer.k; p++) {
      // The input p in both lanes: the row's value (float32 in memory), or the layer before's (a lane of a pair).
      const from = l === 0 ? -1 : pairs[l - 1]![p >> 1]!;
      compute.push([
        ...(l === 0
          ? [...get(xp), ...f32LoadAt(p * 4), F64_PROMOTE_F32, ...F64X2_SPLAT]
          : [...get(from), ...get(from), ...shuffle(lanePair(p & 1))]),
        ...set(xv),
      ]);
      out.forEach((q, j) => {
        compute.push([
          ...get(q), ...get(xv), ...get(W), ...v128LoadAt(at + (p * np + 2 * j) * 8),
          ...F64X2_MUL, ...F64X2_ADD, ...set(q),
        ]); // prettier-ignore
      });
    }
    at += layer.w.length * 8;
    out.forEach((q, j) => {
      if (layer.roundFirst) compute.push([...get(q), ...DEMOTE, ...PROMOTE_LOW, ...set(q)]);
      if (layer.b) compute.push([...get(q), ...get(W), ...v128LoadAt(at + j * 16), ...F64X2_ADD, ...set(q)]);
      // relu: pmax(0, acc) = 0 < acc ? acc : 0
      if (layer.activation === 'relu') compute.push([...V128_ZERO, ...get(q), ...F64X2_PMAX, ...set(q)]);
    });
    // Every pair's Tanh at once, a step of each in turn (see tanhSteps).
    if (layer.activation === 'tanh') compute.push(...tanhSteps(...out.map((q, j): TanhLocals => [q, ...scratch[j]!])));
    // The layer's outputs, rounded to float32 as the graph stores them.
    for (const q of out) compute.push([...get(q), ...DEMOTE, ...PROMOTE_LOW, ...set(q)]);
    at += layer.b?.length ? layer.b.length * 8 : 0;
  });
  const last = pairs[pairs.length - 1]!;
  if (output === 'outputs') {
    const n = layers[layers.length - 1]!.n;
    const write = last.flatMap((q, j) => [
      ...get(O), ...get(row), ...i32(n * 4), MUL, ADD, ...get(q), ...DEMOTE, ...store64Lane0At(j * 8),
    ]); // prettier-ignore
    return { row, compute, write };
  }
  compute.push([...f64(0), ...set(sum)]);
  for (let j = 0; j < k; j++) {
    compute.push([
      ...get(sum),
      ...get(xp), ...f32LoadAt(j * 4), F64_PROMOTE_F32, ...get(last[j >> 1]!), ...f64x2Lane(j & 1), F64_SUB,
      ...(output === 'mse' ? [...tee(d), ...get(d), F64_MUL] : [F64_ABS]),
      F64_ADD, ...set(sum),
    ]); // prettier-ignore
  }
  const write = [
    ...get(O),
    ...get(row),
    ...i32(2),
    SHL,
    ADD,
    ...get(sum),
    ...f64(k),
    F64_DIV,
    F32_DEMOTE_F64,
    ...F32_STORE,
  ];
  return { row, compute, write };
}

/** The shuffle of a vector with itself that puts its lane `lane` (of two doubles) in both. */
const lanePair = (lane: number) => {
  const bytes = Array.from({ length: 8 }, (_, b) => lane * 8 + b);
  return [...bytes, ...bytes];
};
