/** A `fleetscore worker` child process of the fault rig: its identity, output and exit, and signals to send it. */
import type { ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';

/** A `fleetscore worker` child process. */
export class WorkerProcess {
  readonly identity: string;
  readonly exited: Promise<number | null>;
  output = '';

  /** `label`: the worker's own store gate port (S3 rigs), so a held store request names its worker. */
  constructor(
    readonly child: ChildProcess,
    readonly label?: string,
  ) {
    this.identity = `${child.pid}@${hostname()}`;
    this.exited = new Promise((done) => child.once('exit', (code) => done(code)));
    const collect = (chunk: Buffer) => {
      this.output += chunk.toString();
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }
}
