/**
 * fleetscore's public API for schedules modules, `fleetscore/schedules`: everything a file that declares schedules
 * (schedules/fleet-schedules.ts, or a copy of it anywhere on disk) needs, so it imports nothing else. The CLI
 * resolves `fleetscore/schedules` for a module it loads wherever the module lives (schedule-file.ts).
 */
export { ScheduleOverlapPolicy } from '@temporalio/client';
export { defaultStoreUri } from '../lib/config';
export {
  AGGREGATES_LAYOUTS,
  POOLS,
  PREDICTIONS_FORMATS,
  type AggregatesLayout,
  type Pool,
  type PredictionsFormat,
} from '../lib/shared/names';
export { MAX_SHARD_SIZE, RUN_DEFAULTS } from '../lib/shared/run-types';
export { DEFAULT_SCOPE, type FleetSchedule, type OverlapPolicy } from './schedule-declaration';
