/**
 * The scoring run's queries, apart from names.ts: defining one needs @temporalio/workflow, which the modules a
 * worker's shard threads load never need. No Node imports: workflow code imports it.
 */
import { defineQuery } from '@temporalio/workflow';
import type { RunProgress } from './names';

/** Query that returns a running run's progress. */
export const progressQuery = defineQuery<RunProgress>('progress');
