/**
 * The body of a compile thread: receives model bytes, answers with the compiled program or the reason the
 * fast path does not take the model. Runs off the worker's event loop, which stays free for workflow tasks
 * and heartbeats however long a large forest takes to read.
 */
import { parentPort } from 'node:worker_threads';
import { linkProgram } from './graph-evaluator';
import { compileGraph, type GraphProgram } from './graph-program';
import { UnsupportedGraph } from './tensor';
import type { CompileReply, CompileRequest } from './compile-threads';

parentPort?.on('message', (req: CompileRequest) => {
  let reply: CompileReply;
  try {
    const program = compileGraph(req.bytes, req.input, req.output);
    trial(program, req.features);
    reply = { id: req.id, program };
  } catch (err) {
    reply = { id: req.id, unsupported: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
  }
  parentPort?.postMessage(reply);
});

/**
 * Runs the program once on two rows of zeros: a graph whose shapes the fast path cannot follow (an operator
 * case it does not implement) is refused here, and keeps its own session, instead of failing devices later.
 */
function trial(program: GraphProgram, features: number): void {
  const out = linkProgram(program).run(new Float32Array(2 * features), 2, features);
  if (out.type !== 'float' && out.type !== 'double') throw new UnsupportedGraph(`output of type ${out.type}`);
  if (out.dims[0] !== 2 || out.dims.length > 2) throw new UnsupportedGraph(`output of shape [${out.dims.join(',')}]`);
}
