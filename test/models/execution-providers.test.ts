/**
 * The gpu pool's provider choice and its fallback, without a GPU: a fake CUDA environment drives every branch
 * (library missing, CUDA failing to start, onnxruntime silently placing the probe on CPU, CUDA working), and the
 * real probe runs on this machine's onnxruntime to show the placement check reads real profiles.
 */
import { chooseProviders, missingLibraries, type CudaEnvironment } from '../../lib/models/execution-providers';
import { LocalStore } from '../../lib/store/local-store';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import { isGpuExhaustion, OnnxSessionPool, type SessionPlacement } from '../../lib/models/onnx-session-pool';
import { InferenceSession } from 'onnxruntime-node';
import { buildMahalanobisModel } from '../../lib/models/onnx-builder';
import { registerModel } from '../../lib/models/model-registry';
import { modelMetaSchema } from '../../lib/models/model-meta';
import {
  CUDA_PROVIDER,
  placementFromProfile,
  probeExecutionProviders,
  describePlacement,
} from '../../lib/models/provider-probe';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CudaUnavailable, GpuResourcesExhausted } from '../../lib/shared/errors';

const LIB = '/opt/ort/libonnxruntime_providers_cuda.so';

/** model.json of the two-feature gpu-pool models the placement tests register. */
const GPU_META = {
  pool: 'gpu' as const,
  features: ['a', 'b'],
  input: { name: 'X' },
  output: { name: 'score' },
  anomalyWhen: 'above' as const,
  threshold: 9,
};

function fakeCuda(
  lib: string | undefined,
  probe: () => Promise<Record<string, number>>,
  missing: string[] = [],
  env: NodeJS.ProcessEnv = {},
): CudaEnvironment & {
  probed: string[][];
  /** NVIDIA_TF32_OVERRIDE as each probe saw it. */
  tf32: (string | undefined)[];
} {
  const probed: string[][] = [];
  const tf32: (string | undefined)[] = [];
  return {
    probed,
    tf32,
    env,
    providerLibrary: () => lib,
    probe: (providers) => {
      probed.push([...providers]);
      tf32.push(env.NVIDIA_TF32_OVERRIDE);
      return probe();
    },
    missingLibraries: () => missing,
  };
}

