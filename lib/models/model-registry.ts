/**
 * The model registry in the store: immutable versions under `models/<device>/<version>/` and `models/index.json`,
 * which points every device at the version it is scored with. Registration checks a model before it becomes
 * visible (ONNX parses, names and feature count match, checksum recorded), so scoring never meets a model that a
 * human could have caught at upload time.
 */
import { createHash } from 'node:crypto';
import { onnx } from 'onnx-proto';
import { Parser, type ReadEntry } from 'tar';
import type { z } from 'zod';
import { keys, safeSegment } from '../shared/keys';
import type { ObjectStore } from '../store/object-store';
import type { Pool } from '../shared/names';
import { modelIndexSchema, modelMetaSchema, type ModelIndex, type ModelMeta } from './model-meta';
import {
  InvalidModel,
  InvalidModelIndex,
  ModelChecksumMismatch,
  ModelNotFound,
  ModelVersionExists,
} from '../shared/errors';

const META_SCHEMA = 'fleetscore.model/v1';
const INDEX_SCHEMA = 'fleetscore.index/v1';
const VERSION = /^v(\d{4,})$/;
/** The largest member a model package may hold: bigger models belong in an object store upload, not a tarball. */
const MAX_PACKAGE_MEMBER_BYTES = 256 * 1024 * 1024;

/** What a caller supplies for model.json: everything except what registration assigns or computes. */
export type ModelMetaInput = Omit<
  z.input<typeof modelMetaSchema>,
  'schema' | 'device' | 'version' | 'sha256' | 'createdAt'
>;

/** Arguments of {@link registerModel}. */
export interface RegisterModelInput {
  device: string;
  onnx: Uint8Array;
  meta: ModelMetaInput;
}

/** The version a registration created; the index now points the device at it. */
export interface RegisteredModel {
  device: string;
  version: string;
  sha256: string;
  pool: Pool;
}

/** Overrides for {@link registerModelPackage}: a model.json given apart from the package, pool and threshold. */
export interface PackageOverrides {
  /** A parsed model.json; required for a bare `.onnx`, and replaces the packaged one for a `.tar.gz`. */
  meta?: unknown;
  pool?: Pool;
  threshold?: number;
}

/** sha256 of `bytes` as lowercase hex, the form model.json and the index record. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Reads `models/index.json`; an empty index when there is none yet (a fresh store). */
export async function readIndex(store: ObjectStore): Promise<ModelIndex> {
  const file = keys.modelIndex();
  const bytes = await store.tryGet(file);
  if (bytes === undefined) return { schema: INDEX_SCHEMA, devices: {} };
  const fail = (message: string, field?: string, cause?: unknown) => {
    const device = field?.startsWith('devices.') ? field.split('.')[1] : undefined;
    return new InvalidModelIndex(`${file}: ${message}`, { file, field, device }, { cause });
  };
  const parsed = modelIndexSchema.safeParse(parseJsonBytes(bytes, (m, c) => fail(m, undefined, c)));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.map(String).join('.') || undefined;
    throw fail(`${field ?? 'index'}: ${issue?.message ?? 'invalid'}`, field);
  }
  for (const device of Object.keys(parsed.data.devices)) {
    try {
      safeSegment('device id', device);
    } catch (err) {
      throw fail(`devices: ${(err as Error).message}`, `devices.${device}`, err);
    }
  }
  return parsed.data;
}

