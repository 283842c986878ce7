/**
 * The local worker processes of the autoscaler: `fleetscore worker --pool P` children it starts, and stops by
 * SIGTERM, which drains them (they stop polling, finish their running shards, then exit).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Pool } from '../shared/names';
import { REPO_ROOT } from '../temporal/temporal-cli';

/** Starts one worker process of a pool. */
export type WorkerLauncher = (pool: Pool, index: number) => ChildProcess;

/** What happened to a worker process, for the autoscaler's log. */
export interface WorkerEvent {
  pool: Pool;
  pid: number | undefined;
  event: 'started' | 'draining' | 'exited';
  code?: number | null;
  signal?: NodeJS.Signals | null;
  /** Exited without being asked to. */
  unexpected?: boolean;
}

/**
 * A launcher that runs `fleetscore worker --pool P <args>` with this Node binary; children share the autoscaler's
 * stdout/stderr and environment (Temporal address, store, credentials).
 */
export function fleetscoreWorkerLauncher(
  args: (pool: Pool, index: number) => string[],
  env: NodeJS.ProcessEnv = process.env,
): WorkerLauncher {
  const cli = join(REPO_ROOT, 'cli', 'fleetscore.cjs');
  return (pool, index) =>
    spawn(process.execPath, [cli, 'worker', '--pool', pool, ...args(pool, index)], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env,
    });
}

interface Child {
  pool: Pool;
  process: ChildProcess;
  draining: boolean;
  exited: Promise<void>;
}

/** The children of each pool: running ones count toward the pool's size, draining ones no longer do. */
export class WorkerProcesses {
  private readonly children: Child[] = [];
  private started = 0;

  constructor(
    private readonly launch: WorkerLauncher,
    private readonly onEvent: (e: WorkerEvent) => void = () => {},
  ) {}

  /** Workers of `pool` that run and are not draining. */
  running(pool: Pool): number {
    return this.children.filter((c) => c.pool === pool && !c.draining).length;
  }

  /** Workers of `pool` draining after SIGTERM. */
  draining(pool: Pool): number {
    return this.children.filter((c) => c.pool === pool && c.draining).length;
  }

  /** Starts `n` workers of `pool`. */
  start(pool: Pool, n: number): void {
    for (let i = 0; i < n; i++) {
      const proc = this.launch(pool, ++this.started);
      const child: Child = {
        pool,
        process: proc,
        draining: false,
        exited: new Promise((resolve) => {
          proc.once('exit', (code, signal) => {
            this.children.splice(this.children.indexOf(child), 1);
            this.onEvent({ pool, pid: proc.pid, event: 'exited', code, signal, unexpected: !child.draining });
            resolve();
          });
        }),
      };
      // A launch failure (e.g. ENOENT) also ends in 'exit'; keep the error from crashing the autoscaler.
      proc.once('error', () => {});
      this.children.push(child);
      this.onEvent({ pool, pid: proc.pid, event: 'started' });
    }
  }

  /** Sends SIGTERM to the `n` newest running workers of `pool`; they drain and exit on their own. */
  stop(pool: Pool, n: number): void {
    const victims = this.children.filter((c) => c.pool === pool && !c.draining).slice(-n);
    for (const child of victims) {
      child.draining = true;
      child.process.kill('SIGTERM');
      this.onEvent({ pool, pid: child.process.pid, event: 'draining' });
    }
  }

  /** Drains every worker and waits until all have exited. */
  async stopAll(): Promise<void> {
    for (const child of this.children) {
      if (!child.draining) {
        child.draining = true;
        child.process.kill('SIGTERM');
        this.onEvent({ pool: child.pool, pid: child.process.pid, event: 'draining' });
      }
    }
    await Promise.all(this.children.map((c) => c.exited));
  }
}
