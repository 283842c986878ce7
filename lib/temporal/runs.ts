/**
 * Starting and describing runs from outside a schedule (`runs start`, `backfill`, `runs rescore`, `fleetscore up`,
 * tests). Scheduled runs are started by Temporal itself; these are the same workflow with an explicit window.
 */
import type { Client, WorkflowHandle, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { SCORING_WORKFLOW, SEARCH_ATTRIBUTES, TASK_QUEUES } from '../shared/names';
import type { ScoringRunInput } from '../shared/run-types';
import { parseWindow, type Window } from '../shared/window';
import { canonicalStoreUri, storeTag } from '../store/store-uri';
import type { scoringRun } from '../../workflows';

/**
 * The workflow id of a run started with an explicit window: `fleetscore-<window>-<store tag>`, e.g.
 * `fleetscore-2026-11-21T12-3f9a1c2e` or `fleetscore-2026-11-21T00_24h-3f9a1c2e`. A run is its store, its window
 * and the window's length, so runs of one window on two stores never join or block each other, and a manual run,
 * a backfill and `fleetscore up` of one window on one store are the same run. The schedule a run belongs to is
 * carried in its search attributes and memo, not its id; the ids Temporal gives scheduled runs
 * (`<schedule id>-<nominal time>`) never have this form, so these runs never take a scheduled action's id.
 */
export function runWorkflowId(store: string, window: string): string {
  return `fleetscore-${window}-${storeTag(store)}`;
}

/** The one-line summary the Web UI shows above a run: window, store, schedule and pool. */
export function runSummaryLine(input: Pick<ScoringRunInput, 'store' | 'scheduleId' | 'pool'>, window: Window): string {
  const parts = [
    `fleetscore: window ${window.id} [${new Date(window.startMs).toISOString()}, ${new Date(window.endMs).toISOString()})`,
    `store ${input.store}`,
    ...(input.scheduleId ? [`schedule ${input.scheduleId}`] : []),
    `pool ${input.pool ?? 'per model'}`,
  ];
  return parts.join(' · ');
}

/**
 * Starts scoringRun for an explicit window on its store (the URI made canonical, so workers on other hosts open
 * the same store and every spelling gives the same id). If the run of that window and store is still open it is
 * joined rather than started twice; a closed one is run again (a re-run replaces the window's committed results).
 */
export function startRun(
  client: Client,
  input: ScoringRunInput & { window: string },
  taskQueue: string = input.taskQueues?.cpu ?? TASK_QUEUES.cpu,
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof scoringRun>> {
  const window = parseWindow(input.window, input.windowHours);
  const store = canonicalStoreUri(input.store);
  const args: ScoringRunInput = { ...input, store, window: window.id };
  return client.workflow.start<typeof scoringRun>(SCORING_WORKFLOW, {
    taskQueue,
    workflowId: runWorkflowId(store, window.id),
    workflowIdConflictPolicy: 'USE_EXISTING',
    args: [args],
    staticSummary: runSummaryLine(args, window),
    typedSearchAttributes: [
      { key: SEARCH_ATTRIBUTES.window, value: window.id },
      { key: SEARCH_ATTRIBUTES.store, value: store },
      ...(input.scheduleId ? [{ key: SEARCH_ATTRIBUTES.schedule, value: input.scheduleId }] : []),
    ],
  });
}

/** The Web UI page of a run. */
export function runUiUrl(uiBase: string, namespace: string, workflowId: string, runId: string): string {
  return `${uiBase}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}/${runId}/history`;
}

/**
 * What a run was started with: its input and task queue, from the first event of its history (undefined when that
 * event carries no input). Throws WorkflowNotFoundError once the server no longer keeps the run.
 */
export async function runStartedWith(
  handle: WorkflowHandle,
): Promise<{ input: ScoringRunInput; taskQueue: string | undefined } | undefined> {
  const history = await handle.fetchHistory();
  const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  const payload = started?.input?.payloads?.[0];
  if (!payload) return undefined;
  const input = defaultPayloadConverter.fromPayload<ScoringRunInput>(payload);
  return { input, taskQueue: started?.taskQueue?.name ?? undefined };
}
