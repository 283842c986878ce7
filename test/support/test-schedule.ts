/** The schedule declaration tests start from: fleetscore's own hourly schedule (schedules/fleet-schedules.ts). */
import { fleetSchedules } from '../../schedules/fleet-schedules';
import type { FleetSchedule } from '../../schedules/schedule-declaration';

/** fleetscore's hourly schedule (at five past, buffer one, 2 h catch-up, 30 s jitter) under `id`; `overrides` on top. */
export function testSchedule(id: string, overrides: Partial<FleetSchedule> = {}): FleetSchedule {
  const [hourly] = fleetSchedules({});
  return {
    ...hourly!,
    id,
    description: `test schedule ${id}`,
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