/** Reads and validates one version's model.json; it must name the device and version it is stored under. */
export async function readModelMeta(store: ObjectStore, device: string, version: string): Promise<ModelMeta> {
  const file = keys.modelMeta(device, version);
  const bytes = await store.tryGet(file);
  if (bytes === undefined) throw new ModelNotFound(device, file);
  const meta = parseMeta(parseJsonBytes(bytes, invalidJson({ device, file })), { device, file });
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
 * Registers a new immutable version of a device's model: validates model.json and the ONNX graph against each
 * other, writes model.onnx then model.json under the next version (`v0001`, `v0002`, …), then points
 * `models/index.json` at it. The index update is a read-modify-write with no lock: last writer wins, so run one
 * registration at a time per store (the CLI is that one writer). A crash before the index is written leaves an
 * unreferenced version, which the next registration skips.
 */
export async function registerModel(store: ObjectStore, input: RegisterModelInput): Promise<RegisteredModel> {
  const device = safeSegment('device id', input.device);
  const bytes = input.onnx;
  const sha256 = sha256Hex(bytes);
  const version = await nextVersion(store, device);
  const onnxKey = keys.modelOnnx(device, version);
  const metaKey = keys.modelMeta(device, version);

  const meta = parseMeta(
    { ...input.meta, schema: META_SCHEMA, device, version, sha256, createdAt: new Date().toISOString() },
    { device, file: 'model.json' },
  );
  checkGraph(inspectOnnx(bytes, { device, file: 'model.onnx' }), meta, { device, file: 'model.onnx' });

  if ((await store.tryGet(onnxKey)) !== undefined) throw new ModelVersionExists(device, onnxKey);
  if ((await store.tryGet(metaKey)) !== undefined) throw new ModelVersionExists(device, metaKey);
  await store.put(onnxKey, bytes);
  await store.put(metaKey, `${JSON.stringify(meta, null, 2)}\n`);

  const index = await readIndex(store);
  index.devices[device] = { version, pool: meta.pool, sha256 };
  await store.put(keys.modelIndex(), `${JSON.stringify(index, null, 2)}\n`);
  return { device, version, sha256, pool: meta.pool };
}

/**
 * Registers a model from an upload: a `model.tar.gz` (or `.tgz`) holding model.onnx and model.json at its root,
 * or a bare `.onnx` with its model.json given in `overrides.meta`. The archive is read in memory and never
 * extracted; links, devices, absolute or `..` paths and members over 256 MiB are refused. A packaged model.json
 * may carry `sha256` (verified) and `schema`; `device`, `version` and `createdAt` in it are ignored because
 * registration assigns them.
 */
export async function registerModelPackage(
  store: ObjectStore,
  device: string,
  bytes: Uint8Array,
  fileName: string,
  overrides: PackageOverrides = {},
): Promise<RegisteredModel> {
  safeSegment('device id', device);
  const lower = fileName.toLowerCase();
  let onnxBytes: Uint8Array;
  let metaSource: unknown;
  let metaFile: string;
  if (lower.endsWith('.tar.gz') || lower.endsWith('.tgz')) {
    const files = await readPackage(bytes, fileName, device);
    onnxBytes = files.onnx;
    metaFile = overrides.meta === undefined ? `${fileName}:model.json` : 'model.json';
    metaSource = overrides.meta ?? parseJsonBytes(files.meta, invalidJson({ device, file: metaFile }));
  } else if (lower.endsWith('.onnx')) {
    onnxBytes = bytes;
    metaFile = 'model.json';
    if (overrides.meta === undefined) {
      throw new InvalidModel(`${fileName}: a bare .onnx needs its model.json given separately (--meta)`, {
        device,
        file: 'model.json',
      });
    }
    metaSource = overrides.meta;
  } else {
    throw new InvalidModel(`${fileName}: expected a .onnx file or a .tar.gz package`, { device, file: fileName });
  }

  if (typeof metaSource !== 'object' || metaSource === null || Array.isArray(metaSource)) {
    throw new InvalidModel(`${metaFile}: must be a JSON object`, { device, file: metaFile });
  }
  const {
    schema,
    sha256,
    device: _device,
    version: _version,
    createdAt: _createdAt,
    ...rest
  } = metaSource as Record<string, unknown>;
  if (schema !== undefined && schema !== META_SCHEMA) {
    throw new InvalidModel(`${metaFile}: schema is ${JSON.stringify(schema)}, expected ${META_SCHEMA}`, {
      device,
      file: metaFile,
      field: 'schema',
    });
  }
  if (sha256 !== undefined) {
    const actual = sha256Hex(onnxBytes);
    if (sha256 !== actual)
      throw new ModelChecksumMismatch(device, 'model.onnx', JSON.stringify(sha256), actual, metaFile);
  }
  const meta = {
    ...rest,
    ...(overrides.pool === undefined ? {} : { pool: overrides.pool }),
    ...(overrides.threshold === undefined ? {} : { threshold: overrides.threshold }),
  } as ModelMetaInput;
  return registerModel(store, { device, onnx: onnxBytes, meta });
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

function invalidJson(context: { device: string; file: string }): (message: string, cause: unknown) => InvalidModel {
  return (message, cause) => new InvalidModel(`${context.file}: ${message}`, context, { cause });
}

function parseJsonBytes(bytes: Uint8Array, fail: (message: string, cause: unknown) => Error): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw fail(`invalid JSON: ${(err as Error).message}`, err);
  }
}

