/**
 * Evaluates a compiled {@link GraphProgram} on a device's rows, in TypeScript: for the tens of rows a device has
 * in a window this beats any onnxruntime call (no session, no per-call overhead), and a program costs its
 * parameters' bytes instead of a session's megabytes.
 */
import { opsOf, type GraphProgram } from './graph-program';
import type { OpDef } from './op-types';
import { resetScratch, UnsupportedGraph, type Tensor } from './tensor';

/** A program linked to its operator implementations, ready to score rows. */
export interface LinkedProgram {
  readonly program: GraphProgram;
  /** The model's output for `rows` rows of `k` float32 features: [rows] or [rows, columns], float or double. */
  run(x: Float32Array, rows: number, k: number): Tensor;
}

/** Links a program (possibly received from a compile thread) to the operators that evaluate it. */
export function linkProgram(program: GraphProgram): LinkedProgram {
  const steps = program.nodes.map((n) => {
    const def: OpDef | undefined = opsOf(n.domain)[n.op];
    if (!def) throw new UnsupportedGraph(`operator ${n.domain}.${n.op}`);
    return { def, node: n, args: new Array<Tensor | undefined>(n.inputs.length) };
  });
  return {
    program,
    run(x, rows, k) {
      resetScratch();
      const values = new Array<Tensor | undefined>(program.slots);
      for (const [s, t] of program.constants) values[s] = t;
      values[program.input] = { type: 'float', dims: [rows, k], data: x };
      for (const { def, node, args } of steps) {
        for (let i = 0; i < args.length; i++) {
          const slot = node.inputs[i]!;
          args[i] = slot < 0 ? undefined : values[slot];
        }
        const outs = def.run(node.params, args);
        for (let j = 0; j < node.outputs.length; j++) {
          const o = node.outputs[j]!;
          if (o >= 0) values[o] = outs[j];
        }
      }
      const out = values[program.output];
      if (!out) throw new UnsupportedGraph('the output was not computed');
      // The result leaves scratch memory: the next evaluation reuses it.
      return { type: out.type, dims: out.dims, data: out.data.slice() };
    },
  };
}
