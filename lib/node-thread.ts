/**
 * Starts a worker thread running one of fleetscore's modules: through tsx's CommonJS hook when running from
 * TypeScript sources (the CLI, tests and the bench all do), directly from compiled JavaScript otherwise. Used by
 * the compile threads of the fast path and by the shard threads of the cpu pool.
 */
import { Worker } from 'node:worker_threads';

const BOOT = `
const { workerData } = require('node:worker_threads');
if (workerData.file.endsWith('.ts')) require(require.resolve('tsx/cjs/api', { paths: [workerData.root] })).register();
require(workerData.file);
`;

/**
 * The young generation of a thread's heap, MB. Reading and compiling models allocates short-lived arrays fast: a
 * cold pass over 1,000 isolation forests (25 trees) on two shard threads took 5.4 to 6.5 s with 96, against 6.7 to
 * 8.1 s with 48 (about V8's default) and 6.1 to 6.9 s with 192, three runs each, interleaved.
 */
const YOUNG_GENERATION_MB = 96;

/**
 * Starts `module` (a path without extension, beside the caller: `__dirname + '/compile-thread'`) in a new thread;
 * it reads `data` as `workerData.data`. The thread gets a copy of `process.env` as this module sees it (under jest,
 * the test's own environment, where a test puts a store's credentials).
 */
export function startModuleThread(module: string, data?: unknown): Worker {
  const ext = __filename.endsWith('.ts') ? '.ts' : '.js';
  return new Worker(BOOT, {
    eval: true,
    env: process.env,
    resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    workerData: { file: require.resolve(`${module}${ext}`), root: __dirname, data },
  });
}
