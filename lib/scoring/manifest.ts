/**
 * The files a run commits besides predictions: per-shard plans and status files, and the window's manifest,
 * written last. A reader trusts a window only when its manifest exists, and reads only the shards it lists.
 */
import { keys } from '../shared/keys';
import type { AggregatesLayout, Pool, PredictionsFormat } from '../shared/names';
import type { ProgramOrigin } from '../models/fast-paths/compiled-models';
import type { ObjectStore, StoredObject } from '../store/object-store';
import { withRunId, type ModelFileReads, type RunCounts } from '../shared/run-types';
import { InvalidPlan, messageOf } from '../shared/errors';

/** The model version planned for one device. */
export interface PlannedDevice {
  device: string;
  version: string;
  sha256: string;
}

/** `_plan/shard-NNNNN.json`: the devices of one shard and the aggregate parts of the window, pinned at plan time. */
export interface ShardPlanFile {
  schema: 'fleetscore.shard-plan/v1';
  window: string;
  shard: number;
  pool: Pool;
  /**
   * Unique per run (the workflow's run id): names the folder of the run's files, and workers cache parsed
   * aggregate parts per plan, so a re-run re-reads rewritten files.
   */
  runId: string;
  parts: string[];
  /** Where each device's rows may be; absent in plans written before it existed, which read as `any`. */
  layout?: AggregatesLayout;
  /** The format of the shard's prediction file; absent in plans written before it existed, which read as `arrow`. */
  predictionsFormat?: PredictionsFormat;
  devices: PlannedDevice[];
}

/** One input part a run read, as the store listed it when the run planned. */
export interface InputPart {
  key: string;
  size: number;
  /** Last-modified time, ISO 8601. */
  lastModified: string;
  /** S3's ETag; absent in the local store, where size and time tell a change. */
  etag?: string;
}

/** `_plan/input.json`: the input a run's plan pinned, copied into the manifest by the commit. */
export interface RunInputFile {
  schema: 'fleetscore.run-input/v1';
  window: string;
  runId: string;
  parts: InputPart[];
}

/** What happened to one device in a run. */
export type DeviceOutcome =
  | {
      status: 'scored';
      version: string;
      rows: number;
      anomalies: number;
      /**
       * How the model was scored: `stacked-mahalanobis`, `compiled:<family>` or `session` (absent in manifests
       * written before it existed).
       */
      path?: string;
    }
  | { status: 'no-data'; version: string }
  | { status: 'failed'; version?: string; reason: string; file?: string; field?: string };

/** `shard-NNNNN.json`: the outcome of every device of a shard, written by the attempt that succeeded. */
export interface ShardStatusFile {
  schema: 'fleetscore.shard-status/v1';
  window: string;
  shard: number;
  pool: Pool;
  /** The plan this status belongs to; the commit checks it against its own. */
  runId: string;
  attempt: number;
  /** Key of the predictions file, absent when no device produced a row. */
  predictions?: string;
  counts: RunCounts;
  /** Where the compiled fast path's programs of its scored devices came from; absent when none (or before it). */
  programs?: ProgramOriginCounts;
  /**
   * Where the model files it read came from, on an S3 store whose files the worker keeps on its host: that folder or
   * S3 (lib/store/kept-model-files.ts); absent when it read none (a warm worker), or keeps none.
   */
  modelFiles?: ModelFileReads;
  devices: Record<string, DeviceOutcome>;
}

/** Devices whose compiled program was in the worker's memory, read from the saved-programs folder, or compiled. */
export type ProgramOriginCounts = Partial<Record<ProgramOrigin, number>>;

/** One shard in the manifest. */
export interface ManifestShard {
  shard: number;
  pool: Pool;
  devices: number;
  status: 'committed' | 'failed';
  predictions?: string;
  attempt?: number;
  reason?: string;
  /** Where its compiled programs came from (as in its shard status). */
  programs?: ProgramOriginCounts;
  /** Where the model files it read came from (as in its shard status). */
  modelFiles?: ModelFileReads;
}