describe('chooseProviders', () => {
  test('the cpu pool uses the CPU provider without probing', async () => {
    const cuda = fakeCuda(LIB, () => Promise.reject(new Error('must not probe')));
    const choice = await chooseProviders('cpu', 'refuse', cuda);
    expect(choice).toMatchObject({ executionProviders: ['cpu'], gpu: false });
    expect(cuda.probed).toEqual([]);
  });

  test('gpu with a probe whose nodes ran on CUDA uses CUDA, then CPU for operators CUDA lacks', async () => {
    const cuda = fakeCuda(LIB, () => Promise.resolve({ [CUDA_PROVIDER]: 4 }));
    const choice = await chooseProviders('gpu', 'refuse', cuda);
    expect(choice).toMatchObject({ executionProviders: ['cuda', 'cpu'], gpu: true, probe: { [CUDA_PROVIDER]: 4 } });
    expect(choice.decision).toContain('CUDA execution provider');
    // The probe asks for CUDA alone, so a CUDA that cannot start throws instead of quietly becoming CPU.
    expect(cuda.probed).toEqual([['cuda']]);
  });

  test('gpu turns TF32 off before CUDA starts, unless the operator set NVIDIA_TF32_OVERRIDE', async () => {
    const unset = fakeCuda(LIB, () => Promise.resolve({ [CUDA_PROVIDER]: 4 }));
    const choice = await chooseProviders('gpu', 'refuse', unset);
    // Set before the probe: CUDA's libraries read it when they start.
    expect(unset.tf32).toEqual(['0']);
    expect(unset.env.NVIDIA_TF32_OVERRIDE).toBe('0');
    expect(choice.decision).toContain('FP32 math, TF32 off (NVIDIA_TF32_OVERRIDE=0)');
    const chosen = fakeCuda(LIB, () => Promise.resolve({ [CUDA_PROVIDER]: 4 }), [], { NVIDIA_TF32_OVERRIDE: '1' });
    expect((await chooseProviders('gpu', 'refuse', chosen)).decision).toContain(
      'TF32 as onnxruntime chooses (NVIDIA_TF32_OVERRIDE=1 as set)',
    );
    expect(chosen.tf32).toEqual(['1']);
    // The cpu pool leaves the environment alone.
    const cpu = fakeCuda(LIB, () => Promise.reject(new Error('must not probe')));
    await chooseProviders('cpu', 'refuse', cpu);
    expect(cpu.env).toEqual({});
  });

  test('gpu without the provider library refuses to start, naming the library and the fix', async () => {
    const cuda = fakeCuda(undefined, () => Promise.reject(new Error('must not probe')));
    const err = await chooseProviders('gpu', 'refuse', cuda).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CudaUnavailable);
    expect((err as Error).message).toMatch(/libonnxruntime_providers_cuda\.so is not installed/);
    expect((err as Error).message).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12/);
    expect((err as Error).message).toMatch(/--gpu-fallback cpu/);
  });

  test('gpu without the library runs on CPU when the fallback is cpu, and says so', async () => {
    const choice = await chooseProviders(
      'gpu',
      'cpu',
      fakeCuda(undefined, () => Promise.resolve({})),
    );
    expect(choice).toMatchObject({ executionProviders: ['cpu'], gpu: false });
    expect(choice.decision).toMatch(/running on the CPU execution provider \(--gpu-fallback cpu\) because/);
  });

  test('gpu whose probe silently ran on CPU is not taken for a GPU (refuse, or CPU when allowed)', async () => {
    const silent = () => fakeCuda(LIB, () => Promise.resolve({ CPUExecutionProvider: 4 }));
    const err = await chooseProviders('gpu', 'refuse', silent()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CudaUnavailable);
    expect((err as Error).message).toMatch(/asked for CUDA but onnxruntime ran it on CPUExecutionProvider 4/);
    const choice = await chooseProviders('gpu', 'cpu', silent());
    expect(choice).toMatchObject({ executionProviders: ['cpu'], gpu: false, probe: { CPUExecutionProvider: 4 } });
  });

  test('gpu whose CUDA provider fails to start (driver, cuDNN) refuses, with onnxruntime’s error', async () => {
    const failing = fakeCuda(LIB, () => Promise.reject(new Error('CUDA failure 100: no CUDA-capable device')));
    const err = await chooseProviders('gpu', 'refuse', failing).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/could not start the CUDA provider .*no CUDA-capable device/);
  });

  test('a provider library whose CUDA libraries are missing refuses, naming them', async () => {
    // What onnxruntime 1.30 says for a CUDA 13 provider library on a host without CUDA 13: only that it failed.
    const failing = fakeCuda(
      LIB,
      () => Promise.reject(new Error('OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library')),
      ['libcublasLt.so.13', 'libcudart.so.13'],
    );
    const err = await chooseProviders('gpu', 'refuse', failing).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      /Failed to load shared library; the loader cannot find libcublasLt\.so\.13, libcudart\.so\.13 \(install them/,
    );
  });
});

describe('isGpuExhaustion', () => {
  test("tells the GPU running out of memory or handles from a model's own failure", () => {
    // What onnxruntime 1.30 said on an H200 when the 969th live CUDA session needed a cuBLAS handle.
    const cublas =
      '/onnxruntime_src/onnxruntime/core/providers/cuda/cuda_call.cc:154 std::conditional_t<THRW, void, ' +
      'onnxruntime::common::Status> onnxruntime::CudaCall(...) CUBLAS failure 3: the resource allocation failed ; ' +
      'GPU=0 ; hostname=vm ; file=/onnxruntime_src/onnxruntime/core/providers/cuda/cuda_stream_handle.cc ; line=79 ; ' +
      'expr=cublasCreate(&cublas_handle_);';
    expect(isGpuExhaustion(new Error(cublas))).toBe(true);
    // What the shard's failure then says: the model file, that it is retried, the remedy, and CUDA's own words.
    const err = new GpuResourcesExhausted('dev-1', 'models/dev-1/v0001/model.onnx', new Error(cublas));
    expect(err).toMatchObject({ device: 'dev-1', retryable: true, scope: 'run' });
    expect(err.message).toMatch(/^models\/dev-1\/v0001\/model\.onnx: the GPU ran out of memory or handles .*retried/);
    expect(err.message).toMatch(/--max-sessions or FLEETSCORE_MAX_SESSIONS\): .*CUBLAS failure 3/);
    expect(
      isGpuExhaustion(new Error('CUDA failure 2: out of memory ; GPU=0 ; expr=cudaMalloc((void**)&p, size);')),
    ).toBe(true);
    expect(
      isGpuExhaustion('BFCArena::AllocateRawInternal Failed to allocate memory for requested buffer of size 8'),
    ).toBe(true);
    // A model or input problem, and CUDA missing altogether, are something else.
    expect(
      isGpuExhaustion(
        new Error('Got invalid dimensions for input: X for the following indices index: 1 Got: 3 Expected: 4'),
      ),
    ).toBe(false);
    expect(
      isGpuExhaustion(new Error('OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library')),
    ).toBe(false);
  });
});

