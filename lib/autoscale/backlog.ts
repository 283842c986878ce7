/**
 * The backlog signal of a pool's task queue: DescribeTaskQueue with `reportStats` (Temporal Server 1.25+ and
 * Temporal Cloud), per task type, summed. The same numbers KEDA's `temporal` scaler reads.
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

/** Which task types a pool serves: the cpu pool also runs the workflows. */
export type TaskKind = 'workflow' | 'activity';

/** A task queue's load, summed over the task types asked for. */
export interface BacklogStats {
  /** Tasks waiting for a worker (approximate; may briefly count expired tasks). */
  backlog: number;
  /** Age of the oldest waiting task, in seconds. */
  ageSeconds: number;
  /** Tasks added and dispatched per second, averaged by the server over the last 30 s. */
  addRate: number;
  dispatchRate: number;
  /** Workers that polled the queue recently (distinct identities). */
  pollers: number;
}

const TYPES: Record<TaskKind, temporal.api.enums.v1.TaskQueueType> = {
  workflow: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  activity: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
};

/** Reads the backlog of `taskQueue` for each of `kinds` and sums them (the age is the oldest). */
export async function describeBacklog(
  client: Client,
  taskQueue: string,
  kinds: readonly TaskKind[],
): Promise<BacklogStats> {
  const total: BacklogStats = { backlog: 0, ageSeconds: 0, addRate: 0, dispatchRate: 0, pollers: 0 };
  const pollers = new Set<string>();
  for (const kind of kinds) {
    const response = await client.workflowService.describeTaskQueue({
      namespace: client.options.namespace,
      taskQueue: { name: taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: TYPES[kind],
      reportStats: true,
    });
    const stats = response.stats;
    if (stats) {
      total.backlog += Number(stats.approximateBacklogCount ?? 0);
      const age = stats.approximateBacklogAge;
      total.ageSeconds = Math.max(total.ageSeconds, Number(age?.seconds ?? 0) + (age?.nanos ?? 0) / 1e9);
      total.addRate += stats.tasksAddRate ?? 0;
      total.dispatchRate += stats.tasksDispatchRate ?? 0;
    }
    for (const poller of response.pollers ?? []) if (poller.identity) pollers.add(poller.identity);
  }
  total.pollers = pollers.size;
  return total;
}
