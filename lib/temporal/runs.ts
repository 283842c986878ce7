/**
 * Starting and describing runs from outside a schedule (the `start` command, `runs start`, tests). Scheduled
 * and backfilled runs are started by Temporal itself; these are the same workflow with an explicit window.
 */
import type { Client, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { SCORING_WORKFLOW, SEARCH_ATTRIBUTES, TASK_QUEUES } from '../shared/names';
import type { ScoringRunInput } from '../shared/run-types';
import type { scoringRun } from '../../workflows';

/** Workflow id of a manual run: names the schedule (or `fleetscore`) and the window, e.g. `fleetscore-hourly-window-2026-11-21T12`. */
export function manualRunId(scheduleId: string | undefined, window: string): string {
  return `${scheduleId ?? 'fleetscore'}-window-${window}`;
}

/**
 * Starts scoringRun for an explicit window. If a run of that id is still open it is joined rather than
 * started twice; a closed one is run again (a re-run replaces the window's committed results).
 */
export function startRun(
  client: Client,
  input: ScoringRunInput & { window: string },
  taskQueue: string = input.taskQueues?.cpu ?? TASK_QUEUES.cpu,
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof scoringRun>> {
  return client.workflow.start<typeof scoringRun>(SCORING_WORKFLOW, {
    taskQueue,
    workflowId: manualRunId(input.scheduleId, input.window),
    workflowIdConflictPolicy: 'USE_EXISTING',
    args: [input],
    staticSummary: `fleetscore: score window ${input.window}`,
    typedSearchAttributes: [
      { key: SEARCH_ATTRIBUTES.window, value: input.window },
      ...(input.scheduleId ? [{ key: SEARCH_ATTRIBUTES.schedule, value: input.scheduleId }] : []),
    ],
  });
}

/** The Web UI page of a run. */
export function runUiUrl(uiBase: string, namespace: string, workflowId: string, runId: string): string {
  return `${uiBase}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}/${runId}/history`;
}