describe('a GPU that fills up', () => {
  const CUBLAS_FULL = 'CUBLAS failure 3: the resource allocation failed ; GPU=0 ; expr=cublasCreate(&cublas_handle_);';
  /** Mahalanobis models of two features, one per device, each its own bytes (its own session). */
  const models = Array.from({ length: 5 }, (_, d) =>
    buildMahalanobisModel({
      mean: [d, d],
      precision: [
        [1, 0],
        [0, 1],
      ],
    }),
  );
  const meta = modelMetaSchema.parse({
    ...GPU_META,
    schema: 'fleetscore.model/v1',
    device: 'dev-0',
    version: 'v0001',
    sha256: '0'.repeat(64),
    createdAt: '2026-12-04T00:00:00Z',
  });

  /** A pool asking for CUDA whose "GPU" holds `room` sessions: real CPU sessions, refused beyond that. */
  function poolOnGpu(room: number, warnings: string[]): { pool: OnnxSessionPool; live: () => number } {
    let live = 0;
    const pool = new OnnxSessionPool({
      executionProviders: ['cuda'],
      maxSessions: 100,
      intraOpNumThreads: 1,
      checkPlacement: false,
      observer: { warning: (m) => warnings.push(m) },
      readModel: (_store, device) => Promise.resolve(models[Number(device.slice(4))]!),
      createSession: async (bytes) => {
        if (live >= room) throw new Error(CUBLAS_FULL);
        const session = await InferenceSession.create(bytes, { executionProviders: ['cpu'] });
        live++;
        const release = session.release.bind(session);
        session.release = () => {
          live--;
          return release();
        };
        return session;
      },
    });
    return { pool, live: () => live };
  }
  const store = new LocalStore(tmpdir());
  const entry = (d: number) => ({ version: 'v0001', sha256: `sha-${d}` });
  const x = new Float32Array([1, 2]);

  test('releases the idle sessions and tries again, and a released model is loaded again when used', async () => {
    const warnings: string[] = [];
    const { pool, live } = poolOnGpu(3, warnings);
    const loaded = [];
    for (let d = 0; d < 5; d++) {
      const model = await pool.load(store, `dev-${d}`, entry(d), meta);
      // (1 - d)² + (2 - d)²
      expect(Array.from(await model.score(x, 1))).toEqual([(1 - d) ** 2 + (2 - d) ** 2]);
      loaded.push(model);
      expect(live()).toBeLessThanOrEqual(3);
    }
    // The 4th session found the GPU full: the three idle ones went, and it was created.
    expect(warnings).toEqual([
      expect.stringMatching(/released 3 idle model sessions and tried again .*--max-sessions/),
    ]);
    expect(pool.size).toBe(2);
    // dev-0's session was released: scoring it loads it again (room for it: 2 of 3 are used).
    expect(Array.from(await loaded[0]!.score(x, 1))).toEqual([5]);
    expect(pool.size).toBe(3);
    await pool.close();
    expect(live()).toBe(0);
  });

  test('with nothing idle to release, fails with GpuResourcesExhausted (retried), not a device error', async () => {
    const warnings: string[] = [];
    const { pool } = poolOnGpu(0, warnings);
    const err = await pool.load(store, 'dev-0', entry(0), meta).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GpuResourcesExhausted);
    expect(err).toMatchObject({ device: 'dev-0', retryable: true });
    expect(warnings).toEqual([]);
  });
});

