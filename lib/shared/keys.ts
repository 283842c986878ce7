import { InvalidPathSegment, InvalidWindow } from './errors';
import type { PredictionsFormat } from './names';
/**
 * The store layout (identical under a local folder and S3) and the validation of every user-supplied path
 * segment before it becomes part of a key. No Node imports: the workflow shares the shard naming.
 */

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Returns `value` when it is safe as one path segment (no separators, no `..`, no control characters). */
export function safeSegment(field: string, value: string): string {
  if (typeof value !== 'string' || !SEGMENT.test(value) || value.includes('..')) {
    throw new InvalidPathSegment(field, String(value));
  }
  return value;
}

/** Returns `hourId` when it is a safe segment that names one hour, not a window of several (`…_24h`). */
function hourlySegment(hourId: string): string {
  safeSegment('window', hourId);
  if (/_\d+h$/.test(hourId)) {
    throw new InvalidWindow(`input folders are hourly: ${hourId} is a window of several hours`, hourId);
  }
  return hourId;
}

/** Zero-padded shard name: shard 17 is `shard-00017`. */
export function shardName(shard: number): string {
  if (!Number.isInteger(shard) || shard < 0 || shard > 99_999) throw new InvalidPathSegment('shard', String(shard));
  return `shard-${String(shard).padStart(5, '0')}`;
}

/**
 * The completion marker a producer may write into an hourly input folder once all of its parts are there
 * (`aggregates/window=2026-11-21T12/_SUCCESS`, as Spark and Hadoop jobs write it). A run waits for it only when
 * asked (`inputMarker`); its content is not read.
 */
export const INPUT_MARKER = '_SUCCESS';

/** What an attempt log belongs to: a shard (its number) or the run's commit. */
export type LogUnit = number | 'commit';

/** Key builders for everything fleetscore reads and writes. */
export const keys = {
  /** The input folder of one hour: a window of N hours reads the folders of its hours (`hourlyIdsOf`). */
  aggregatesPrefix: (hourId: string) => `aggregates/window=${hourlySegment(hourId)}/`,
  aggregatesPart: (windowId: string, part: number) =>
    `${keys.aggregatesPrefix(windowId)}part-${String(part).padStart(5, '0')}.arrow`,
  /** The producer's completion marker of one hour's input; see {@link INPUT_MARKER}. */
  inputMarker: (hourId: string) => `${keys.aggregatesPrefix(hourId)}${INPUT_MARKER}`,
  /** Where every model lives. */
  modelsRoot: () => 'models/',
  modelIndex: () => 'models/index.json',
  modelDir: (device: string, version: string) =>
    `models/${safeSegment('device id', device)}/${safeSegment('model version', version)}/`,
  modelOnnx: (device: string, version: string) => `${keys.modelDir(device, version)}model.onnx`,
  modelMeta: (device: string, version: string) => `${keys.modelDir(device, version)}model.json`,
  /** Where the predictions of every window live. */
  predictionsRoot: () => 'predictions/',
  predictionsPrefix: (windowId: string) => `${keys.predictionsRoot()}window=${safeSegment('window', windowId)}/`,
  /** The files of one run's plan: two runs of a window never write each other's files (the fence). */
  runPrefix: (windowId: string, runId: string) =>
    `${keys.predictionsPrefix(windowId)}run=${safeSegment('run id', runId)}/`,
  /** A shard's predictions file, `.arrow` (Arrow IPC) or `.parquet`. */
  predictions: (windowId: string, runId: string, shard: number, format: PredictionsFormat = 'arrow') =>
    `${keys.runPrefix(windowId, runId)}${shardName(shard)}.${format}`,
  shardStatus: (windowId: string, runId: string, shard: number) =>
    `${keys.runPrefix(windowId, runId)}${shardName(shard)}.json`,
  /** The input a run's plan read: every part with its size and version, for the manifest and late-data checks. */
  runInput: (windowId: string, runId: string) => `${keys.runPrefix(windowId, runId)}_plan/input.json`,
  shardPlan: (windowId: string, runId: string, shard: number) =>
    `${keys.runPrefix(windowId, runId)}_plan/${shardName(shard)}.json`,
  manifest: (windowId: string) => `${keys.predictionsPrefix(windowId)}_manifest.json`,
  /** Where the attempt logs of every window live. */
  logsRoot: () => 'logs/',
  logsPrefix: (windowId: string) => `${keys.logsRoot()}window=${safeSegment('window', windowId)}/`,
  /** The attempt logs of one run. */
  runLogsPrefix: (windowId: string, runId: string) =>
    `${keys.logsPrefix(windowId)}run=${safeSegment('run id', runId)}/`,
  /** The attempt logs of one shard (`unit` is the shard number) or of the commit. */
  unitLogsPrefix: (windowId: string, runId: string, unit: LogUnit) =>
    `${keys.runLogsPrefix(windowId, runId)}${typeof unit === 'number' ? shardName(unit) : unit}/`,
  attemptLog: (windowId: string, runId: string, unit: LogUnit, attempt: number) =>
    `${keys.unitLogsPrefix(windowId, runId, unit)}attempt-${String(attempt).padStart(3, '0')}.jsonl`,
  demoTruth: (hourId: string) => `demo/ground-truth/window=${hourlySegment(hourId)}.json`,
} as const;

const RUN_FOLDER = /^(?:predictions|logs)\/window=([^/]+)\/run=([^/]+)\//;

/**
 * The run folder a listed key lies in: a key under `predictions/window=W/run=R/` or `logs/window=W/run=R/` gives
 * `{ window: W, runId: R }`, any other key (a manifest, an aggregates part) undefined. Both come from a listing,
 * so they are checked again (by the key builders) before they name anything to read or delete.
 */
export function runFolderOf(key: string): { window: string; runId: string } | undefined {
  const m = RUN_FOLDER.exec(key);
  return m ? { window: m[1] as string, runId: m[2] as string } : undefined;
}
