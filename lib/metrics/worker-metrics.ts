/**
 * fleetscore's own worker metrics, emitted through the Temporal runtime's metric meter so they reach the same
 * Prometheus exporter as the SDK's worker metrics (lib/temporal/runtime.ts): devices scored, failed and without
 * data, rows, anomalies, inference seconds, model cache hits and misses, where model sessions really ran, where
 * compiled programs and S3 model files came from, how many devices' model folders the worker watches, and the
 * window parts its shard threads read or took from each other.
 */
import type { MetricMeter } from '@temporalio/common';
import type { ModelSessionObserver, SessionPlacement } from '../models/onnx-session-pool';
import { PROGRAM_ORIGINS } from '../models/fast-paths/compiled-models';
import { CUDA_PROVIDER } from '../models/provider-probe';
import type { Pool } from '../shared/names';
import type { ShardSummary } from '../shared/run-types';

/** What a pool worker records. */
export interface WorkerMetrics {
  /** Feeds the model session cache's hooks (cache lookups, inference time, placement). */
  readonly sessions: ModelSessionObserver;
  /** A shard attempt that completed. */
  shardScored(summary: ShardSummary): void;
  /** A shard attempt that failed (Temporal retries it, or the run records its devices as failed). */
  shardAttemptFailed(): void;
}

/** Metric names, without the exporter's `_total` suffix on counters. */
export const METRIC_NAMES = {
  devicesScored: 'fleetscore_devices_scored',
  devicesFailed: 'fleetscore_devices_failed',
  devicesNoData: 'fleetscore_devices_no_data',
  rows: 'fleetscore_rows_scored',
  anomalies: 'fleetscore_anomalies',
  shards: 'fleetscore_shards_scored',
  shardAttemptsFailed: 'fleetscore_shard_attempts_failed',
  shardSeconds: 'fleetscore_shard_seconds',
  inferenceSeconds: 'fleetscore_inference_seconds',
  cacheHits: 'fleetscore_model_cache_hits',
  cacheMisses: 'fleetscore_model_cache_misses',
  sessions: 'fleetscore_model_sessions_created',
  programs: 'fleetscore_model_programs',
  modelFiles: 'fleetscore_model_files_read',
  watchedModelFolders: 'fleetscore_watched_model_folders',
  windowParts: 'fleetscore_window_parts',
} as const;

/** Where a shard's S3 model files came from: the worker's host (kept files) or the store. */
const MODEL_FILE_SOURCES = ['host', 'store'] as const;
/** The source of the files a worker GOT again once idle, to keep them on its host. */
const KEEP_SOURCE = 'keep';

/** Which provider class ran a session's nodes: all on CUDA, all on CPU, or split. */
export function placementClass(p: SessionPlacement['placement']): 'cuda' | 'cpu' | 'mixed' | 'none' {
  const total = Object.values(p).reduce((a, b) => a + b, 0);
  const cuda = p[CUDA_PROVIDER] ?? 0;
  if (total === 0) return 'none';
  return cuda === total ? 'cuda' : cuda === 0 ? 'cpu' : 'mixed';
}

/**
 * Creates the metrics of one pool worker on `meter` (normally `Runtime.instance().metricMeter`), tagged with the
 * pool. `onPlacement` also receives every session placement, for the worker's log.
 */
export function createWorkerMetrics(
  meter: MetricMeter,
  pool: Pool,
  onPlacement?: (placement: SessionPlacement) => void,
): WorkerMetrics {
  const m = meter.withTags({ pool });
  const counter = (name: string, description: string) => m.createCounter(name, undefined, description);
  const devicesScored = counter(METRIC_NAMES.devicesScored, 'devices scored');
  const devicesFailed = counter(METRIC_NAMES.devicesFailed, 'devices that failed (bad data or model)');
  const devicesNoData = counter(METRIC_NAMES.devicesNoData, 'devices with no rows in the window');
  const rows = counter(METRIC_NAMES.rows, 'rows scored');
  const anomalies = counter(METRIC_NAMES.anomalies, 'rows flagged anomalous');
  const shards = counter(METRIC_NAMES.shards, 'shard attempts completed');
  const attemptsFailed = counter(METRIC_NAMES.shardAttemptsFailed, 'shard attempts that failed');
  const cacheHits = counter(METRIC_NAMES.cacheHits, 'model loads served by a cached session');
  const cacheMisses = counter(METRIC_NAMES.cacheMisses, 'model loads that created a session');
  const sessions = counter(METRIC_NAMES.sessions, 'sessions whose placement was checked, by where nodes ran');
  const programs = counter(METRIC_NAMES.programs, "devices' compiled programs, by origin: cached, saved or compiled");
  const modelFiles = counter(
    METRIC_NAMES.modelFiles,
    'S3 model files read, by source: host (kept on this host), store (a GET for a shard) or keep (a GET again, ' +
      'once idle, to keep on this host a file a shard read)',
  );
  const watched = m.createGauge(
    METRIC_NAMES.watchedModelFolders,
    'int',
    undefined,
    "devices' model folders watched (local store): checked without a stat per file",
  );
  const windowParts = counter(
    METRIC_NAMES.windowParts,
    "window parts a shard thread read from the store (how=read) or took from another thread's read (how=taken)",
  );
  const shardSeconds = m.createHistogram(METRIC_NAMES.shardSeconds, 'float', 's', 'wall time of a shard attempt');
  const inferenceSeconds = m.createHistogram(
    METRIC_NAMES.inferenceSeconds,
    'float',
    's',
    'wall time of one inference call: one device, or a stack of recognised Mahalanobis models',
  );
  // Exported at 0 from the start, so a dashboard shows "none yet" rather than "no data" (deploy/grafana).
  const counters = [devicesScored, devicesFailed, devicesNoData, rows, anomalies, shards, attemptsFailed];
  for (const c of [...counters, cacheHits, cacheMisses]) c.add(0);
  for (const origin of PROGRAM_ORIGINS) programs.add(0, { origin });
  for (const source of [...MODEL_FILE_SOURCES, KEEP_SOURCE]) modelFiles.add(0, { source });
  watched.set(0);
  for (const how of ['read', 'taken'] as const) windowParts.add(0, { how });
  return {
    sessions: {
      cacheLookup: (hit) => (hit ? cacheHits : cacheMisses).add(1),
      inference: (seconds) => inferenceSeconds.record(seconds),
      placement: (p) => {
        sessions.add(1, { placement: placementClass(p.placement) });
        onPlacement?.(p);
      },
      program: (origin) => programs.add(1, { origin }),
      modelFilesFetched: (count) => modelFiles.add(count, { source: KEEP_SOURCE }),
      watchedModelFolders: (count) => watched.set(count),
      windowParts: (how, count) => windowParts.add(count, { how }),
    },
    shardScored(s) {
      devicesScored.add(s.scored);
      devicesFailed.add(s.failed);
      devicesNoData.add(s.noData);
      rows.add(s.rows);
      anomalies.add(s.anomalies);
      shards.add(1);
      shardSeconds.record(s.durationMs / 1000);
      const files = s.modelFiles;
      if (files) for (const source of MODEL_FILE_SOURCES) modelFiles.add(files[source], { source });
    },
    shardAttemptFailed: () => attemptsFailed.add(1),
  };
}