describe('missingLibraries', () => {
  const binding = join(dirname(require.resolve('onnxruntime-node/package.json')), 'bin/napi-v6/linux/x64');
  const linux = process.platform === 'linux' && process.arch === 'x64';

  (linux ? test : test.skip)(
    'names what the loader cannot find for a real library, and nothing when all is there',
    async () => {
      expect(missingLibraries(join(binding, 'onnxruntime_binding.node'))).toEqual([]);
      // Alone in a folder, onnxruntime's binding no longer finds libonnxruntime.so.1 beside it (its RUNPATH is $ORIGIN).
      const dir = await mkdtemp(join(tmpdir(), 'fleetscore-ldd-'));
      try {
        await copyFile(join(binding, 'onnxruntime_binding.node'), join(dir, 'binding.node'));
        expect(missingLibraries(join(dir, 'binding.node'))).toEqual(['libonnxruntime.so.1']);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  test('says nothing for a file ldd cannot read', () => {
    expect(missingLibraries(join(tmpdir(), 'no-such-library.so'))).toBeUndefined();
  });
});

describe('provider placement from onnxruntime profiles', () => {
  test('counts node events by provider and ignores session events', () => {
    const profile = [
      { cat: 'Session', name: 'model_run', args: {} },
      { cat: 'Node', name: 'a_kernel_time', args: { provider: CUDA_PROVIDER } },
      { cat: 'Node', name: 'b_kernel_time', args: { provider: CUDA_PROVIDER } },
      { cat: 'Node', name: 'c_kernel_time', args: { provider: 'CPUExecutionProvider' } },
    ];
    expect(placementFromProfile(profile)).toEqual({ [CUDA_PROVIDER]: 2, CPUExecutionProvider: 1 });
    expect(placementFromProfile({ not: 'a profile' })).toEqual({});
    expect(describePlacement({})).toBe('no nodes ran');
  });

  test('a real probe session on this machine reports where its nodes ran', async () => {
    expect(await probeExecutionProviders(['cpu'])).toEqual({ CPUExecutionProvider: 4 });
  });

  test('the real CUDA provider, where it is not installed, fails loudly instead of falling back', async () => {
    const { cudaProviderLibrary } = await import('../../lib/models/execution-providers');
    if (cudaProviderLibrary()) return; // a GPU host: covered by the choice above
    await expect(probeExecutionProviders(['cuda'])).rejects.toThrow(/shared library|CUDA/i);
    const choice = await chooseProviders('gpu', 'cpu');
    expect(choice.gpu).toBe(false);
    expect(choice.decision).toMatch(/not installed/);
  });

  test('model sessions report where each new session ran, once, on its first inference', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetscore-placement-'));
    try {
      const store = new LocalStore(dir);
      const onnx = buildMahalanobisModel({
        mean: [0, 0],
        precision: [
          [1, 0],
          [0, 1],
        ],
      });
      const entry = await registerModel(store, { device: 'dev-1', onnx, meta: GPU_META });
      const placements: SessionPlacement[] = [];
      const lookups: boolean[] = [];
      let inferences = 0;
      const cache = new ModelSessionCache({
        checkPlacement: true,
        observer: {
          placement: (p) => placements.push(p),
          cacheLookup: (hit) => lookups.push(hit),
          inference: (seconds, rows) => {
            expect(seconds).toBeGreaterThanOrEqual(0);
            inferences += rows;
          },
        },
      });
      const model = await cache.load(store, 'dev-1', entry);
      await model.score(new Float32Array([1, 2, 3, 4]), 2);
      await model.score(new Float32Array([1, 2]), 1);
      await cache.load(store, 'dev-1', entry);
      expect(placements).toEqual([
        {
          session: 'model',
          device: 'dev-1',
          version: entry.version,
          sha256: entry.sha256,
          placement: { CPUExecutionProvider: 4 },
        },
      ]);
      expect(lookups).toEqual([false, true]);
      expect(inferences).toBe(3);
      await cache.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the stacked session reports where it ran, once, on its first inference', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetscore-placement-'));
    try {
      const store = new LocalStore(dir);
      const placements: SessionPlacement[] = [];
      const cache = new ModelSessionCache({ checkPlacement: true, observer: { placement: (p) => placements.push(p) } });
      const stacked = [];
      for (const [device, m] of [
        ['dev-1', 0],
        ['dev-2', 5],
      ] as const) {
        const onnx = buildMahalanobisModel({
          mean: [m, m],
          precision: [
            [1, 0],
            [0, 1],
          ],
        });
        const prepared = await cache.prepare(
          store,
          device,
          await registerModel(store, { device, onnx, meta: GPU_META }),
        );
        if (prepared.kind !== 'stacked') throw new Error(`${device} was not stacked: ${prepared.kind}`);
        stacked.push({ model: prepared, x: new Float32Array([1, 2, 3, 4]), rows: 2 });
      }
      const first = await cache.scoreStacked(stacked);
      await cache.scoreStacked(stacked);
      expect(first.map((s) => Array.from(s as Float32Array))).toEqual([
        [5, 25],
        [25, 5],
      ]);
      // One stacked session for both devices, on this machine's CPU (a GPU host's gpu pool sees CUDA here).
      expect(placements).toEqual([{ session: 'stacked', placement: { CPUExecutionProvider: 4 } }]);
      await cache.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
