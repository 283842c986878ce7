/**
 * Batched scoring for the commonest fleet architecture: one Mahalanobis-distance model per device. Models whose
 * graph is exactly `ReduceSum((x - mean) · P ⊙ (x - mean))` are recognised from their ONNX bytes, their
 * parameters are kept (K + K² floats, not a session each), and a whole shard is scored with one call of one
 * stacked session. One onnxruntime call costs tens of microseconds of overhead however small the model, so
 * stacking hundreds of devices per call removes most of a shard's inference time.
 */
import { rm } from 'node:fs/promises';
import { onnx } from 'onnx-proto';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { graphOpTypes } from './fast-paths/onnx-reader';
import { buildStackedMahalanobisModel } from './onnx-builder';
import { endProfile, startProfile, type NodePlacement } from './provider-probe';
import { appendTo } from '../shared/multimap';

/** The parameters of a recognised Mahalanobis model. */
export interface MahalanobisParams {
  k: number;
  /** [K] */
  mean: Float32Array;
  /** Row-major [K, K] */
  precision: Float32Array;
}

/** One device's rows to score with its parameters; `x` is row-major [rows, K], already preprocessed. */
export interface BatchItem {
  params: MahalanobisParams;
  x: Float32Array;
  rows: number;
}

function floats(t: onnx.ITensorProto | undefined, count: number): Float32Array | undefined {
  if (!t || t.dataType !== onnx.TensorProto.DataType.FLOAT) return undefined;
  if (t.rawData && t.rawData.length === count * 4) {
    // Copy: raw_data may be a view into a larger buffer at an unaligned offset.
    return new Float32Array(new Uint8Array(t.rawData).buffer);
  }
  if (t.floatData && t.floatData.length === count) return Float32Array.from(t.floatData);
  return undefined;
}

/** An int64 tensor's values, from `int64_data` or `raw_data` (as numpy_helper.from_array writes them). */
function int64s(t: onnx.ITensorProto | undefined): number[] {
  if (!t || t.dataType !== onnx.TensorProto.DataType.INT64) return [];
  if (t.rawData && t.rawData.length > 0) {
    if (t.rawData.length % 8 !== 0) return [];
    return Array.from(new BigInt64Array(new Uint8Array(t.rawData).buffer), Number);
  }
  return (t.int64Data ?? []).map(Number);
}

function dims(t: onnx.ITensorProto | undefined): number[] {
  return (t?.dims ?? []).map(Number);
}

/**
 * The parameters of `bytes` when its graph is the single-device Mahalanobis model (Sub, MatMul, Mul, ReduceSum
 * over the feature axis without keepdims, constants as initializers) with `input` and `output` as named, else
 * `undefined`: such a model is then scored by its own session.
 */
export function recognizeMahalanobis(bytes: Uint8Array, input: string, output: string): MahalanobisParams | undefined {
  let model: onnx.ModelProto;
  try {
    // Any other graph is rejected from its op types, before onnx-proto decodes it: this runs on the event loop's
    // thread, where decoding a 100-tree forest would take tens of milliseconds.
    if (graphOpTypes(bytes, 4)?.join() !== 'Sub,MatMul,Mul,ReduceSum') return undefined;
    model = onnx.ModelProto.decode(bytes);
  } catch {
    // Not decodable here means not recognised; registration and session creation report the real error.
    return undefined;
  }
  const g = model.graph;
  const nodes = g?.node ?? [];
  if (!g || nodes.length !== 4 || (model.opsetImport ?? []).some((o) => o.domain !== '' && o.domain !== 'ai.onnx'))
    return undefined;
  const [sub, matmul, mul, reduce] = nodes;
  if (sub?.opType !== 'Sub' || matmul?.opType !== 'MatMul' || mul?.opType !== 'Mul' || reduce?.opType !== 'ReduceSum')
    return undefined;
  const init = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
  const [x, meanName] = sub.input ?? [];
  const centered = sub.output?.[0];
  const [c1, precName] = matmul.input ?? [];
  const projected = matmul.output?.[0];
  const mulIn = mul.input ?? [];
  const terms = mul.output?.[0];
  const [r1, axesName] = reduce.input ?? [];
  const keepdims = (reduce.attribute ?? []).find((a) => a.name === 'keepdims');
  const wired =
    x === input &&
    c1 === centered &&
    mulIn.length === 2 &&
    mulIn.includes(projected ?? '') &&
    mulIn.includes(centered ?? '') &&
    r1 === terms &&
    reduce.output?.[0] === output &&
    keepdims !== undefined &&
    Number(keepdims.i) === 0;
  if (!wired || !meanName || !precName || !axesName) return undefined;
  const meanT = init.get(meanName);
  const precT = init.get(precName);
  const axesT = init.get(axesName);
  const k = dims(meanT)[0] ?? 0;
  const axes = int64s(axesT);
  if (
    dims(meanT).length !== 1 ||
    dims(precT).join() !== `${k},${k}` ||
    axes.length !== 1 ||
    (axes[0] !== 1 && axes[0] !== -1)
  ) {
    return undefined;
  }
  const mean = floats(meanT, k);
  const precision = floats(precT, k * k);
  return mean && precision ? { k, mean, precision } : undefined;
}

