/** Worker sizing, JSON log lines and the window/shard log attributes, without a server. */
import { cgroupCpuQuota, shardSizing, slotOptions } from '../../workers/worker-slots';
import { cacheBudgets } from '../../workers/pool-worker';
import { shardAttributes } from '../../workers/activity-log-attributes';
import { formatJsonLogEntry, logFormatFrom } from '../../lib/temporal/runtime';

const files = (entries: Record<string, string>) => (path: string) => {
  const v = entries[path];
  if (v === undefined) throw new Error(`ENOENT ${path}`);
  return v;
};

test('reads a container CPU quota from cgroup v2 and v1, and none when unlimited', () => {
  expect(cgroupCpuQuota(files({ '/sys/fs/cgroup/cpu.max': '250000 100000\n' }))).toBe(2.5);
  expect(cgroupCpuQuota(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' }))).toBeUndefined();
  expect(
    cgroupCpuQuota(
      files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '400000', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' }),
    ),
  ).toBe(4);
  expect(
    cgroupCpuQuota(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '1' })),
  ).toBeUndefined();
  expect(cgroupCpuQuota(files({}))).toBeUndefined();
});

test('the cpu pool scores on a thread per usable CPU and holds two shards per thread; the gpu pool a fixed 2', () => {
  expect(shardSizing('cpu', {}, { cores: 16, quota: undefined })).toEqual({
    slots: 32,
    threads: 16,
    scoring: 16,
    reason: '32 (two per shard thread, one thread per CPU: 16 cores, no CPU quota)',
  });
  expect(shardSizing('cpu', {}, { cores: 16, quota: 2.5 })).toMatchObject({ slots: 6, threads: 3, scoring: 3 });
  expect(shardSizing('cpu', {}, { cores: 4, quota: 0.2 })).toMatchObject({ slots: 2, threads: 1 });
  expect(shardSizing('gpu', {}, { cores: 64, quota: undefined })).toEqual({
    slots: 2,
    threads: 0,
    scoring: 2,
    reason: '2 (gpu pool: fixed, the tuner does not see the GPU)',
  });
});

test('--shards and --shard-threads override the sizing; scoring counts the threads where there are any', () => {
  const machine = { cores: 4, quota: undefined };
  // --shards alone: as many threads as it allows, up to one per CPU; beyond that, more shards per thread.
  expect(shardSizing('cpu', { shards: 2 }, machine)).toMatchObject({ slots: 2, threads: 2, scoring: 2 });
  expect(shardSizing('cpu', { shards: 8 }, machine)).toEqual({
    slots: 8,
    threads: 4,
    scoring: 4,
    reason: '8 (--shards)',
  });
  // --shard-threads alone: two slots per thread; none scores on the event loop, one shard per CPU.
  expect(shardSizing('cpu', { threads: 1 }, machine)).toEqual({
    slots: 2,
    threads: 1,
    scoring: 1,
    reason: '2 (two per shard thread, --shard-threads)',
  });
  expect(shardSizing('cpu', { threads: 0 }, machine)).toEqual({
    slots: 4,
    threads: 0,
    scoring: 4,
    reason: '4 (one per CPU: 4 cores, no CPU quota)',
  });
  expect(shardSizing('gpu', { shards: 3 }, machine)).toEqual({
    slots: 3,
    threads: 0,
    scoring: 3,
    reason: '3 (--shards)',
  });
});

test('cache budgets: an option wins over the environment, which wins over the defaults', () => {
  const MIB = 2 ** 20;
  const unset = { partsCacheMb: undefined, compiledCacheMb: undefined, maxSessions: undefined };
  expect(cacheBudgets({}, unset)).toEqual({
    partsBytes: 768 * MIB,
    compiledBytes: 768 * MIB,
    maxSessions: 4096,
    text: 'caches: parsed parts 768 MiB, compiled models 768 MiB, model sessions 4096',
  });
  // Sessions on CUDA hold GPU memory each: fewer by default.
  expect(cacheBudgets({}, unset, true)).toMatchObject({ maxSessions: 64, text: expect.stringMatching(/sessions 64$/) });
  const env = { partsCacheMb: 2048, compiledCacheMb: 256, maxSessions: 500 };
  expect(cacheBudgets({}, env, true)).toMatchObject({
    partsBytes: 2048 * MIB,
    compiledBytes: 256 * MIB,
    maxSessions: 500,
  });
  expect(cacheBudgets({ compiledCacheMb: 4096, maxSessions: 8 }, env)).toMatchObject({
    partsBytes: 2048 * MIB,
    compiledBytes: 4096 * MIB,
    maxSessions: 8,
  });
});

test('fixed slots, or the resource-based tuner on the cpu pool only', () => {
  expect(slotOptions('cpu', 'fixed', 8)).toEqual({ maxConcurrentActivityTaskExecutions: 8 });
  expect(slotOptions('gpu', 'resource-based', 2)).toEqual({ maxConcurrentActivityTaskExecutions: 2 });
  const tuned = slotOptions('cpu', 'resource-based', 8);
  expect(tuned.maxConcurrentActivityTaskExecutions).toBeUndefined();
  expect(tuned.tuner).toMatchObject({
    tunerOptions: { targetCpuUsage: 0.8, targetMemoryUsage: 0.8 },
    activityTaskSlotOptions: { minimumSlots: 1, maximumSlots: 16 },
  });
});

test('JSON log lines parse, carry the entry attributes, and survive errors and bigints', () => {
  const line = formatJsonLogEntry({
    level: 'WARN',
    message: 'device failed',
    timestampNanos: 1_700_000_000_123_000_000n,
    meta: {
      workflowId: 'w',
      workflowRunId: 'r',
      window: '2026-11-21T12',
      shard: 3,
      attempt: 2,
      error: new TypeError('x'),
      n: 5n,
    },
  });
  expect(JSON.parse(line)).toEqual({
    time: '2023-11-14T22:13:20.123Z',
    level: 'warn',
    message: 'device failed',
    workflowId: 'w',
    workflowRunId: 'r',
    window: '2026-11-21T12',
    shard: 3,
    attempt: 2,
    error: { name: 'TypeError', message: 'x' },
    n: '5',
  });
  expect(logFormatFrom('JSON')).toBe('json');
  expect(() => logFormatFrom('yaml')).toThrow(/text or json/);
});

test('activity log lines get the window and shard of the request', () => {
  expect(shardAttributes([{ store: 's', window: '2026-11-21T12', shard: 4, runId: 'p' }])).toEqual({
    window: '2026-11-21T12',
    shard: 4,
  });
  expect(shardAttributes([{ store: 's', window: '2026-11-21T12' }])).toEqual({ window: '2026-11-21T12' });
  expect(shardAttributes([])).toEqual({});
});
