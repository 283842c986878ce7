/**
 * Compiles one model for the fast path and tries the program once, answering with the program or the reason the
 * fast path does not take the model. Run in a compile thread for large models and on the calling thread for small
 * ones (compiled-models.ts), the same way in both.
 */
import { linkProgram } from './graph-evaluator';
import { compileGraph, type GraphProgram } from './graph-program';
import { UnsupportedGraph } from './tensor';

/** The result of compiling one model. */
export type CompileResult = { program: GraphProgram } | { unsupported: string };

/** Compiles `bytes` into a program computing `output` from `input` ([rows, features] float32). */
export function compileModel(bytes: Uint8Array, input: string, output: string, features: number): CompileResult {
  try {
    const program = compileGraph(bytes, input, output);
    trial(program, features);
    return { program };
  } catch (err) {
    return { unsupported: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
  }
}

/**
 * Runs the program once on two rows of zeros: a graph whose shapes the fast path cannot follow (an operator
 * case it does not implement) is refused here, and keeps its own session, instead of failing devices later.
 */
function trial(program: GraphProgram, features: number): void {
  const out = linkProgram(program).run(new Float32Array(2 * features), 2, features);
  if (out.type !== 'float' && out.type !== 'double') throw new UnsupportedGraph(`output of type ${out.type}`);
  // [rows, k], or a reconstruction flattened row by row to [rows * features, 1] (skl2onnx's MLPRegressor).
  const flattened = out.dims.length === 2 && out.dims[0] === 2 * features && out.dims[1] === 1;
  if ((out.dims[0] !== 2 && !flattened) || out.dims.length > 2) {
    throw new UnsupportedGraph(`output of shape [${out.dims.join(',')}]`);
  }
}
