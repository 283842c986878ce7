/**
 * Stops what the bench started when the bench itself is stopped (SIGINT, SIGTERM): its Temporal dev servers and S3
 * server, workers, the limit's and the peer's processes, the fleet generators. Node exits on those signals without
 * running `finally` blocks, so a bench stopped by `timeout` or `kill` used to leave its dev server and worker
 * running.
 */
import type { ChildProcess } from 'node:child_process';

/** A server the bench started: a Temporal dev server, or the S3 server of `--store s3`. */
interface Server {
  stop(): Promise<void>;
  kill(): Promise<void>;
}

const children = new Set<ChildProcess>();
const servers = new Set<Server>();
/** How long workers and the like get to exit on SIGTERM (a worker drains with its server up), then the servers. */
const STOP_WAIT_MS = 10_000;

const within = (promise: Promise<unknown>) =>
  Promise.race([promise, new Promise((resolve) => setTimeout(resolve, STOP_WAIT_MS).unref())]);

/** `child`, stopped (SIGTERM) if the bench is stopped while it runs. */
export function childOfBench<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** `server`, stopped if the bench is stopped before it is. */
export function serverOfBench<T extends Server>(server: T): T {
  servers.add(server);
  return {
    ...server,
    stop: () => (servers.delete(server), server.stop()),
    kill: () => (servers.delete(server), server.kill()),
  };
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\nbench: ${signal}: stopping ${children.size} processes and ${servers.size} dev servers\n`);
    // The processes first, while their server still answers (a worker whose server is gone takes 20 s and more to
    // give up), then the servers; whatever has not exited by then is killed.
    const exited = [...children].map((child) => new Promise((resolve) => child.once('exit', resolve)));
    for (const child of children) child.kill('SIGTERM');
    void within(Promise.all(exited))
      .then(() => within(Promise.allSettled([...servers].map((s) => s.stop()))))
      .then(() => {
        for (const child of children) child.kill('SIGKILL');
        process.exit(signal === 'SIGINT' ? 130 : 143);
      });
  });
}
