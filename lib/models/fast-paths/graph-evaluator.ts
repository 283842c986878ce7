/**
 * Evaluates a compiled {@link GraphProgram} on a device's rows, in TypeScript: for the tens of rows a device has
 * in a window this beats any onnxruntime call (no session, no per-call overhead), and a program costs its
 * parameters' bytes instead of a session's megabytes.
 */
import { opsOf, type GraphProgram, type ProgramBody, type ProgramNode } from './graph-program';
import type { LinkedBody, OpDef } from './op-types';
import type { ReconstructionError } from '../reconstruction-error';
import { denseChainOf, type DenseChain } from './simd-chain';
import { alloc, resetScratch, UnsupportedGraph, type Tensor } from './tensor';

/** A program linked to its operator implementations, ready to score rows. */
export interface LinkedProgram {
  readonly program: GraphProgram;
  /**
   * The model's output for `rows` rows of `k` float32 features (converted to double for a double input): [rows] or
   * [rows, columns], float or double.
   */
  run(x: Float32Array, rows: number, k: number): Tensor;
  /**
   * {@link run} without the copy: the output in this thread's scratch memory, valid until the next evaluation on
   * the thread (for a caller that reads it at once, and copies what it keeps).
   */
  runInScratch(x: Float32Array, rows: number, k: number): Tensor;
  /**
   * Each row's reconstruction error (`kind`) of the model's output against `x` ([rows, k] float32), computed with
   * the output in one call where the program is a chain of dense layers from k inputs to k outputs (simd-chain.ts);
   * undefined otherwise (then {@link runInScratch} and read the output).
   */
  reconstructionError(x: Float32Array, rows: number, k: number, kind: ReconstructionError): Float32Array | undefined;
}

interface Step {
  def: OpDef;
  params: unknown;
  node: ProgramNode;
  args: (Tensor | undefined)[];
}

/** Links a program (possibly received from a compile thread) to the operators that evaluate it. */
export function linkProgram(program: GraphProgram): LinkedProgram {
  return new Linked(program, stepsOf(program.nodes), denseChainOf(program));
}

/**
 * A linked program: a class, so that each of the thousands a worker holds is one small object, its methods shared
 * on the prototype rather than closures of its own.
 */
class Linked implements LinkedProgram {
  constructor(
    readonly program: GraphProgram,
    private readonly steps: Step[],
    private readonly chain: DenseChain | undefined,
  ) {}

  runInScratch(x: Float32Array, rows: number, k: number): Tensor {
    const { program, chain } = this;
    resetScratch();
    if (chain?.k === k) {
      const out = alloc('float', [rows, chain.n]);
      if (chain.run(x, rows, 'outputs', out.data as Float32Array)) return out;
    }
    const values = new Array<Tensor | undefined>(program.slots);
    for (const [s, t] of program.constants) values[s] = t;
    if (program.inputType === 'double') {
      const input = alloc('double', [rows, k]);
      input.data.set(x);
      values[program.input] = input;
    } else values[program.input] = { type: 'float', dims: [rows, k], data: x };
    runSteps(this.steps, values);
    const out = values[program.output];
    if (!out) throw new UnsupportedGraph('the output was not computed');
    return out;
  }

  reconstructionError(x: Float32Array, rows: number, k: number, kind: ReconstructionError): Float32Array | undefined {
    const { chain } = this;
    if (chain?.k !== k || chain.n !== k) return undefined;
    const scores = new Float32Array(rows);
    return chain.run(x, rows, kind, scores) ? scores : undefined;
  }

  run(x: Float32Array, rows: number, k: number): Tensor {
    const out = this.runInScratch(x, rows, k);
    // The result leaves scratch memory: the next evaluation reuses it.
    return { type: out.type, dims: out.dims, data: out.data.slice() };
  }
}

/** Links a subgraph (a Scan's body); its results are in the scratch memory of the evaluation running it. */
function linkBody(body: ProgramBody): LinkedBody {
  const steps = stepsOf(body.nodes);
  return {
    run(inputs) {
      const values = new Array<Tensor | undefined>(body.slots);
      for (const [s, t] of body.constants) values[s] = t;
      for (let i = 0; i < body.inputs.length; i++) values[body.inputs[i]!] = inputs[i];
      runSteps(steps, values);
      return body.outputs.map((s) => {
        const out = values[s];
        if (!out) throw new UnsupportedGraph('a subgraph output was not computed');
        return out;
      });
    },
  };
}

function stepsOf(nodes: readonly ProgramNode[]): Step[] {
  return nodes.map((node) => {
    const def: OpDef | undefined = opsOf(node.domain)[node.op];
    if (!def) throw new UnsupportedGraph(`operator ${node.domain}.${node.op}`);
    const params = def.link ? def.link(node.params, linkBody) : node.params;
    return { def, params, node, args: new Array<Tensor | undefined>(node.inputs.length) };
  });
}

function runSteps(steps: readonly Step[], values: (Tensor | undefined)[]): void {
  for (const { def, params, node, args } of steps) {
    for (let i = 0; i < args.length; i++) {
      const slot = node.inputs[i]!;
      args[i] = slot < 0 ? undefined : values[slot];
    }
    const outs = def.run(params, args);
    for (let j = 0; j < node.outputs.length; j++) {
      const o = node.outputs[j]!;
      if (o >= 0) values[o] = outs[j];
    }
  }
}
