/**
 * The WebAssembly binary encoding the fast path's SIMD kernels are written in (simd-distances.ts, simd-dense.ts):
 * each kernel is a few hundred bytes of instructions assembled here at load time, so no build step or binary file
 * ships with the package. Only what those kernels use is here: integer and float scalar instructions, control
 * flow, memory access and the SIMD (0xfd-prefixed) instructions, by their opcodes in the WebAssembly 2.0 spec.
 */

/** Operand bytes of an unsigned LEB128 integer. */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Operand bytes of a signed LEB128 integer (an i32.const's). */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b];
    out.push(b | 0x80);
  }
}

/** A section: its id, then its length and contents. */
const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
const vec = (items: number[][]) => [...leb(items.length), ...items.flat()];

// Value types.
export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;

// Instructions (core and 0xfd-prefixed SIMD).
/**
 * `op` with a local's index, the arrays of the first indices made once: a chain's code (simd-chain.ts) reads and
 * writes locals tens of thousands of times, and callers only copy these arrays into their code.
 */
function localOp(op: number): (i: number) => readonly number[] {
  const made = Array.from({ length: 256 }, (_, i) => Object.freeze([op, ...leb(i)]));
  return (i) => made[i] ?? [op, ...leb(i)];
}
export const get = localOp(0x20);
export const set = localOp(0x21);
export const tee = localOp(0x22);
export const i32 = (v: number) => [0x41, ...sleb(v)];
export const ADD = 0x6a;
export const SUB = 0x6b;
export const MUL = 0x6c;
export const DIV_U = 0x6e;
export const AND = 0x71;
export const SHL = 0x74;
export const SHR_U = 0x76;
export const CTZ = 0x68;
export const EQZ = 0x45;
export const LT_U = 0x49;
export const GE_U = 0x4f;
export const F32_EQ = 0x5b;
export const F32_MAX = 0x97;
export const F64_PROMOTE_F32 = 0xbb;
export const F32_DEMOTE_F64 = 0xb6;
export const F64_ABS = 0x99;
export const F64_ADD = 0xa0;
export const F64_SUB = 0xa1;
export const F64_MUL = 0xa2;
export const F64_DIV = 0xa3;
export const f64 = (v: number) => [0x44, ...new Uint8Array(new Float64Array([v]).buffer)];
export const IF = [0x04, 0x40];
export const BLOCK = [0x02, 0x40];
export const LOOP = [0x03, 0x40];
export const END = 0x0b;
export const brIf = (depth: number) => [0x0d, depth];
export const br = (depth: number) => [0x0c, depth];
export const F32_LOAD = [0x2a, 2, 0];
/** A float32 at a constant byte offset from the address on the stack. */
export const f32LoadAt = (offset: number) => [0x2a, 2, ...leb(offset)];
export const I32_LOAD = [0x28, 2, 0];
export const F32_STORE = [0x38, 2, 0];
export const I32_STORE = [0x36, 2, 0];
export const f32 = (v: number) => [0x43, ...new Uint8Array(new Float32Array([v]).buffer)];
export const simd = (op: number) => [0xfd, ...leb(op)];
export const V128_LOAD = [...simd(0x00), 4, 0];
/** A vector at a constant byte offset from the address on the stack (8-byte aligned: two doubles). */
export const v128LoadAt = (offset: number) => [...simd(0x00), 3, ...leb(offset)];
export const V128_STORE = [...simd(0x0b), 4, 0];
/** A vector of any alignment (the candidates' tail). */
export const V128_STORE_ANY = [...simd(0x0b), 0, 0];
/** The low 8 bytes of a vector (lane 0 of two), at any alignment. */
export const V128_STORE64_LANE0 = [...simd(0x5b), 0, 0, 0];
/** {@link V128_STORE64_LANE0} at a constant byte offset from the address on the stack. */
export const store64Lane0At = (offset: number) => [...simd(0x5b), 0, ...leb(offset), 0];
export const v128Const = (bytes: Uint8Array) => [...simd(0x0c), ...Array.from(bytes)];
/** Two doubles, both `v`. */
export const f64x2Const = (v: number) => v128Const(new Uint8Array(new Float64Array([v, v]).buffer));
export const V128_ZERO = v128Const(new Uint8Array(16));
export const shuffle = (lanes: number[]) => [...simd(0x0d), ...lanes];
export const I32X4_SPLAT = simd(0x11);
export const F32X4_SPLAT = simd(0x13);
export const F64X2_SPLAT = simd(0x14);
export const f64x2Lane = (lane: number) => [...simd(0x21), lane];
export const i32x4Lane = (lane: number) => [...simd(0x1b), lane];
export const f32x4Lane = (lane: number) => [...simd(0x1f), lane];
export const I32X4_LT_S = simd(0x39);
export const F32X4_EQ = simd(0x41);
export const F32X4_NE = simd(0x42);
export const F32X4_LT = simd(0x43);
export const F32X4_LE = simd(0x45);
export const V128_AND = simd(0x4e);
export const V128_OR = simd(0x50);
/** `bitselect(a, b, mask)`: a's bits where mask's are set, b's elsewhere. */
export const V128_BITSELECT = simd(0x52);
export const ANY_TRUE = simd(0x53);
export const DEMOTE = simd(0x5e);
export const PROMOTE_LOW = simd(0x5f);
export const F64X2_NEAREST = simd(0x94);
export const I32X4_BITMASK = simd(0xa4);
export const I32X4_SUB = simd(0xb1);
export const I64X2_EXTEND_LOW_I32X4_S = simd(0xc7);
export const I64X2_SHL = simd(0xcb);
export const I64X2_ADD = simd(0xce);
export const F32X4_SQRT = simd(0xe3);
export const F32X4_SUB = simd(0xe5);
export const F32X4_MIN = simd(0xe8);
export const F32X4_MAX = simd(0xe9);
export const F64X2_ABS = simd(0xec);
export const F64X2_ADD = simd(0xf0);
export const F64X2_SUB = simd(0xf1);
export const F64X2_MUL = simd(0xf2);
export const F64X2_DIV = simd(0xf3);
export const F64X2_MIN = simd(0xf4);
/** `pmax(a, b)`: `a < b ? b : a`, lane by lane (NaN in b gives a). */
export const F64X2_PMAX = simd(0xf7);
export const I32X4_TRUNC_SAT_F64X2_S_ZERO = simd(0xfc);

