/** Worker sizing, JSON log lines and the window/shard log attributes, without a server. */
import { cgroupCpuQuota, defaultShardSlots, slotOptions } from '../../workers/worker-slots';
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

test('the cpu pool runs one shard per usable CPU; the gpu pool a fixed 2', () => {
  expect(defaultShardSlots('cpu', { cores: 16, quota: undefined }).slots).toBe(16);
  expect(defaultShardSlots('cpu', { cores: 16, quota: 2.5 })).toEqual({
    slots: 3,
    reason: '3 (one per CPU: 16 cores, CPU quota 2.5)',
  });
  expect(defaultShardSlots('cpu', { cores: 4, quota: 0.2 }).slots).toBe(1);
  expect(defaultShardSlots('gpu', { cores: 64, quota: undefined }).slots).toBe(2);
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
