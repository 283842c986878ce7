/**
 * Registering a fleet's models at once: every version is written a few at a time, then the index is moved once
 * for all of them, so 10,000 devices cost 10,000 version writes and one index write (registering them one by one
 * rewrites the whole index per device). The index moves only when every model was good, unless `partial` is
 * set, so a fleet never ends up half on new models because of one typo.
 */
import { forEachLimited } from '../shared/concurrency';
import type { ObjectStore } from '../store/object-store';
import { FleetscoreError, ModelSourceUnreadable } from '../shared/errors';
import { appendTo } from '../shared/multimap';
import { graphOpTypes } from './fast-paths/onnx-reader';
import { moveIndex } from './model-index';
import type { ModelMeta } from './model-meta';
import { writeModelVersion, type RegisteredModel, type RegisterModelInput } from './model-registry';

/** One model to register: its device, where it comes from (named in errors), and how to read it when its turn comes. */
export interface ModelSource {
  device: string;
  /** The file or folder the model is read from, as the user named it. */
  source: string;
  read(): Promise<RegisterModelInput>;
}

/** A model that could not be registered, and why. */
export interface FailedModel {
  device: string;
  source: string;
  reason: string;
  /** The model.json field or package member at fault, when known. */
  field?: string;
}

/** Options of {@link registerModels}. */
export interface RegisterModelsOptions {
  /** Models read and written at once (default 16): the store's latency bounds this, not CPU. */
  concurrency?: number;
  /** Move the index for the models that are good even when others failed (default false: move nothing then). */
  partial?: boolean;
  /** Called after each model, for progress output. */
  onProgress?: (done: number, total: number, failed: number) => void;
  /**
   * The path a worker scores a model on, and why not a compiled one (`scoringPathOf`, which also refuses a model
   * onnxruntime cannot load where no fast path takes it): given, the result says which paths the fleet takes,
   * deciding it before each model is written, for the first model of each kind of graph only (its operators, and
   * the input, output and feature count model.json gives), so 10,000 forests compile one. A model whose decision
   * throws is refused with that error; the next model of its kind is decided on its own.
   */
  pathOf?: (
    device: string,
    onnx: Uint8Array,
    meta: ModelMeta,
    file: string,
  ) => Promise<{ path: string; reason?: string }>;
}

/** The paths registered models take (with {@link RegisterModelsOptions.pathOf}). */
export interface RegisteredPaths {
  /** Models by path: `compiled:svm`, `stacked-mahalanobis`, `session`, ... */
  counts: Record<string, number>;
  /** Why models go to their own session: each reason, with how many models and one of their devices. */
  sessions: { reason: string; models: number; device: string }[];
}

/** What a bulk registration did: the versions written, the models refused, and whether the index now names them. */
export interface RegisterModelsResult {
  registered: RegisteredModel[];
  failed: FailedModel[];
  indexMoved: boolean;
  /** With {@link RegisterModelsOptions.pathOf}: the paths of the models written. */
  paths?: RegisteredPaths;
}

/**
 * Registers every model of `sources`: writes each version (see `writeModelVersion`), then moves the index once.
 * A model that cannot be read or is invalid is recorded in `failed` with its file and field; a store error (a
 * retry may fix it) stops the whole registration before the index moves. Versions written for a registration
 * whose index did not move stay unreferenced; the next registration of those devices skips past them.
 */
export async function registerModels(
  store: ObjectStore,
  sources: readonly ModelSource[],
  { concurrency = 16, partial = false, onProgress, pathOf }: RegisterModelsOptions = {},
): Promise<RegisterModelsResult> {
  const paths = pathOf && tally(pathOf);
  const failed: FailedModel[] = duplicateDevices(sources);
  const refused = new Set(failed.map((f) => f.device));
  const todo = sources.filter((s) => !refused.has(s.device));
  const written = new Array<RegisteredModel | undefined>(todo.length);
  let done = 0;
  await forEachLimited(todo, concurrency, async (source, i) => {
    try {
      // Anything reading the model's own files throws is that model's problem; of the store's, only what a retry
      // cannot fix.
      const input = await source.read().catch((err: unknown) => {
        throw new ModelSourceUnreadable(err);
      });
      let decided: Decided | undefined;
      written[i] = await writeModelVersion(
        store,
        input,
        paths && (async (onnx, meta, file) => void (decided = await paths.decide(source.device, onnx, meta, file))),
      );
      if (decided) paths?.count(source.device, decided);
    } catch (err) {
      if (!isModelProblem(err)) throw err;
      const { field } = err;
      failed.push({ device: source.device, source: source.source, reason: err.message, ...(field ? { field } : {}) });
    }
    done++;
    onProgress?.(done, todo.length, failed.length);
  });
  const registered = written.filter((r): r is RegisteredModel => r !== undefined);
  const indexMoved = registered.length > 0 && (failed.length === 0 || partial);
  if (indexMoved) await moveIndex(store, registered);
  return { registered, failed, indexMoved, ...(paths ? { paths: paths.result } : {}) };
}

/** Graphs of more nodes than this are told apart by their input, output and width only (a forest has a few). */
const KIND_MAX_NODES = 256;

/** A model's path as {@link RegisterModelsOptions.pathOf} decides it. */
type Decided = Awaited<ReturnType<NonNullable<RegisterModelsOptions['pathOf']>>>;

/**
 * Decides the paths of models before they are written, each kind of graph's once (when that succeeds), and counts
 * those written.
 */
function tally(pathOf: NonNullable<RegisterModelsOptions['pathOf']>) {
  const kinds = new Map<string, Promise<Decided>>();
  const result: RegisteredPaths = { counts: {}, sessions: [] };
  return {
    result,
    decide(device: string, onnx: Uint8Array, meta: ModelMeta, file: string): Promise<Decided> {
      const { input, output, features } = meta;
      const kind = JSON.stringify([graphOpTypes(onnx, KIND_MAX_NODES) ?? null, input, output, features.length]);
      const known = kinds.get(kind);
      // A kind whose first decision failed is decided again for this model, so its error names this device.
      if (known) return known.catch(() => pathOf(device, onnx, meta, file));
      const deciding = pathOf(device, onnx, meta, file);
      kinds.set(kind, deciding);
      deciding.catch(() => kinds.get(kind) === deciding && kinds.delete(kind));
      return deciding;
    },
    count(device: string, decided: Decided): void {
      result.counts[decided.path] = (result.counts[decided.path] ?? 0) + 1;
      if (decided.reason === undefined) return;
      const same = result.sessions.find((s) => s.reason === decided.reason);
      if (same) same.models++;
      else result.sessions.push({ reason: decided.reason, models: 1, device });
    },
  };
}

/** A device named by two sources is refused for both: which one was meant is not ours to guess. */
function duplicateDevices(sources: readonly ModelSource[]): FailedModel[] {
  const byDevice = new Map<string, ModelSource[]>();
  for (const s of sources) appendTo(byDevice, s.device, s);
  return [...byDevice.values()]
    .filter((list) => list.length > 1)
    .flatMap((list) =>
      list.map((s) => ({
        device: s.device,
        source: s.source,
        reason: `device ${s.device} is given ${list.length} times (${list.map((o) => o.source).join(', ')})`,
      })),
    );
}

/**
 * Errors about one model's files (fixed by fixing that model: not retryable), as opposed to the store's (a retry
 * may fix them), which stop the registration.
 */
function isModelProblem(err: unknown): err is FleetscoreError {
  return err instanceof FleetscoreError && !err.retryable;
}
