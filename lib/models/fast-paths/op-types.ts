/**
 * The contract between the ONNX reader and the operator implementations of the compiled-graph fast path: an
 * operator validates its attributes once (`prepare`, in the compile thread) into plain, transferable parameters,
 * and evaluates tensors with them (`run`). Anything an operator cannot reproduce exactly throws UnsupportedGraph.
 */
import type { ProgramBody } from './graph-program';
import { UnsupportedGraph, type Tensor } from './tensor';

/** A decoded ONNX attribute; a graph attribute comes compiled. */
export type AttrValue = number | string | number[] | Float32Array | Float64Array | string[] | Tensor | ProgramBody;

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

/** Whether an attribute's value is a tensor (a TensorProto read), not a list, an array of numbers or a subgraph. */
export function isTensorValue(v: AttrValue | undefined): v is Tensor {
  return typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v) && 'type' in v;
}

/** A subgraph linked to its operators: its outputs from its inputs, in the running evaluation's scratch memory. */
export interface LinkedBody {
  run(inputs: readonly (Tensor | undefined)[]): Tensor[];
}

/** One operator of the fast path. */
export interface OpDef<P = unknown> {
  prepare(ctx: PrepareContext): P;
  /**
   * Turns the prepared parameters, plain data that crosses threads, into what `run` takes where the program is
   * linked: an operator with a subgraph (Scan) links its body here with `link`.
   */
  link?(params: P, link: (body: ProgramBody) => LinkedBody): P;
  run(params: P, inputs: readonly (Tensor | undefined)[]): Tensor[];
  /**
   * The outputs, by position, `run` does not compute for these parameters (a classifier's string labels): a graph
   * whose result depends on one is refused when it compiles.
   */
  absent?(params: P): number[];
}

/**
 * Reads attributes with defaults, failing with UnsupportedGraph-style messages on a wrong kind. A class (one small
 * object per node prepared) rather than an object of closures: a forest prepares thousands of nodes per model.
 */
class AttrReader {
  constructor(private readonly ctx: PrepareContext) {}

  int(name: string, fallback?: number): number {
    const v = this.ctx.attrs.get(name) ?? fallback;
    if (typeof v !== 'number') throw this.fail(name, 'an int');
    return v;
  }

  float(name: string, fallback?: number): number {
    const v = this.ctx.attrs.get(name) ?? fallback;
    if (typeof v !== 'number') throw this.fail(name, 'a float');
    return v;
  }

  string(name: string, fallback?: string): string {
    const v = this.ctx.attrs.get(name) ?? fallback;
    if (typeof v !== 'string') throw this.fail(name, 'a string');
    return v;
  }

  numbers(name: string, fallback?: number[]): number[] | Float32Array | Float64Array {
    const v = this.ctx.attrs.get(name) ?? fallback;
    if (v instanceof Float32Array || v instanceof Float64Array) return v;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'number')) throw this.fail(name, 'a list of numbers');
    return v as number[];
  }

  strings(name: string, fallback?: string[]): string[] {
    const v = this.ctx.attrs.get(name) ?? fallback;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw this.fail(name, 'a list of strings');
    return v as string[];
  }

  tensor(name: string): Tensor | undefined {
    const v = this.ctx.attrs.get(name);
    if (v === undefined) return undefined;
    if (!isTensorValue(v)) throw this.fail(name, 'a tensor');
    return v;
  }

  graph(name: string): ProgramBody {
    const v = this.ctx.attrs.get(name);
    if (typeof v !== 'object' || Array.isArray(v) || ArrayBuffer.isView(v) || !('nodes' in v)) {
      throw this.fail(name, 'a graph');
    }
    return v;
  }

  has(name: string): boolean {
    return this.ctx.attrs.has(name);
  }

  private fail(name: string, want: string): UnsupportedGraph {
    return new UnsupportedGraph(`${this.ctx.op}: attribute ${name} must be ${want}`);
  }
}

/** Reads `ctx`'s attributes with defaults, failing with UnsupportedGraph-style messages on a wrong kind. */
export function attrReader(ctx: PrepareContext): AttrReader {
  return new AttrReader(ctx);
}