/** `_manifest.json`: the commit marker of a window, with counts and every device's outcome. */
export interface Manifest {
  schema: 'fleetscore.manifest/v1';
  window: string;
  windowStart: string;
  windowEnd: string;
  scheduleId?: string;
  workflowId: string;
  /** The run whose files (`predictions/window=W/run=<runId>/`) this commit lists; no other files count. */
  runId: string;
  /**
   * When the run started (its workflow's run start time). A commit only moves a window forward: a run that
   * started before the committed one cannot replace it. Absent in manifests written before the commit fence.
   */
  runStartedAt?: string;
  /** The run whose commit this one replaced, and when that was committed. */
  supersedes?: { runId: string; committedAt: string };
  committedAt: string;
  store: string;
  counts: RunCounts;
  shards: ManifestShard[];
  devices: Record<string, DeviceOutcome>;
  /**
   * The input parts the run read (key, size, ETag or modification time), so a part added, replaced or removed
   * since is found (`fleetscore runs stale`). Absent in manifests of runs from before it was recorded.
   */
  input?: { parts: InputPart[] };
  /**
   * Device ids that have rows in the window's aggregates but no model in the plan, so they were not scored:
   * how many, and the first ones (sorted, at most `UNKNOWN_DEVICES_LISTED`). Untrusted strings from the data.
   */
  unknownDevices?: { count: number; devices: string[] };
}

/** How many unknown device ids a manifest lists by name. */
export const UNKNOWN_DEVICES_LISTED = 100;

/** Reads and parses a JSON file fleetscore wrote, checking its schema tag. */
export async function readJsonFile<T extends { schema: string }>(
  store: ObjectStore,
  key: string,
  schema: T['schema'],
): Promise<T> {
  const bytes = await store.tryGet(key);
  if (bytes === undefined) throw new InvalidPlan('missing', key);
  return parseJsonDocument<T>(bytes, key, schema);
}

/** Parses the bytes of a JSON file fleetscore wrote, checking its schema tag; `key` names it in errors. */
export function parseJsonDocument<T extends { schema: string }>(
  bytes: Uint8Array,
  key: string,
  schema: T['schema'],
): T {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new InvalidPlan(`not JSON (${messageOf(err)})`, key);
  }
  if (typeof value !== 'object' || value === null || (value as { schema?: unknown }).schema !== schema) {
    throw new InvalidPlan(`expected a ${schema} document`, key);
  }
  return withRunId(value) as T;
}

/** A manifest's bytes, parsed and checked. */
export function parseManifest(bytes: Uint8Array, key: string): Manifest {
  return parseJsonDocument<Manifest>(bytes, key, 'fleetscore.manifest/v1');
}

/** The committed manifest of a window, or `undefined` when the window has not been committed. */
export async function readManifest(store: ObjectStore, window: string): Promise<Manifest | undefined> {
  if ((await store.tryGet(keys.manifest(window))) === undefined) return undefined;
  return readJsonFile<Manifest>(store, keys.manifest(window), 'fleetscore.manifest/v1');
}

/** Ids of every committed window in the store, oldest first. */
export async function listCommittedWindows(store: ObjectStore): Promise<string[]> {
  const manifests = (await store.list('predictions/')).filter((k) => k.endsWith('/_manifest.json'));
  return manifests.map((k) => k.slice('predictions/window='.length, -'/_manifest.json'.length));
}

/** A listed input part as a manifest records it. */
export function inputPart(o: StoredObject): InputPart {
  return {
    key: o.key,
    size: o.size,
    lastModified: o.lastModified.toISOString(),
    ...(o.etag === undefined ? {} : { etag: o.etag }),
  };
}

/** The input a run's plan recorded, or `undefined` for a plan from before it was recorded. */
export async function readRunInput(
  store: ObjectStore,
  window: string,
  runId: string,
): Promise<InputPart[] | undefined> {
  const key = keys.runInput(window, runId);
  const bytes = await store.tryGet(key);
  return bytes && parseJsonDocument<RunInputFile>(bytes, key, 'fleetscore.run-input/v1').parts;
}
