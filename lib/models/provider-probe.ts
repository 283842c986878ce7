/**
 * Which execution provider onnxruntime really ran a session's nodes on. onnxruntime places every node it can on
 * the first provider that has a kernel for it and the rest on CPU, without an error (ai.onnx.ml operators such
 * as TreeEnsembleRegressor have no CUDA kernels at all), so asking for CUDA proves nothing. Its profiler does:
 * each node event in the profile names the provider that ran it.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { buildMahalanobisModel } from './onnx-builder';

/** Nodes run per execution provider, e.g. `{ CUDAExecutionProvider: 4 }`. */
export type NodePlacement = Record<string, number>;

/** The onnxruntime name of the CUDA execution provider, as profiles and logs spell it. */
export const CUDA_PROVIDER = 'CUDAExecutionProvider';

/** Counts the node events of an onnxruntime profile (Chrome trace JSON) by the provider that ran them. */
export function placementFromProfile(profile: unknown): NodePlacement {
  const placement: NodePlacement = {};
  if (!Array.isArray(profile)) return placement;
  for (const event of profile as { cat?: unknown; args?: { provider?: unknown } }[]) {
    const provider = event?.cat === 'Node' ? event.args?.provider : undefined;
    if (typeof provider === 'string') placement[provider] = (placement[provider] ?? 0) + 1;
  }
  return placement;
}

/** Reads the profile files an onnxruntime session wrote under `dir`. */
async function readProfiles(dir: string): Promise<NodePlacement> {
  const placement: NodePlacement = {};
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.json'))) {
    const counts = placementFromProfile(JSON.parse(await readFile(join(dir, file), 'utf8')));
    for (const [provider, n] of Object.entries(counts)) placement[provider] = (placement[provider] ?? 0) + n;
  }
  return placement;
}

/** A session's profile: the folder it is written into and the session options that write it there. */
export interface SessionProfile {
  dir: string;
  options: { enableProfiling: true; profileFilePrefix: string };
}

/** A new folder (named from `prefix`) for one session's profile; {@link endProfile} reads and deletes it. */
export async function startProfile(prefix: string): Promise<SessionProfile> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, options: { enableProfiling: true, profileFilePrefix: join(dir, 'session') } };
}

/** Ends `session`'s profiling, returns where its nodes ran so far, and deletes the profile's folder. */
export async function endProfile(session: InferenceSession, dir: string): Promise<NodePlacement> {
  try {
    session.endProfiling();
    return await readProfiles(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A short human form of a placement: `CUDAExecutionProvider 4, CPUExecutionProvider 1`. */
export function describePlacement(placement: NodePlacement): string {
  const entries = Object.entries(placement);
  return entries.length ? entries.map(([p, n]) => `${p} ${n}`).join(', ') : 'no nodes ran';
}

/**
 * Creates a session for a small standard-operator model (Sub, MatMul, Mul, ReduceSum: all have CUDA kernels)
 * with `executionProviders`, runs it once with profiling on, and returns where its nodes ran. Throws what
 * onnxruntime throws when a provider cannot be created (its library or CUDA itself missing).
 */
export async function probeExecutionProviders(
  executionProviders: readonly InferenceSession.ExecutionProviderConfig[],
): Promise<NodePlacement> {
  const onnx = buildMahalanobisModel({
    mean: [0, 0, 0, 0],
    precision: [
      [1, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
      [0, 0, 0, 1],
    ],
  });
  const profile = await startProfile('fleetscore-ort-probe-');
  try {
    const session = await InferenceSession.create(onnx, { executionProviders, ...profile.options });
    try {
      await session.run({ X: new Tensor('float32', new Float32Array(64), [16, 4]) });
      return await endProfile(session, profile.dir);
    } finally {
      await session.release();
    }
  } finally {
    // Where the session could not be created or run, its profile was never read.
    await rm(profile.dir, { recursive: true, force: true });
  }
}
