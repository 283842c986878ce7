/**
 * The contract between the ONNX reader and the operator implementations of the compiled-graph fast path: an
 * operator validates its attributes once (`prepare`, in the compile thread) into plain, transferable parameters,
 * and evaluates tensors with them (`run`). Anything an operator cannot reproduce exactly throws UnsupportedGraph.
 */
import { UnsupportedGraph, type Tensor } from './tensor';

/** A decoded ONNX attribute. */
export type AttrValue = number | string | number[] | Float32Array | Float64Array | string[] | Tensor;

/** What an operator sees when it is prepared. */
export interface PrepareContext {
  op: string;
  attrs: ReadonlyMap<string, AttrValue>;
  /** The node's inputs that are initializers or constants, by position (undefined for computed inputs). */
  constants: readonly (Tensor | undefined)[];
  /** Number of inputs the node names (empty names count: an omitted optional input). */
  inputCount: number;
  /** The opset version of the node's domain. */
  opset: number;
}

/** One operator of the fast path. */
export interface OpDef<P = unknown> {
  prepare(ctx: PrepareContext): P;
  run(params: P, inputs: readonly (Tensor | undefined)[]): Tensor[];
}

/** Reads attributes with defaults, failing with UnsupportedGraph-style messages on a wrong kind. */
export function attrReader(ctx: PrepareContext) {
  const get = ctx.attrs;
  const fail = (name: string, want: string) => new UnsupportedGraph(`${ctx.op}: attribute ${name} must be ${want}`);
  return {
    int(name: string, fallback?: number): number {
      const v = get.get(name) ?? fallback;
      if (typeof v !== 'number') throw fail(name, 'an int');
      return v;
    },
    float(name: string, fallback?: number): number {
      const v = get.get(name) ?? fallback;
      if (typeof v !== 'number') throw fail(name, 'a float');
      return v;
    },
    string(name: string, fallback?: string): string {
      const v = get.get(name) ?? fallback;
      if (typeof v !== 'string') throw fail(name, 'a string');
      return v;
    },
    numbers(name: string, fallback?: number[]): number[] | Float32Array | Float64Array {
      const v = get.get(name) ?? fallback;
      if (v instanceof Float32Array || v instanceof Float64Array) return v;
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'number')) throw fail(name, 'a list of numbers');
      return v as number[];
    },
    strings(name: string, fallback?: string[]): string[] {
      const v = get.get(name) ?? fallback;
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw fail(name, 'a list of strings');
      return v as string[];
    },
    tensor(name: string): Tensor | undefined {
      const v = get.get(name);
      if (v === undefined) return undefined;
      if (typeof v !== 'object' || Array.isArray(v) || ArrayBuffer.isView(v)) throw fail(name, 'a tensor');
      return v;
    },
    has(name: string): boolean {
      return get.has(name);
    },
  };
}
