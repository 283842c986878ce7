/**
 * When to add and remove workers of a pool, as a pure function of the backlog and the pool's state, so every
 * branch is tested without a server. Scale-up follows the backlog; scale-down waits for the pool to be idle,
 * because an empty backlog also means "every task is running": the server's add and dispatch rates (averaged
 * over 30 s) must be zero for `idleMs`, and while scoring runs are open the pool keeps `floorWhileRunsOpen`
 * workers (a run schedules its next shards only as earlier ones finish).
 */
import type { Pool } from '../shared/names';
import type { BacklogStats } from './backlog';

/** How one pool scales. */
export interface PoolScaling {
  pool: Pool;
  /** Workers kept at all times (0 allowed). */
  min: number;
  /** Workers never exceeded. */
  max: number;
  /** Shards one worker scores at once (its shard threads; on the gpu pool its slots): the backlog one more takes. */
  shardsPerWorker: number;
  /** Time after a scale-up before the next one, so new workers can start and drain the backlog. */
  scaleUpCooldownMs: number;
  /** Time after any scaling before a scale-down. */
  scaleDownCooldownMs: number;
  /** How long the pool must be idle before it scales down. */
  idleMs: number;
  /** A backlog younger than this is left to the running workers (they may just be polling). */
  minBacklogAgeSeconds: number;
  /** Workers kept while scoring runs are open (0 to scale to `min` regardless). */
  floorWhileRunsOpen: number;
}

/** What the autoscaler knows about a pool between ticks. */
export interface PoolState {
  /** Workers running and not draining. */
  workers: number;
  lastScaleUpAt?: number;
  lastScaleAt?: number;
  /** Since when the pool has been idle (no backlog, no tasks added or dispatched); undefined when busy. */
  idleSince?: number;
}

/** One decision and the reason, in words. */
export interface ScalingDecision {
  pool: Pool;
  action: 'up' | 'down' | 'hold';
  from: number;
  to: number;
  reason: string;
}

/** Whether the numbers say the pool has nothing to do. */
export function isIdle(stats: BacklogStats): boolean {
  return stats.backlog === 0 && stats.addRate === 0 && stats.dispatchRate === 0;
}

/** The decision for one pool at `now`, given its backlog and the number of open scoring runs. */
export function decide(
  cfg: PoolScaling,
  state: PoolState,
  stats: BacklogStats,
  openRuns: number,
  now: number,
): ScalingDecision {
  const from = state.workers;
  const floor = Math.min(cfg.max, Math.max(cfg.min, openRuns > 0 ? cfg.floorWhileRunsOpen : 0));
  const result = (action: ScalingDecision['action'], to: number, reason: string): ScalingDecision => ({
    pool: cfg.pool,
    action,
    from,
    to,
    reason,
  });
  if (from > cfg.max) return result('down', cfg.max, `above the maximum ${cfg.max}`);
  const belowFloor = from < floor;

  if (stats.backlog > 0) {
    if (from > 0 && !belowFloor && stats.ageSeconds < cfg.minBacklogAgeSeconds) {
      return result('hold', from, `backlog is younger than ${cfg.minBacklogAgeSeconds}s: running workers may take it`);
    }
    const more = Math.ceil(stats.backlog / cfg.shardsPerWorker);
    const wanted = Math.min(cfg.max, Math.max(floor, from + more));
    if (wanted <= from) return result('hold', from, `at the maximum ${cfg.max}`);
    const sinceUp = state.lastScaleUpAt === undefined ? Infinity : now - state.lastScaleUpAt;
    if (from > 0 && !belowFloor && sinceUp < cfg.scaleUpCooldownMs) {
      return result('hold', from, `scale-up cooldown (${Math.ceil((cfg.scaleUpCooldownMs - sinceUp) / 1000)}s left)`);
    }
    return result(
      'up',
      wanted,
      `backlog ${stats.backlog} needs ${more} more worker(s) scoring ${cfg.shardsPerWorker} shards each`,
    );
  }
  if (belowFloor) {
    const why = from < cfg.min ? `below the minimum ${cfg.min}` : `${openRuns} run(s) open: keeping ${floor}`;
    return result('up', floor, why);
  }

  if (from <= floor) return result('hold', from, from === 0 ? 'idle at zero' : `at the floor ${floor}`);
  if (!isIdle(stats)) return result('hold', from, 'no backlog, but tasks are still being added or dispatched');
  const idleFor = state.idleSince === undefined ? 0 : now - state.idleSince;
  if (idleFor < cfg.idleMs)
    return result('hold', from, `idle for ${Math.floor(idleFor / 1000)}s of ${cfg.idleMs / 1000}s`);
  const sinceScale = state.lastScaleAt === undefined ? Infinity : now - state.lastScaleAt;
  if (sinceScale < cfg.scaleDownCooldownMs) {
    return result(
      'hold',
      from,
      `scale-down cooldown (${Math.ceil((cfg.scaleDownCooldownMs - sinceScale) / 1000)}s left)`,
    );
  }
  return result('down', floor, `idle for ${Math.floor(idleFor / 1000)}s${openRuns ? '' : ', no runs open'}`);
}