/** An export's name. */
const name = (text: string) => [...leb(text.length), ...Array.from(text, (ch) => ch.charCodeAt(0))];

/** One exported function of a kernel module: its name, i32 parameters, locals (count and type each) and code. */
export interface KernelFunction {
  name: string;
  params: number;
  /** Each group of locals: how many, and their type. */
  locals: readonly (readonly [count: number, type: number])[];
  code: number[];
}

/**
 * A module of `functions` (each taking i32 parameters and returning nothing) and one memory of one page to start,
 * exported as `memory` beside them.
 */
export function kernelModule(functions: readonly KernelFunction[]): Uint8Array {
  // The functions' code (tens of kilobytes for a chain, simd-chain.ts) is copied once, into the module's bytes, not
  // spread into arrays section by section.
  const bodies = functions.map(({ locals, code }) => {
    const head = vec(locals.map(([count, type]) => [...leb(count), type]));
    return [leb(head.length + code.length), head, code];
  });
  const codeParts = [leb(functions.length), ...bodies.flat(1)];
  const codeSize = codeParts.reduce((n, part) => n + part.length, 0);
  const parts: (readonly number[])[] = [
    [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    section(1, vec(functions.map((f) => [0x60, ...vec(new Array<number[]>(f.params).fill([I32])), 0]))),
    section(3, vec(functions.map((_, i) => [i]))),
    section(5, vec([[0x00, 1]])),
    section(7, vec([...functions.map((f, i) => [...name(f.name), 0x00, i]), [...name('memory'), 0x02, 0]])),
    [10, ...leb(codeSize)],
    ...codeParts,
  ];
  const bytes = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

/** A kernel's memory, as its instance exports it. */
export interface KernelMemory {
  buffer: ArrayBuffer;
  grow(pages: number): number;
}

/** Grows `memory` to hold at least `bytes`; whether it grew (views of its old buffer are then detached). */
export function holdBytes(memory: KernelMemory, bytes: number): boolean {
  const have = memory.buffer.byteLength;
  if (bytes <= have) return false;
  memory.grow(Math.ceil((bytes - have) / 65_536));
  return true;
}

/** A kernel instance's exports, with float32 and float64 views of its memory, made again whenever it grows. */
export class KernelViews<T extends { memory: KernelMemory }> {
  f32: Float32Array;
  f64: Float64Array;

  constructor(readonly exports: T) {
    this.f32 = new Float32Array(exports.memory.buffer);
    this.f64 = new Float64Array(exports.memory.buffer);
  }

  /** Grows the memory to hold at least `bytes` (the views with it). */
  hold(bytes: number): void {
    if (!holdBytes(this.exports.memory, bytes)) return;
    this.f32 = new Float32Array(this.exports.memory.buffer);
    this.f64 = new Float64Array(this.exports.memory.buffer);
  }
}

/** `bytes` rounded up to a whole number of vectors (16 bytes). */
export const align16 = (bytes: number) => (bytes + 15) & ~15;

/** The part of the WebAssembly JavaScript API used here (the project's type libraries do not declare it). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The exports of a new instance of `module`; null where the engine refuses it (no SIMD). */
export function instantiate<T>(module: Uint8Array): T | null {
  return wasm.validate(module) ? (new wasm.Instance(new wasm.Module(module)).exports as T) : null;
}
