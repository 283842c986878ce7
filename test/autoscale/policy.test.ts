/** The autoscaling policy, branch by branch, and the local worker processes it starts and drains. */
import { spawn } from 'node:child_process';
import { formatDecision } from '../../lib/autoscale/autoscaler';
import type { BacklogStats } from '../../lib/autoscale/backlog';
import { decide, type PoolScaling, type PoolState } from '../../lib/autoscale/policy';
import { WorkerProcesses, type WorkerEvent } from '../../lib/autoscale/worker-processes';

const cfg: PoolScaling = {
  pool: 'gpu',
  min: 0,
  max: 4,
  shardsPerWorker: 2,
  scaleUpCooldownMs: 15_000,
  scaleDownCooldownMs: 60_000,
  idleMs: 30_000,
  minBacklogAgeSeconds: 2,
  floorWhileRunsOpen: 1,
};
const idle: BacklogStats = { backlog: 0, ageSeconds: 0, addRate: 0, dispatchRate: 0, pollers: 0 };
const NOW = 1_000_000;
const at = (workers: number, extra: Partial<PoolState> = {}): PoolState => ({ workers, ...extra });

describe('decide', () => {
  test('a backlog on a pool at zero starts workers at once, enough for the backlog up to the maximum', () => {
    expect(decide(cfg, at(0), { ...idle, backlog: 5, ageSeconds: 0 }, 1, NOW)).toMatchObject({
      action: 'up',
      from: 0,
      to: 3,
    });
    expect(decide(cfg, at(0), { ...idle, backlog: 50 }, 1, NOW)).toMatchObject({ action: 'up', to: 4 });
  });

  test('a young backlog is left to running workers; an old one adds workers after the cooldown', () => {
    const young = { ...idle, backlog: 4, ageSeconds: 0.5, addRate: 2 };
    expect(decide(cfg, at(1), young, 1, NOW)).toMatchObject({
      action: 'hold',
      reason: expect.stringMatching(/younger/),
    });
    const old = { ...young, ageSeconds: 10 };
    expect(decide(cfg, at(1, { lastScaleUpAt: NOW - 5_000 }), old, 1, NOW)).toMatchObject({
      action: 'hold',
      reason: 'scale-up cooldown (10s left)',
    });
    expect(decide(cfg, at(1, { lastScaleUpAt: NOW - 20_000 }), old, 1, NOW)).toMatchObject({ action: 'up', to: 3 });
    expect(decide(cfg, at(4), old, 1, NOW)).toMatchObject({ action: 'hold', reason: 'at the maximum 4' });
  });

  test('no backlog while tasks are still dispatched is not idle: running shards keep their workers', () => {
    expect(decide(cfg, at(3), { ...idle, dispatchRate: 0.5 }, 1, NOW)).toMatchObject({ action: 'hold' });
  });

  test('an idle pool scales down to zero only after the idle time and the cooldown, and with no run open', () => {
    expect(decide(cfg, at(3, { idleSince: NOW - 10_000 }), idle, 0, NOW)).toMatchObject({
      action: 'hold',
      reason: 'idle for 10s of 30s',
    });
    expect(decide(cfg, at(3, { idleSince: NOW - 40_000, lastScaleAt: NOW - 30_000 }), idle, 0, NOW)).toMatchObject({
      action: 'hold',
      reason: 'scale-down cooldown (30s left)',
    });
    expect(decide(cfg, at(3, { idleSince: NOW - 40_000, lastScaleAt: NOW - 90_000 }), idle, 0, NOW)).toMatchObject({
      action: 'down',
      from: 3,
      to: 0,
    });
    // While a run is open the pool keeps one worker: backlog alone cannot tell "nothing to do" from "all running".
    expect(decide(cfg, at(3, { idleSince: NOW - 40_000 }), idle, 2, NOW)).toMatchObject({ action: 'down', to: 1 });
    expect(decide(cfg, at(0), idle, 2, NOW)).toMatchObject({
      action: 'up',
      to: 1,
      reason: expect.stringMatching(/open/),
    });
    expect(decide(cfg, at(0), idle, 0, NOW)).toMatchObject({ action: 'hold', reason: 'idle at zero' });
  });

  test('the minimum and maximum hold whatever the backlog', () => {
    const bounded = { ...cfg, min: 2, max: 3 };
    expect(decide(bounded, at(0), idle, 0, NOW)).toMatchObject({ action: 'up', to: 2 });
    expect(decide(bounded, at(5), idle, 0, NOW)).toMatchObject({ action: 'down', to: 3 });
    expect(decide({ ...cfg, floorWhileRunsOpen: 0 }, at(0), idle, 3, NOW)).toMatchObject({ action: 'hold' });
  });

  test('a decision is logged with the numbers behind it', () => {
    const line = formatDecision({
      pool: 'gpu',
      action: 'up',
      from: 0,
      to: 3,
      reason: 'backlog 5 needs 3 more worker(s) scoring 2 shards each',
      taskQueue: 'fleetscore-gpu',
      stats: { backlog: 5, ageSeconds: 1.5, addRate: 2, dispatchRate: 0, pollers: 0 },
      openRuns: 1,
      draining: 0,
    });
    expect(line).toBe(
      'autoscale gpu: scale up 0 -> 3: backlog 5 needs 3 more worker(s) scoring 2 shards each [queue fleetscore-gpu: backlog 5, ' +
        'oldest 1.5s, add 2.00/s, dispatch 0.00/s, pollers 0; runs open 1; draining 0]',
    );
  });
});

describe('WorkerProcesses', () => {
  test('starts children, drains the newest with SIGTERM, and counts draining ones apart', async () => {
    const events: WorkerEvent[] = [];
    const ready: Promise<void>[] = [];
    // A stand-in worker: says when it listens for SIGTERM, then exits 0 a moment after it, as a draining worker does.
    const processes = new WorkerProcesses(
      () => {
        const child = spawn(
          process.execPath,
          [
            '-e',
            "process.on('SIGTERM', () => setTimeout(() => process.exit(0), 100)); console.log('ready'); setInterval(() => {}, 1000)",
          ],
          { stdio: ['ignore', 'pipe', 'ignore'] },
        );
        ready.push(new Promise((resolve) => child.stdout.once('data', () => resolve())));
        return child;
      },
      (e) => events.push(e),
    );
    processes.start('gpu', 3);
    expect(processes.running('gpu')).toBe(3);
    // SIGTERM before a child has installed its handler would kill it, which is not what this test is about.
    await Promise.all(ready);
    processes.stop('gpu', 2);
    expect(processes.running('gpu')).toBe(1);
    expect(processes.draining('gpu')).toBe(2);
    await processes.stopAll();
    expect(processes.running('gpu') + processes.draining('gpu')).toBe(0);
    expect(events.filter((e) => e.event === 'started')).toHaveLength(3);
    expect(events.filter((e) => e.event === 'exited').every((e) => e.code === 0 && !e.unexpected)).toBe(true);
  });
});
