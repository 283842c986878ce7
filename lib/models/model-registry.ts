/**
 * The model registry in the store: immutable versions under `models/<device>/<version>/`, and the index that
 * points every device at the version it is scored with (model-index.ts). Registering is two steps: write an
 * immutable version (`writeModelVersion`), then move the index (`moveIndex`), once for one model or for ten
 * thousand. A version is checked before it is written (model.json against its schema, ONNX graph against
 * model.json, checksum recorded), so scoring never meets a model that a human could have caught at upload time.
 */
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { keys, safeSegment } from '../shared/keys';
import type { ObjectStore } from '../store/object-store';
import type { Pool } from '../shared/names';
import { parseJsonBytes } from './json-bytes';
import { InvalidModel, ModelNotFound, ModelVersionExists } from '../shared/errors';
import { moveIndex } from './model-index';
import type { modelMetaSchema, ModelMeta } from './model-meta';
import { parseMeta } from './meta-validation';
import { joinColumnInputs } from './column-inputs';
import { checkGraph, inspectOnnx } from './onnx-graph-check';

/** The schema tag of every model.json. */
export const META_SCHEMA = 'fleetscore.model/v1';
const VERSION = /^v(\d{4,})$/;

/** What a caller supplies for model.json: everything except what registration assigns or computes. */
export type ModelMetaInput = Omit<
  z.input<typeof modelMetaSchema>,
  'schema' | 'device' | 'version' | 'sha256' | 'createdAt'
>;

/** Arguments of {@link registerModel} and {@link writeModelVersion}. */
export interface RegisterModelInput {
  device: string;
  onnx: Uint8Array;
  meta: ModelMetaInput;
  /** Where `meta` came from, named in its errors (default `model.json`). */
  metaFile?: string;
  /** Where `onnx` came from, named in its errors (default `model.onnx`). */
  onnxFile?: string;
}

/** A version registration wrote: the index points the device at it once moved. */
export interface RegisteredModel {
  device: string;
  version: string;
  sha256: string;
  pool: Pool;
}

/** sha256 of `bytes` as lowercase hex, the form model.json and the index record. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Reads and validates one version's model.json; it must name the device and version it is stored under. */
export async function readModelMeta(store: ObjectStore, device: string, version: string): Promise<ModelMeta> {
  const file = keys.modelMeta(device, version);
  const bytes = await store.tryGet(file);
  if (bytes === undefined) throw new ModelNotFound(device, file);
  // An argument, not a named closure: tsx names each named closure it makes, once per model here.
  const json = parseJsonBytes(
    bytes,
    (message, cause) => new InvalidModel(`${file}: ${message}`, { device, file }, { cause }),
  );
  const meta = parseMeta(json, { device, file });
  for (const [field, expected] of [
    ['device', device],
    ['version', version],
  ] as const) {
    if (meta[field] !== expected) {
      const message = `${file}: ${field} is ${JSON.stringify(meta[field])}, expected ${expected}`;
      throw new InvalidModel(message, { device, file, field });
    }
  }
  return meta;
}

/**
 * Told the bytes and model.json a registration is about to write, as workers will read them, once they passed the
 * graph checks, with the name of the file the model came from: what it throws refuses the model, and nothing is
 * written (`scoringPathOf` checks that a model no fast path compiles loads in onnxruntime).
 */
export type ModelCheck = (onnx: Uint8Array, meta: ModelMeta, file: string) => Promise<void>;

/**
 * Step one of registration: validates model.json and the ONNX graph against each other, then writes model.onnx
 * and model.json under the device's next version (`v0001`, `v0002`, …). The index is not touched, so nothing
 * scores the version until {@link moveIndex} names it. A version never moved to stays unreferenced, and the
 * next registration of the device skips past it. `check` is given the bytes and model.json to write (a model with
 * one input per column, joined) before they are written, and may refuse them.
 */
export async function writeModelVersion(
  store: ObjectStore,
  input: RegisterModelInput,
  check?: ModelCheck,
): Promise<RegisteredModel> {
  const device = safeSegment('device id', input.device);
  const version = await nextVersion(store, device);
  const onnxKey = keys.modelOnnx(device, version);
  const metaKey = keys.modelMeta(device, version);

  const parsed = parseMeta(
    {
      ...input.meta,
      schema: META_SCHEMA,
      device,
      version,
      sha256: sha256Hex(input.onnx),
      createdAt: new Date().toISOString(),
    },
    { device, file: input.metaFile ?? 'model.json' },
  );
  // The model stored is the one scored: with its per-column inputs joined, when it has them, and its checksum.
  const context = { device, file: input.onnxFile ?? 'model.onnx' };
  const graph = inspectOnnx(input.onnx, context);
  const bytes = joinColumnInputs(input.onnx, graph, parsed, context);
  const joined = bytes !== input.onnx;
  const meta = joined ? { ...parsed, sha256: sha256Hex(bytes) } : parsed;
  const sha256 = meta.sha256;
  checkGraph(bytes, joined ? inspectOnnx(bytes, context) : graph, meta, context, input.meta.output);
  await check?.(bytes, meta, context.file);

  if ((await store.tryGet(onnxKey)) !== undefined) throw new ModelVersionExists(device, onnxKey);
  if ((await store.tryGet(metaKey)) !== undefined) throw new ModelVersionExists(device, metaKey);
  await store.put(onnxKey, bytes);
  await store.put(metaKey, `${JSON.stringify(meta, null, 2)}\n`);
  return { device, version, sha256, pool: meta.pool };
}

/**
 * Registers a new immutable version of one device's model and points the index at it: {@link writeModelVersion}
 * then {@link moveIndex}. A crash between the two leaves an unreferenced version, which the next registration
 * skips. For many devices write every version first and move the index once (see bulk registration). `check` as
 * for {@link writeModelVersion}.
 */
export async function registerModel(
  store: ObjectStore,
  input: RegisterModelInput,
  check?: ModelCheck,
): Promise<RegisteredModel> {
  const registered = await writeModelVersion(store, input, check);
  await moveIndex(store, [registered]);
  return registered;
}

async function nextVersion(store: ObjectStore, device: string): Promise<string> {
  const prefix = `models/${device}/`;
  let last = 0;
  for (const key of await store.list(prefix)) {
    const match = VERSION.exec(key.slice(prefix.length).split('/')[0] ?? '');
    if (match?.[1]) last = Math.max(last, Number(match[1]));
  }
  return `v${String(last + 1).padStart(4, '0')}`;
}
