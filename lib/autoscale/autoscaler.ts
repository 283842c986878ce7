/**
 * `fleetscore autoscale`'s loop: every interval, read each pool's backlog and the number of open scoring runs,
 * decide (policy.ts), start or drain local worker processes, and log each decision with the numbers behind it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { SCORING_WORKFLOW, TASK_QUEUES, type Pool } from '../shared/names';
import { describeBacklog, type BacklogStats } from './backlog';
import { decide, isIdle, type PoolScaling, type PoolState, type ScalingDecision } from './policy';
import type { WorkerProcesses } from './worker-processes';
import { messageOf } from '../shared/errors';

/** A decision with the numbers it was made on: one log line. */
export interface DecisionRecord extends ScalingDecision {
  taskQueue: string;
  stats: BacklogStats;
  openRuns: number;
  draining: number;
}

/** What the loop needs. */
export interface AutoscalerOptions {
  client: Client;
  pools: PoolScaling[];
  processes: WorkerProcesses;
  /** Task queue per pool when not the standard ones. */
  taskQueues?: Partial<Record<Pool, string>>;
  /** Which pool runs the workflows (its workflow tasks count too); default cpu. */
  workflowPool?: Pool;
  intervalMs: number;
  /** Receives scaling decisions, and holds whose reason changed. */
  log(record: DecisionRecord): void;
  /** Receives errors reading the backlog (the loop carries on). */
  warn(message: string): void;
}

/** One line for people: the decision and its numbers. */
export function formatDecision(r: DecisionRecord): string {
  const s = r.stats;
  const verb = r.action === 'hold' ? `hold at ${r.from}` : `scale ${r.action} ${r.from} -> ${r.to}`;
  return (
    `autoscale ${r.pool}: ${verb}: ${r.reason} ` +
    `[queue ${r.taskQueue}: backlog ${s.backlog}, oldest ${s.ageSeconds.toFixed(1)}s, add ${s.addRate.toFixed(2)}/s, ` +
    `dispatch ${s.dispatchRate.toFixed(2)}/s, pollers ${s.pollers}; runs open ${r.openRuns}; draining ${r.draining}]`
  );
}

/** Runs the autoscaling loop until `signal` aborts. */
export class Autoscaler {
  private readonly state = new Map<Pool, PoolState>();
  private readonly lastHold = new Map<Pool, string>();

  constructor(private readonly options: AutoscalerOptions) {
    for (const p of options.pools) this.state.set(p.pool, { workers: 0 });
  }

  /** The task queue a pool polls. */
  taskQueue(pool: Pool): string {
    return this.options.taskQueues?.[pool] ?? TASK_QUEUES[pool];
  }

  /** Open scoring runs (visibility count), which keep the pools' floors. */
  async openRuns(): Promise<number> {
    const { count } = await this.options.client.workflow.count(
      `WorkflowType = '${SCORING_WORKFLOW}' AND ExecutionStatus = 'Running'`,
    );
    return count;
  }

  /** One look at every pool; returns the decisions made. */
  async tick(now = Date.now()): Promise<ScalingDecision[]> {
    const { processes } = this.options;
    const workflowPool = this.options.workflowPool ?? 'cpu';
    const openRuns = await this.openRuns();
    const decisions: ScalingDecision[] = [];
    for (const cfg of this.options.pools) {
      const taskQueue = this.taskQueue(cfg.pool);
      const stats = await describeBacklog(
        this.options.client,
        taskQueue,
        cfg.pool === workflowPool ? ['workflow', 'activity'] : ['activity'],
      );
      const state = this.state.get(cfg.pool)!;
      state.workers = processes.running(cfg.pool);
      state.idleSince = isIdle(stats) ? (state.idleSince ?? now) : undefined;
      const decision = decide(cfg, state, stats, openRuns, now);
      decisions.push(decision);
      const record = { ...decision, taskQueue, stats, openRuns, draining: processes.draining(cfg.pool) };
      if (decision.action === 'hold') {
        // Holds are logged when their reason changes, so the log stays readable while nothing happens.
        const key = decision.reason.replace(/\d+s/g, 'Ns');
        if (this.lastHold.get(cfg.pool) !== key) this.options.log(record);
        this.lastHold.set(cfg.pool, key);
        continue;
      }
      this.lastHold.delete(cfg.pool);
      this.options.log(record);
      if (decision.action === 'up') {
        processes.start(cfg.pool, decision.to - decision.from);
        state.lastScaleUpAt = now;
      } else {
        processes.stop(cfg.pool, decision.from - decision.to);
      }
      state.lastScaleAt = now;
      state.workers = decision.to;
    }
    return decisions;
  }

  /** Ticks every interval until `signal` aborts; then drains every worker it started. */
  async run(signal: AbortSignal): Promise<void> {
    try {
      while (!signal.aborted) {
        try {
          await this.tick();
        } catch (err) {
          this.options.warn(`autoscale: could not read the task queues: ${messageOf(err)}`);
        }
        await sleep(this.options.intervalMs, undefined, { signal }).catch(() => undefined);
      }
    } finally {
      await this.options.processes.stopAll();
    }
  }
}
