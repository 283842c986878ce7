/**
 * The schedules fleetscore runs, declared as code: what users edit to change when and how the fleet is scored.
 * `fleetscore schedules apply` makes the Temporal server match this list (see schedule-reconciler.ts).
 *
 * A copy of this file anywhere on disk works the same (`fleetscore schedules apply --file /etc/fleet/eu.ts`): it
 * imports only fleetscore's public schedules API, which the CLI resolves for a file wherever it lives. Give a copy
 * its own `scope`, so applying it never touches the schedules of this file (docs/cli.md, "Schedules as code").
 */
import { defaultStoreUri, RUN_DEFAULTS, ScheduleOverlapPolicy, type FleetSchedule } from 'fleetscore/schedules';

/** Whose schedules these are: `schedules apply` of this file only ever creates, updates or deletes this scope's. */
export const scope = 'default';

/**
 * The declared schedules. `env` supplies the store (`FLEETSCORE_STORE`, else the embedded default folder), so
 * the same declaration serves one machine and production.
 */
export function fleetSchedules(env: NodeJS.ProcessEnv = process.env): FleetSchedule[] {
  const store = defaultStoreUri(env);
  return [
    {
      id: 'fleetscore-hourly',
      description: 'Scores the previous hour for every device, 5 minutes past the hour so late data lands',
      spec: { intervals: [{ every: '1h', offset: '5m' }] },
      timezone: 'UTC',
      overlap: ScheduleOverlapPolicy.BUFFER_ONE,
      catchupWindow: '2h',
      jitter: '30s',
      paused: false,
      windowHours: 1,
      run: { store, shardSize: RUN_DEFAULTS.shardSize, maxParallelShards: RUN_DEFAULTS.maxParallelShards },
    },
  ];
}
