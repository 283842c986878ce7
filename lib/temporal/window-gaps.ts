/**
 * The gaps of a store: windows of a range that should have been committed by now and were not, each with what
 * Temporal knows of why (the newest run of the window: running, failed and how, cancelled; or no run at all).
 * Gathering only; `fleetscore runs gaps` prints it. What an operator backfills from.
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { readManifest } from '../scoring/manifest';
import { messageOf } from '../shared/errors';
import { progressQuery } from '../shared/queries';
import { progressStatus } from './run-watch';
import { SCORING_WORKFLOW, SEARCH_ATTRIBUTES } from '../shared/names';
import { scoreableAt, windowAt, type Window } from '../shared/window';
import type { ObjectStore } from '../store/object-store';
import { canonicalStoreUri } from '../store/store-uri';

const HOUR_MS = 3_600_000;

/** Why a window has no commit: what its newest run did, or `missed` when no run of it is known. */
export type GapReason =
  'missed' | 'running' | 'refused' | 'input missing' | 'failed' | 'cancelled' | 'terminated' | 'timed out';

/** One window without a committed manifest. */
export interface WindowGap {
  window: string;
  reason: GapReason;
  /**
   * The failure's message, when the newest run failed; while it runs, what it is doing (`waiting for input until
   * …` for a run whose window has no input yet), or why that is unknown.
   */
  detail?: string;
  workflowId?: string;
  runId?: string;
}

/** Which windows to look at. */
export interface GapQuery {
  /** Window starts in `[fromMs, toMs)`, aligned to the window length (as a schedule's are). */
  fromMs: number;
  toMs: number;
  windowHours: number;
  /** Windows not scoreable by `nowMs` (end plus settle) are not due yet, so not gaps. */
  settleMs: number;
  nowMs: number;
}

/** The windows of the query that are due, have no manifest in `store`, and why (newest first is not implied: oldest first). */
export async function findGaps(client: Client, store: ObjectStore, query: GapQuery): Promise<WindowGap[]> {
  const gaps: WindowGap[] = [];
  for (const window of dueWindows(query)) {
    if (await readManifest(store, window.id)) continue;
    gaps.push(await whyNotCommitted(client, store.uri, window));
  }
  return gaps;
}

/** The windows of N hours (starting on multiples of N hours, as scheduled ones do) in the range, due by now. */
export function dueWindows(q: Pick<GapQuery, 'fromMs' | 'toMs' | 'windowHours' | 'settleMs' | 'nowMs'>): Window[] {
  const length = q.windowHours * HOUR_MS;
  const out: Window[] = [];
  for (let t = Math.ceil(q.fromMs / length) * length; t < q.toMs; t += length) {
    const window = windowAt(t, q.windowHours);
    if (scoreableAt(window, q.settleMs) <= q.nowMs) out.push(window);
  }
  return out;
}

/**
 * The newest run of the window into this store, whoever started it: a schedule's, a backfill's or a `runs start`.
 * A store holds one commit per window, so a manual run scoring a schedule's window is that window's run (reported as
 * running, not missed, and left out of the backfill advice).
 */
async function whyNotCommitted(client: Client, store: string, window: Window): Promise<WindowGap> {
  const query = `WorkflowType = '${SCORING_WORKFLOW}' AND ${SEARCH_ATTRIBUTES.window.name} = '${window.id}'`;
  const canonical = canonicalStoreUri(store);
  let newest: WorkflowExecutionInfo | undefined;
  for await (const info of client.workflow.list({ query })) {
    // Runs of other stores are other runs; runs from before the store was recorded may be this store's.
    const runStore = info.typedSearchAttributes.get(SEARCH_ATTRIBUTES.store);
    if (runStore !== undefined && canonicalStoreUri(runStore) !== canonical) continue;
    if (!newest || info.startTime > newest.startTime) newest = info;
  }
  if (!newest) return { window: window.id, reason: 'missed' };
  const ids = { window: window.id, workflowId: newest.workflowId, runId: newest.runId };
  switch (newest.status.name) {
    case 'RUNNING':
      return { ...ids, reason: 'running', detail: await runningDetail(client, newest) };
    case 'CANCELLED':
      return { ...ids, reason: 'cancelled' };
    case 'TERMINATED':
      return { ...ids, reason: 'terminated' };
    case 'TIMED_OUT':
      return { ...ids, reason: 'timed out' };
    default: {
      const { type, message } = await failureOf(client, newest);
      const reason = type === 'WindowNotComplete' ? 'refused' : type === 'InputMissing' ? 'input missing' : 'failed';
      return { ...ids, reason, detail: message };
    }
  }
}

/** How long `runs gaps` waits for a running run to say what it is doing (with no cpu pool worker up, a query waits). */
const PROGRESS_DEADLINE_MS = 5_000;

/** What a running run is doing, from its progress query. */
async function runningDetail(client: Client, info: WorkflowExecutionInfo): Promise<string> {
  const handle = client.workflow.getHandle(info.workflowId, info.runId);
  try {
    const progress = await client.connection.withDeadline(Date.now() + PROGRESS_DEADLINE_MS, () =>
      handle.query(progressQuery),
    );
    return progressStatus(progress);
  } catch (err) {
    return `progress unknown: ${messageOf(err)}`;
  }
}

/** The failure type and message of a closed run (its cause, an ApplicationFailure for fleetscore's errors). */
async function failureOf(client: Client, info: WorkflowExecutionInfo): Promise<{ type?: string; message: string }> {
  try {
    await client.workflow.getHandle(info.workflowId, info.runId).result();
    return { message: 'completed without a commit' };
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
    const type = (cause as { type?: unknown } | undefined)?.type;
    return { type: typeof type === 'string' ? type : undefined, message: messageOf(cause) };
  }
}
