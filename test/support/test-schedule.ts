/** The schedule declaration tests start from: fleetscore's hourly schedule (schedules/fleet-schedules.ts). */
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { FleetSchedule } from '../../schedules/schedule-declaration';

/** Hourly at five past, buffer one, 2 h catch-up, 30 s jitter, one-hour windows; `overrides` on top. */
export function testSchedule(id: string, overrides: Partial<FleetSchedule> = {}): FleetSchedule {
  return {
    id,
    description: `test schedule ${id}`,
    spec: { intervals: [{ every: '1h', offset: '5m' }] },
    timezone: 'UTC',
    overlap: ScheduleOverlapPolicy.BUFFER_ONE,
    catchupWindow: '2h',
    jitter: '30s',
    paused: false,
    windowHours: 1,
    run: { store: '/tmp/fleetscore-test-store', shardSize: 500, maxParallelShards: 8 },
    ...overrides,
  };
}

/** Overrides that make a schedule fire once an hour at the time of day `fireAtMs` falls on, without jitter. */
export function firingAt(fireAtMs: number): Partial<FleetSchedule> {
  return {
    spec: { intervals: [{ every: '1h', offset: `${(fireAtMs % 3_600_000) / 1000}s` }] },
    catchupWindow: '1h',
    jitter: undefined,
  };
}
