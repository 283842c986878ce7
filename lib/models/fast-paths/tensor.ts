/**
 * The tensors the compiled-graph fast path computes with: plain typed arrays and a shape. float is stored in a
 * Float32Array so every operator's result is rounded to float32 as onnxruntime's is; int64 in a Float64Array
 * (exact below 2^53, which covers indices, node ids and shapes); bool in a Uint8Array.
 */
import { UnsupportedGraph } from '../../shared/errors';

/** An element type the fast path evaluates. */
export type DType = 'float' | 'double' | 'int64' | 'bool';

/** A dense row-major tensor. */
export interface Tensor {
  type: DType;
  dims: number[];
  data: Float32Array | Float64Array | Uint8Array;
}

export { UnsupportedGraph };

/** Number of elements of a shape. */
export function size(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/**
 * Scratch memory for one evaluation: a tensor an operator computes is a view into a few large buffers that
 * are reused from one evaluation to the next, so scoring a device allocates almost nothing (typed-array
 * allocation and its garbage collection otherwise dominate the time of small graphs). Evaluations never
 * interleave (they are synchronous), so one arena serves the whole thread.
 */
class Arena {
  private f32 = new Float32Array(1 << 16);
  private f64 = new Float64Array(1 << 15);
  private u8 = new Uint8Array(1 << 16);
  private used = { f32: 0, f64: 0, u8: 0 };

  reset(): void {
    this.used = { f32: 0, f64: 0, u8: 0 };
  }

  take(type: DType, n: number): Tensor['data'] {
    const key = type === 'float' ? 'f32' : type === 'bool' ? 'u8' : 'f64';
    let buf = this[key];
    const at = this.used[key];
    if (at + n > buf.length) {
      // Earlier views keep the old buffer alive until the evaluation ends; later ones use the larger one.
      const Ctor = buf.constructor as new (n: number) => typeof buf;
      buf = new Ctor(Math.max(2 * buf.length, 2 * n));
      (this as unknown as Record<typeof key, typeof buf>)[key] = buf;
      this.used[key] = n;
      return buf.subarray(0, n);
    }
    this.used[key] = at + n;
    return buf.subarray(at, at + n);
  }
}

const arena = new Arena();

/** Starts an evaluation: tensors from {@link alloc} before this call may be overwritten from now on. */
export function resetScratch(): void {
  arena.reset();
}

/** A tensor of a type and shape in scratch memory, valid until the next {@link resetScratch}; not zeroed. */
export function alloc(type: DType, dims: number[]): Tensor {
  return { type, dims, data: arena.take(type, size(dims)) };
}

/** Fails unless `t` has one of the `types`; the message names the operator. */
export function expectType(t: Tensor, types: readonly DType[], op: string): void {
  if (!types.includes(t.type)) throw new UnsupportedGraph(`${op}: element type ${t.type} is not supported`);
}

/** The shape two or more shapes broadcast to, numpy-style. */
export function broadcastDims(shapes: readonly (readonly number[])[], op: string): number[] {
  let rank = 0;
  for (const s of shapes) if (s.length > rank) rank = s.length;
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const j = rank - s.length + i;
      const d = s[i]!;
      if (d === out[j] || d === 1) continue;
      if (out[j] === 1) out[j] = d;
      else throw new UnsupportedGraph(`${op}: shapes [${shapes.map((x) => x.join(',')).join('] [')}] do not broadcast`);
    }
  }
  return out;
}

/**
 * For each element of a tensor of shape `outDims`, the flat index of the element of a tensor of shape `dims`
 * that broadcasts to it; undefined when `dims` equals `outDims` (identity), so callers can take the fast loop.
 */
export function broadcastIndex(dims: readonly number[], outDims: readonly number[]): Int32Array | undefined {
  const rank = outDims.length;
  if (dims.length === rank && dims.every((d, i) => d === outDims[i])) return undefined;
  const n = size(outDims);
  const index = new Int32Array(n);
  if (size(dims) === 1) return index;
  const strides = new Array<number>(rank).fill(0);
  let stride = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    const j = rank - dims.length + i;
    strides[j] = dims[i] === 1 ? 0 : stride;
    stride *= dims[i]!;
  }
  const counter = new Array<number>(rank).fill(0);
  let at = 0;
  for (let k = 0; k < n; k++) {
    index[k] = at;
    for (let j = rank - 1; j >= 0; j--) {
      counter[j]! += 1;
      at += strides[j]!;
      if (counter[j]! < outDims[j]!) break;
      at -= strides[j]! * outDims[j]!;
      counter[j] = 0;
    }
  }
  return index;
}