function parseMeta(value: unknown, context: { device: string; file: string }): ModelMeta {
  const parsed = modelMetaSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.map(String).join('.') || undefined;
    const message = `${context.file}: ${field ?? 'model.json'}: ${issue?.message ?? 'invalid'}`;
    throw new InvalidModel(message, { ...context, field });
  }
  const meta = parsed.data;
  if (meta.preprocessing.type === 'standardize' && meta.preprocessing.scale.some((s) => s === 0)) {
    throw new InvalidModel(`${context.file}: preprocessing.scale must not contain 0`, {
      ...context,
      field: 'preprocessing.scale',
    });
  }
  return meta;
}

interface TensorInfo {
  elemType: onnx.TensorProto.DataType | undefined;
  /** One entry per dimension: a number when static, a string (or undefined) when symbolic or unknown. */
  dims: (number | string | undefined)[] | undefined;
}

interface GraphInfo {
  inputs: Map<string, TensorInfo>;
  outputs: Map<string, TensorInfo>;
}

function inspectOnnx(bytes: Uint8Array, context: { device: string; file: string }): GraphInfo {
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new InvalidModel(`${context.file}: not an ONNX model (${(err as Error).message})`, context, { cause: err });
  }
  const graph = model.graph;
  if (!graph || toNumber(model.irVersion) <= 0 || model.opsetImport.length === 0 || !graph.node?.length) {
    throw new InvalidModel(`${context.file}: not an ONNX model (no ir_version, opset or graph)`, context);
  }
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name));
  if ((graph.initializer ?? []).some((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL)) {
    // External data would make onnxruntime read other files: a model must be one self-contained artifact.
    throw new InvalidModel(`${context.file}: initializers with external data are not supported`, context);
  }
  const info = (v: onnx.IValueInfoProto): [string, TensorInfo] => {
    const t = v.type?.tensorType;
    return [
      v.name ?? '',
      {
        elemType: t?.elemType ?? undefined,
        dims: t?.shape?.dim?.map((d) =>
          d.dimValue !== undefined && d.dimValue !== null && toNumber(d.dimValue) > 0
            ? toNumber(d.dimValue)
            : (d.dimParam ?? undefined),
        ),
      },
    ];
  };
  return {
    inputs: new Map((graph.input ?? []).filter((v) => !initializers.has(v.name)).map(info)),
    outputs: new Map((graph.output ?? []).map(info)),
  };
}

