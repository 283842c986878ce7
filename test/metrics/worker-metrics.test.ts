/**
 * The worker's own counters, recorded on a meter that keeps what it is given: where a shard's S3 model files came
 * from reaches `fleetscore_model_files_read{source}` (0 for every source from the start, so a dashboard shows
 * "none"), next to the device counts of the same shard; the gauge of watched model folders from 0; the window parts
 * read or taken, by how, from 0.
 */
import type { MetricMeter, MetricTags } from '@temporalio/common';
import { createWorkerMetrics, METRIC_NAMES } from '../../lib/metrics/worker-metrics';
import type { ShardSummary } from '../../lib/shared/run-types';

/** One value a metric was given: counters' adds, histograms' records. */
interface Recorded {
  name: string;
  value: number;
  tags: MetricTags;
}

/** A meter whose metrics push every value, with their tags, to `recorded`. */
function recordingMeter(recorded: Recorded[], tags: MetricTags = {}): MetricMeter {
  const metric = (name: string, kind: string, base: MetricTags) => {
    const record = (value: number, extra?: MetricTags) => recorded.push({ name, value, tags: { ...base, ...extra } });
    return {
      name,
      kind,
      add: record,
      record,
      set: record,
      withTags: (t: MetricTags) => metric(name, kind, { ...base, ...t }),
    };
  };
  return {
    createCounter: (name: string) => metric(name, 'counter', tags),
    createHistogram: (name: string) => metric(name, 'histogram', tags),
    createGauge: (name: string) => metric(name, 'gauge', tags),
    withTags: (more: MetricTags) => recordingMeter(recorded, { ...tags, ...more }),
  } as unknown as MetricMeter;
}

const summary: ShardSummary = {
  shard: 0,
  pool: 'cpu',
  devices: 4,
  attempt: 1,
  scored: 3,
  noData: 1,
  failed: 0,
  rows: 180,
  anomalies: 2,
  failures: [],
  durationMs: 1500,
};

/** The sum of what `name` was given with every tag of `tags`. */
function total(recorded: Recorded[], name: string, tags: MetricTags): number {
  const matches = (r: Recorded) => Object.entries(tags).every(([k, v]) => r.tags[k] === v);
  return recorded.filter((r) => r.name === name && matches(r)).reduce((sum, r) => sum + r.value, 0);
}

test("counts where a shard's S3 model files came from, by source, from 0", () => {
  const recorded: Recorded[] = [];
  const metrics = createWorkerMetrics(recordingMeter(recorded), 'cpu');
  const files = METRIC_NAMES.modelFiles;
  for (const source of ['host', 'store', 'keep']) {
    expect(recorded).toContainEqual({ name: files, value: 0, tags: { pool: 'cpu', source } });
  }
  metrics.shardScored({ ...summary, modelFiles: { host: 6, store: 2 } });
  metrics.shardScored({ ...summary, modelFiles: { host: 8, store: 0 } });
  // A shard that read no model file (a warm worker, or a local store) adds nothing.
  metrics.shardScored(summary);
  // Files read again once idle, to keep them on the host, are counted apart.
  metrics.sessions.modelFilesFetched?.(5);
  expect(total(recorded, files, { pool: 'cpu', source: 'host' })).toBe(14);
  expect(total(recorded, files, { pool: 'cpu', source: 'store' })).toBe(2);
  expect(total(recorded, files, { pool: 'cpu', source: 'keep' })).toBe(5);
  expect(total(recorded, METRIC_NAMES.devicesScored, { pool: 'cpu' })).toBe(9);
  expect(total(recorded, METRIC_NAMES.shards, { pool: 'cpu' })).toBe(3);
});

test('the gauge of watched model folders starts at 0 and takes what the watches count', () => {
  const recorded: Recorded[] = [];
  const metrics = createWorkerMetrics(recordingMeter(recorded), 'cpu');
  const watched = () => recorded.filter((r) => r.name === METRIC_NAMES.watchedModelFolders).map((r) => r.value);
  expect(watched()).toEqual([0]);
  metrics.sessions.watchedModelFolders?.(10_000);
  metrics.sessions.watchedModelFolders?.(9_999);
  expect(watched()).toEqual([0, 10_000, 9_999]);
});

test('counts the window parts shard threads read or took from each other, each from 0', () => {
  const recorded: Recorded[] = [];
  const metrics = createWorkerMetrics(recordingMeter(recorded), 'cpu');
  const parts = METRIC_NAMES.windowParts;
  expect(recorded.filter((r) => r.name === parts).map((r) => [r.tags.how, r.value])).toEqual([
    ['read', 0],
    ['taken', 0],
  ]);
  metrics.sessions.windowParts?.('read', 5);
  metrics.sessions.windowParts?.('taken', 4);
  metrics.sessions.windowParts?.('taken', 1);
  expect(total(recorded, parts, { pool: 'cpu', how: 'read' })).toBe(5);
  expect(total(recorded, parts, { pool: 'cpu', how: 'taken' })).toBe(5);
});