/** Devices per inference call: large enough to amortise the call, small enough to keep tensors in cache. */
const DEVICES_PER_CALL = 256;

/** How a {@link MahalanobisBatcher} runs its stacked session. */
export interface MahalanobisBatcherOptions {
  executionProviders?: readonly InferenceSession.ExecutionProviderConfig[];
  /**
   * Profiles the stacked session's first inference and reports where onnxruntime ran its nodes (the gpu pool
   * does: asking for CUDA proves nothing, see provider-probe.ts).
   */
  onPlacement?: (placement: NodePlacement) => void;
}

/**
 * Scores batches of recognised Mahalanobis models with one stacked session per worker. Items with the same K
 * are stacked; rows are padded to the batch's longest device and the padding's scores dropped.
 */
export class MahalanobisBatcher {
  private session: Promise<InferenceSession> | undefined;
  /** The folder the stacked session profiles its first inference into, until that profile has been read. */
  private profileDir: string | undefined;

  constructor(private readonly options: MahalanobisBatcherOptions = {}) {}

  /** One Float32Array of scores per item, in order. */
  async score(items: readonly BatchItem[]): Promise<Float32Array[]> {
    const out = new Array<Float32Array>(items.length);
    const byK = new Map<number, number[]>();
    items.forEach((item, i) => appendTo(byK, item.params.k, i));
    for (const [k, indices] of byK) {
      for (let start = 0; start < indices.length; start += DEVICES_PER_CALL) {
        const chunk = indices.slice(start, start + DEVICES_PER_CALL);
        const scores = await this.scoreChunk(items, chunk, k);
        chunk.forEach((i, j) => (out[i] = scores[j]!));
      }
    }
    return out;
  }

  private async scoreChunk(items: readonly BatchItem[], chunk: number[], k: number): Promise<Float32Array[]> {
    const b = chunk.length;
    const r = Math.max(1, ...chunk.map((i) => items[i]!.rows));
    const x = new Float32Array(b * r * k);
    const mean = new Float32Array(b * k);
    const precision = new Float32Array(b * k * k);
    chunk.forEach((i, j) => {
      const item = items[i]!;
      x.set(item.x.subarray(0, item.rows * k), j * r * k);
      mean.set(item.params.mean, j * k);
      precision.set(item.params.precision, j * k * k);
    });
    const session = await this.stackedSession();
    const result = await session.run({
      X: new Tensor('float32', x, [b, r, k]),
      mean: new Tensor('float32', mean, [b, 1, k]),
      precision: new Tensor('float32', precision, [b, k, k]),
    });
    if (this.profileDir) await this.reportPlacement(session);
    const score = result.score?.data as Float32Array;
    return chunk.map((i, j) => score.slice(j * r, j * r + items[i]!.rows));
  }

  private stackedSession(): Promise<InferenceSession> {
    this.session ??= this.createSession();
    return this.session;
  }

  private async createSession(): Promise<InferenceSession> {
    const { executionProviders = ['cpu'], onPlacement } = this.options;
    const profile = onPlacement ? await startProfile('fleetscore-ort-stacked-') : undefined;
    try {
      const session = await InferenceSession.create(buildStackedMahalanobisModel(), {
        executionProviders,
        graphOptimizationLevel: 'all',
        intraOpNumThreads: 1,
        ...profile?.options,
      });
      this.profileDir = profile?.dir;
      return session;
    } catch (err) {
      if (profile) await rm(profile.dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Ends the stacked session's profiling after its first inference and reports where the nodes ran. */
  private async reportPlacement(session: InferenceSession): Promise<void> {
    const dir = this.profileDir;
    if (!dir) return;
    this.profileDir = undefined;
    this.options.onPlacement?.(await endProfile(session, dir));
  }

  /** Releases the stacked session (and its profiling folder, if it never ran). */
  async close(): Promise<void> {
    const session = await this.session;
    this.session = undefined;
    await session?.release();
    if (this.profileDir) await rm(this.profileDir, { recursive: true, force: true });
    this.profileDir = undefined;
  }
}