function checkGraph(graph: GraphInfo, meta: ModelMeta, context: { device: string; file: string }): void {
  const fail = (message: string, field: string) =>
    new InvalidModel(`${context.file}: ${message}`, { ...context, field });
  const names = (m: Map<string, TensorInfo>) => [...m.keys()].join(', ') || 'none';
  const input = graph.inputs.get(meta.input.name);
  if (!input) {
    throw fail(`has no input ${JSON.stringify(meta.input.name)} (inputs: ${names(graph.inputs)})`, 'input.name');
  }
  if (graph.inputs.size > 1) {
    throw fail(`has inputs ${names(graph.inputs)}; fleetscore feeds exactly one`, 'input.name');
  }
  if (input.elemType !== undefined && input.elemType !== onnx.TensorProto.DataType.FLOAT) {
    throw fail(`input ${meta.input.name} must be float32 (element type ${input.elemType})`, 'input.name');
  }
  if (input.dims !== undefined) {
    if (input.dims.length !== 2) throw fail(`input ${meta.input.name} must be 2-D [rows, features]`, 'input.name');
    const k = input.dims[1];
    if (typeof k === 'number' && k !== meta.features.length) {
      throw fail(`input ${meta.input.name} takes ${k} features, model.json lists ${meta.features.length}`, 'features');
    }
  }
  const output = graph.outputs.get(meta.output.name);
  if (!output) {
    throw fail(`has no output ${JSON.stringify(meta.output.name)} (outputs: ${names(graph.outputs)})`, 'output.name');
  }
  const { FLOAT, DOUBLE } = onnx.TensorProto.DataType;
  if (output.elemType !== undefined && output.elemType !== FLOAT && output.elemType !== DOUBLE) {
    const message = `output ${meta.output.name} must be float32 or float64 (element type ${output.elemType})`;
    throw fail(message, 'output.name');
  }
  if (output.dims !== undefined) {
    const cols = output.dims.length === 1 ? 1 : output.dims.length === 2 ? output.dims[1] : null;
    if (cols === null) throw fail(`output ${meta.output.name} must be [rows] or [rows, k]`, 'output.name');
    const k = meta.features.length;
    if (meta.output.reconstructionError && (output.dims.length !== 2 || (typeof cols === 'number' && cols !== k))) {
      const message = `output ${meta.output.name} must be a reconstruction [rows, ${k}] to score its error`;
      throw fail(message, 'output.reconstructionError');
    }
    if (typeof cols === 'number' && meta.output.column >= cols) {
      const message = `output ${meta.output.name} has ${cols} column(s); column ${meta.output.column} does not exist`;
      throw fail(message, 'output.column');
    }
  }
}

/** Reads model.onnx and model.json from a (gzipped) tar in memory, refusing anything that could escape a folder. */
async function readPackage(
  bytes: Uint8Array,
  fileName: string,
  device: string,
): Promise<{ onnx: Uint8Array; meta: Uint8Array }> {
  const wanted = new Map<string, Buffer[]>([
    ['model.onnx', []],
    ['model.json', []],
  ]);
  const seen = new Set<string>();
  let failure: InvalidModel | undefined;
  const refuse = (member: string, why: string) =>
    new InvalidModel(`${fileName}: member ${JSON.stringify(member)} ${why}`, { device, file: fileName, field: member });

  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({ strict: true });
    const fail = (err: InvalidModel) => {
      failure ??= err;
      parser.abort(err);
    };
    parser.on('entry', (entry: ReadEntry) => {
      const path = entry.path;
      const name = path.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
      if (path.startsWith('/') || /^[A-Za-z]:/.test(path) || path.includes('\\')) {
        return fail(refuse(path, 'has an absolute path'));
      }
      if (name.split('/').includes('..')) return fail(refuse(path, "has a '..' path segment"));
      if (entry.type === 'Directory') return entry.resume();
      if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile') {
        return fail(refuse(path, `is a ${entry.type}; only regular files are allowed`));
      }
      if (entry.size > MAX_PACKAGE_MEMBER_BYTES) {
        return fail(refuse(path, `is ${entry.size} bytes, over the 256 MiB limit`));
      }
      if (seen.has(name)) return fail(refuse(path, 'appears twice'));
      seen.add(name);
      const chunks = wanted.get(name);
      if (chunks) entry.on('data', (c: Buffer) => chunks.push(c));
      else entry.resume();
    });
    parser.on('error', (err: Error) => {
      const context = { device, file: fileName };
      reject(failure ?? new InvalidModel(`${fileName}: not a valid tar.gz (${err.message})`, context, { cause: err }));
    });
    parser.on('end', () => (failure ? reject(failure) : resolve()));
    parser.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });

  const missing = [...wanted.keys()].filter((m) => !seen.has(m));
  if (missing.length > 0) {
    const message = `${fileName}: package must hold model.onnx and model.json at its root`;
    throw new InvalidModel(`${message} (missing ${missing.join(', ')})`, { device, file: fileName, field: missing[0] });
  }
  const concat = (m: string) => new Uint8Array(Buffer.concat(wanted.get(m) ?? []));
  return { onnx: concat('model.onnx'), meta: concat('model.json') };
}

function toNumber(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}
