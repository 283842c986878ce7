/**
 * Chooses the onnxruntime execution providers of a pool. The `gpu` pool needs the CUDA provider library that
 * onnxruntime-node's install script downloads (skipped by default here) and a working CUDA; asking onnxruntime
 * for CUDA proves neither, since it places nodes it cannot run on CUDA on the CPU without a word. So the gpu pool
 * runs a probe session with profiling on and uses CUDA only when the probe's nodes really ran there; otherwise it
 * refuses to start, or runs on CPU when told to, and says which and why.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Pool } from '../shared/names';
import { CUDA_PROVIDER, describePlacement, probeExecutionProviders, type NodePlacement } from './provider-probe';
import { CudaUnavailable, messageOf } from '../shared/errors';

/** An execution provider as onnxruntime-node names it in session options. */
export type ExecutionProviderName = 'cpu' | 'cuda';

/** What a pool worker will run its models with, and why. */
export interface ProviderChoice {
  pool: Pool;
  executionProviders: ExecutionProviderName[];
  /** Whether models run on CUDA (checked by a probe), as opposed to CPU. */
  gpu: boolean;
  /** Where the probe session's nodes ran; absent when no probe was needed (cpu pool). */
  probe?: NodePlacement;
  /** One line for the worker's log: which provider and the reason. */
  decision: string;
}

/** What the gpu pool does when CUDA is missing: refuse to start, or run on CPU (for single-machine setups). */
export type GpuFallback = 'refuse' | 'cpu';

/** How to look for CUDA; tests replace these to exercise every branch without a GPU. */
export interface CudaEnvironment {
  /** The CUDA provider library onnxruntime-node would load, or `undefined` when it is not installed. */
  providerLibrary(): string | undefined;
  /** Runs a probe session with the providers and returns where its nodes ran (throws if a provider fails). */
  probe(executionProviders: readonly ExecutionProviderName[]): Promise<NodePlacement>;
  /** The shared libraries `lib` needs that the dynamic loader cannot find; see {@link missingLibraries}. */
  missingLibraries(lib: string): string[] | undefined;
  /** The environment CUDA's libraries read (NVIDIA_TF32_OVERRIDE); see {@link fullFloatMath}. */
  env: NodeJS.ProcessEnv;
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

/**
 * The shared libraries `lib` needs that the dynamic loader cannot find, as `ldd` lists them (`libcublasLt.so.13`);
 * undefined where ldd cannot say (no ldd, not an ELF file). onnxruntime reports a provider library whose CUDA
 * libraries are missing only as "Failed to load shared library"; this names them.
 */
export function missingLibraries(lib: string): string[] | undefined {
  let listing: string;
  try {
    listing = execFileSync('ldd', [lib], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
  return [...listing.matchAll(/^\s*(\S+) => not found\s*$/gm)].map((m) => m[1]!);
}

/**
 * Keeps the GPU's FP32 matrix products in full FP32, unless the operator chose. cuBLAS and cuDNN may round their
 * inputs to TF32 (a 10-bit mantissa) on Ampere and newer GPUs, and onnxruntime's CUDA provider lets them by
 * default (onnxruntime-node cannot pass its `use_tf32` option): measured on an H200, a per-device Mahalanobis
 * model's scores then differ from the cpu pool's by up to 4e-3 of their size, against 1e-6 without. An anomaly
 * flag must not depend on which pool scored it, and per-device models are far too small for TF32 to pay, so the
 * gpu pool sets NVIDIA_TF32_OVERRIDE=0 (read by CUDA's libraries when they start, so before the probe) where it is
 * unset, and honours any value it finds. Returns the decision, for the worker's log.
 */
export function fullFloatMath(env: NodeJS.ProcessEnv): string {
  const chosen = env.NVIDIA_TF32_OVERRIDE;
  if (chosen === undefined) {
    env.NVIDIA_TF32_OVERRIDE = '0';
    return 'FP32 math, TF32 off (NVIDIA_TF32_OVERRIDE=0)';
  }
  return chosen === '0'
    ? 'FP32 math, TF32 off (NVIDIA_TF32_OVERRIDE=0 as set)'
    : `TF32 as onnxruntime chooses (NVIDIA_TF32_OVERRIDE=${chosen} as set)`;
}

/** The real machine: onnxruntime-node's install folder, a real probe session, the real loader and environment. */
export const LOCAL_CUDA: CudaEnvironment = {
  providerLibrary: cudaProviderLibrary,
  probe: (providers) => probeExecutionProviders(providers),
  missingLibraries,
  env: process.env,
};

const INSTALL_HINT =
  'install it with ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node --ignore-scripts=false, or copy ' +
  'it from the onnxruntime-gpu wheel of the same version: docs/operations.md, "GPU workers"';

/**
 * The providers for `pool`. The cpu pool uses the CPU provider. The gpu pool uses CUDA (then CPU for operators
 * CUDA lacks) when the provider library is installed and a probe session really ran on CUDA; otherwise it throws
 * CudaUnavailable, or returns the CPU provider when `fallback` is 'cpu', with the reason in `decision`.
 */
export async function chooseProviders(
  pool: Pool,
  fallback: GpuFallback = 'refuse',
  cuda: CudaEnvironment = LOCAL_CUDA,
): Promise<ProviderChoice> {
  if (pool === 'cpu') {
    return { pool, executionProviders: ['cpu'], gpu: false, decision: 'cpu pool: CPU execution provider' };
  }
  const lib = cuda.providerLibrary();
  let why: string;
  let probe: NodePlacement | undefined;
  if (!lib) {
    why = `the CUDA provider library libonnxruntime_providers_cuda.so is not installed (${INSTALL_HINT})`;
  } else {
    const math = fullFloatMath(cuda.env);
    try {
      // CUDA alone, without the CPU provider behind it, so a CUDA that cannot start fails here instead of
      // quietly becoming CPU; nodes CUDA has no kernel for still land on CPU and show in the placement.
      probe = await cuda.probe(['cuda']);
      if ((probe[CUDA_PROVIDER] ?? 0) > 0) {
        return {
          pool,
          executionProviders: ['cuda', 'cpu'],
          gpu: true,
          probe,
          decision: `gpu pool: CUDA execution provider (${lib}); ${math}; probe session ran ${describePlacement(probe)}`,
        };
      }
      why = `a probe session asked for CUDA but onnxruntime ran it on ${describePlacement(probe)}`;
    } catch (err) {
      const missing = cuda.missingLibraries(lib);
      why = `onnxruntime could not start the CUDA provider (${lib}): ${messageOf(err)}`;
      if (missing?.length)
        why += `; the loader cannot find ${missing.join(', ')} (install them, or add their folder to LD_LIBRARY_PATH)`;
    }
  }
  if (fallback === 'cpu') {
    return {
      pool,
      executionProviders: ['cpu'],
      gpu: false,
      ...(probe ? { probe } : {}),
      decision: `gpu pool: running on the CPU execution provider (--gpu-fallback cpu) because ${why}`,
    };
  }
  throw new CudaUnavailable(`gpu pool refuses to start: ${why}; pass --gpu-fallback cpu to run it on CPU`);
}
