/** The one workflowsPath for workers: every workflow fleetscore registers. */
export { scoringRun } from './scoring-run';
export { scoringRunShards } from './score-shards';
