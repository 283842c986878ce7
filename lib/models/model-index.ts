/**
 * `models/index.json`: which immutable version each device is scored with. Registration writes versions first
 * and then moves the index in one read-modify-write, for one model or ten thousand.
 */
import { keys, safeSegment } from '../shared/keys';
import type { Pool } from '../shared/names';
import type { ObjectStore } from '../store/object-store';
import { parseJsonBytes } from './json-bytes';
import { InvalidModelIndex } from '../shared/errors';
import { modelIndexSchema, type ModelIndex } from './model-meta';

const INDEX_SCHEMA = 'fleetscore.index/v1';

/** One device's move: the version the index points it at from now on. */
export interface IndexMove {
  device: string;
  version: string;
  sha256: string;
  pool: Pool;
}

/**
 * The index this process read last, with its bytes: a worker plans every hour from an index that rarely changes,
 * and parsing and validating 10,000 devices' entries took 25 to 31 ms of each run's plan.
 */
let lastRead: { uri: string; bytes: Uint8Array; index: ModelIndex } | undefined;

/**
 * Reads `models/index.json`; an empty index when there is none yet (a fresh store). The same bytes as last time
 * give the same object: do not modify it.
 */
export async function readIndex(store: ObjectStore): Promise<ModelIndex> {
  const file = keys.modelIndex();
  const bytes = await store.tryGet(file);
  if (bytes === undefined) return { schema: INDEX_SCHEMA, devices: {} };
  if (lastRead?.uri === store.uri && Buffer.compare(lastRead.bytes, bytes) === 0) return lastRead.index;
  const index = parseIndex(file, bytes);
  lastRead = { uri: store.uri, bytes, index };
  return index;
}

/** The index in `bytes`, validated: every device id a plain path segment. */
function parseIndex(file: string, bytes: Uint8Array): ModelIndex {
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

/**
 * Points every device of `moves` at its new version in one read-modify-write of the index (the other devices keep
 * theirs). There is no lock: last writer wins, so run one registration at a time per store (the CLI is that one
 * writer). The versions must already be written: scoring reads them as soon as the index names them.
 */
export async function moveIndex(store: ObjectStore, moves: readonly IndexMove[]): Promise<void> {
  if (moves.length === 0) return;
  const index = await readIndex(store);
  const devices = { ...index.devices };
  for (const { device, version, pool, sha256 } of moves) {
    devices[safeSegment('device id', device)] = { version, pool, sha256 };
  }
  await store.put(keys.modelIndex(), `${JSON.stringify({ ...index, devices }, null, 2)}\n`);
}
