/**
 * Cancelling a window's runs: find the open runs of a window (on one store), ask Temporal to cancel each, and wait
 * until they have closed. A cancelled run commits nothing; its running shard attempts get the cancellation with
 * their next heartbeat and stop, writing nothing more.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { SCORING_WORKFLOW, SEARCH_ATTRIBUTES } from '../shared/names';
import { canonicalStoreUri } from '../store/store-uri';

/** One run that was asked to cancel, and how it ended. */
export interface CancelledRun {
  workflowId: string;
  runId: string;
  /** Temporal's status once it closed (CANCELLED), or RUNNING when it had not closed within the wait. */
  status: string;
}

/** The open runs of `window` on `store` (every store when undefined), newest first. */
export async function openRuns(
  client: Client,
  window: string,
  store?: string,
): Promise<{ workflowId: string; runId: string }[]> {
  const query =
    `WorkflowType = '${SCORING_WORKFLOW}' AND ${SEARCH_ATTRIBUTES.window.name} = '${window}' ` +
    `AND ExecutionStatus = 'Running'`;
  const canonical = store === undefined ? undefined : canonicalStoreUri(store);
  const runs: { workflowId: string; runId: string; startTime: Date }[] = [];
  for await (const info of client.workflow.list({ query })) {
    const runStore = info.typedSearchAttributes.get(SEARCH_ATTRIBUTES.store);
    if (canonical !== undefined && runStore !== undefined && canonicalStoreUri(runStore) !== canonical) continue;
    runs.push(info);
  }
  return runs
    .sort((a, b) => b.startTime.getTime() - a.startTime.getTime())
    .map(({ workflowId, runId }) => ({ workflowId, runId }));
}

/** Cancels each run and waits up to `waitMs` for all of them to close. */
export async function cancelRuns(
  client: Client,
  runs: readonly { workflowId: string; runId: string }[],
  waitMs = 60_000,
): Promise<CancelledRun[]> {
  const handles = runs.map((r) => client.workflow.getHandle(r.workflowId, r.runId));
  await Promise.all(handles.map((h) => h.cancel()));
  const deadline = Date.now() + waitMs;
  for (;;) {
    const described = await Promise.all(handles.map((h) => h.describe()));
    const out = described.map((d) => ({ workflowId: d.workflowId, runId: d.runId, status: d.status.name }));
    if (out.every((r) => r.status !== 'RUNNING') || Date.now() > deadline) return out;
    await sleep(250);
  }
}
