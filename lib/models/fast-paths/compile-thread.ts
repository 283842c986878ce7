/**
 * The body of a compile thread: receives model bytes, answers with the compiled program or the reason the
 * fast path does not take the model. Runs off the worker's event loop, which stays free for workflow tasks
 * and heartbeats however long a large forest takes to read.
 */
import { parentPort } from 'node:worker_threads';
import { compileModel } from './compile-model';
import type { CompileReply, CompileRequest } from './compile-threads';

parentPort?.on('message', (req: CompileRequest) => {
  const reply: CompileReply = { id: req.id, ...compileModel(req.bytes, req.input, req.output, req.features) };
  parentPort?.postMessage(reply);
});
