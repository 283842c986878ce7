/**
 * Chooses the onnxruntime execution providers of a pool. The `gpu` pool needs the CUDA provider library that
 * onnxruntime-node's install script downloads (skipped by default here); without it onnxruntime would quietly
 * run on CPU, so the choice is made explicitly and said out loud.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Pool } from '../names';

/** What a pool worker will run its models with, and why. */
export interface ProviderChoice {
  pool: Pool;
  executionProviders: ('cpu' | 'cuda')[];
  /** One line for the worker's log: which provider and the reason. */
  decision: string;
}

/** What the gpu pool does when CUDA is missing: refuse to start, or run on CPU (for single-machine setups). */
export type GpuFallback = 'refuse' | 'cpu';

/** Thrown when the gpu pool cannot use CUDA and falling back to CPU was not allowed. */
export class CudaUnavailable extends Error {
  override readonly name = 'CudaUnavailable';
}

/** The CUDA provider library onnxruntime-node loads, or `undefined` when it is not installed. */
export function cudaProviderLibrary(): string | undefined {
  const bindingDir = join(
    dirname(require.resolve('onnxruntime-node/package.json')),
    'bin',
    'napi-v6',
    process.platform,
    process.arch,
  );
  const lib = join(bindingDir, 'libonnxruntime_providers_cuda.so');
  return existsSync(lib) ? lib : undefined;
}

/** The providers for `pool`; throws CudaUnavailable for the gpu pool without CUDA unless `fallback` is 'cpu'. */
export function chooseProviders(pool: Pool, fallback: GpuFallback = 'refuse'): ProviderChoice {
  if (pool === 'cpu') return { pool, executionProviders: ['cpu'], decision: 'cpu pool: CPU execution provider' };
  const lib = cudaProviderLibrary();
  if (lib) return { pool, executionProviders: ['cuda', 'cpu'], decision: `gpu pool: CUDA execution provider (${lib})` };
  const why =
    'the CUDA provider library libonnxruntime_providers_cuda.so is not installed ' +
    '(reinstall onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=cuda12 on a machine with CUDA 12 and cuDNN 9)';
  if (fallback === 'cpu') {
    return {
      pool,
      executionProviders: ['cpu'],
      decision: `gpu pool: running on the CPU execution provider because ${why}`,
    };
  }
  throw new CudaUnavailable(`gpu pool refuses to start: ${why}; pass --gpu-fallback cpu to run it on CPU`);
}
