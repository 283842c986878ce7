/**
 * A model upload turned into a registration: a `model.tar.gz` (or `.tgz`) holding model.onnx and model.json at
 * its root, or a bare `.onnx` with its model.json given apart, with the CLI's overrides applied. A model whose
 * weights are external data (model.onnx.data beside it, in its folder or package) is stored with them inside.
 */
import { safeSegment } from '../shared/keys';
import type { Pool } from '../shared/names';
import type { ObjectStore } from '../store/object-store';
import { parseJsonBytes } from './json-bytes';
import { InvalidModel, ModelChecksumMismatch } from '../shared/errors';
import { inlineExternalData, type ExternalFiles } from './external-data';
import { memberName, readPackage } from './package-reader';
import {
  META_SCHEMA,
  registerModel,
  sha256Hex,
  type ModelMetaInput,
  type RegisteredModel,
  type RegisterModelInput,
  type ModelCheck,
} from './model-registry';

/** Overrides for {@link registerModelPackage}: a model.json given apart from the package, pool and threshold. */
export interface PackageOverrides {
  /** A parsed model.json; required for a bare `.onnx`, and replaces the packaged one for a `.tar.gz`. */
  meta?: unknown;
  /** Where `meta` was read from, named in errors (default `model.json`). */
  metaFile?: string;
  pool?: Pool;
  threshold?: number;
  /**
   * Reads the files a bare `.onnx`'s external data names, relative to its folder (a package's come from the
   * package); without it such a model is refused.
   */
  externalFiles?: ExternalFiles;
}

/**
 * Reads an upload into what registration takes, without writing anything. A packaged model.json may carry
 * `sha256` (verified) and `schema`; `device`, `version` and `createdAt` in it are ignored because registration
 * assigns them. The archive is read in memory and never extracted (see package-reader.ts).
 */
export async function readModelUpload(
  device: string,
  bytes: Uint8Array,
  fileName: string,
  overrides: PackageOverrides = {},
): Promise<RegisterModelInput> {
  safeSegment('device id', device);
  const lower = fileName.toLowerCase();
  let onnxBytes: Uint8Array;
  let onnxFile = 'model.onnx';
  let externalFiles = overrides.externalFiles;
  let metaSource: unknown;
  let metaFile: string;
  if (lower.endsWith('.tar.gz') || lower.endsWith('.tgz')) {
    const files = await readPackage(bytes, fileName, device);
    onnxBytes = files.onnx;
    onnxFile = `${fileName}:model.onnx`;
    externalFiles = (location) => {
      const file = files.others.get(memberName(location.replaceAll('\\', '/')));
      return file ? Promise.resolve(file) : Promise.reject(new Error(`${fileName} holds no ${location}`));
    };
    metaFile = overrides.meta === undefined ? `${fileName}:model.json` : (overrides.metaFile ?? 'model.json');
    metaSource =
      overrides.meta ??
      parseJsonBytes(
        files.meta,
        (m, cause) => new InvalidModel(`${metaFile}: ${m}`, { device, file: metaFile }, { cause }),
      );
  } else if (lower.endsWith('.onnx')) {
    onnxBytes = bytes;
    onnxFile = fileName;
    metaFile = overrides.metaFile ?? 'model.json';
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
    const recorded = typeof sha256 === 'string' ? sha256 : JSON.stringify(sha256);
    if (sha256 !== actual) throw new ModelChecksumMismatch(device, 'model.onnx', recorded, actual, metaFile);
  }
  // After the checksum, which is of the model as given: the stored model holds its external data.
  onnxBytes = await inlineExternalData(onnxBytes, externalFiles, { device, file: onnxFile });
  const meta = {
    ...rest,
    ...(overrides.pool === undefined ? {} : { pool: overrides.pool }),
    ...(overrides.threshold === undefined ? {} : { threshold: overrides.threshold }),
  } as ModelMetaInput;
  return { device, onnx: onnxBytes, meta, metaFile, onnxFile };
}

/**
 * Registers a model from an upload (see {@link readModelUpload}): a new version, then the index moved to it;
 * `check` may refuse what would be written (see {@link ModelCheck}).
 */
export async function registerModelPackage(
  store: ObjectStore,
  device: string,
  bytes: Uint8Array,
  fileName: string,
  overrides: PackageOverrides = {},
  check?: ModelCheck,
): Promise<RegisteredModel> {
  return registerModel(store, await readModelUpload(device, bytes, fileName, overrides), check);
}
