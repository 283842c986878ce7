/**
 * A small pool of worker threads that compile ONNX models for the fast path, so that reading and compiling a
 * model (tens of milliseconds for a 100-tree forest, seconds for huge ones) never blocks the event loop that runs
 * workflow tasks and heartbeats, and a cold shard compiles on every core.
 */
import type { Worker } from 'node:worker_threads';
import { startModuleThread } from '../../node-thread';
import type { CompileResult } from './compile-model';

/** A request to a compile thread. */
export interface CompileRequest {
  id: number;
  bytes: Uint8Array;
  input: string;
  output: string;
  features: number;
}

/** A compile thread's answer: the program, or why the fast path does not take the model. */
export type CompileReply = { id: number } & CompileResult;

interface Pending {
  thread: object;
  resolve(result: CompileResult): void;
  reject(err: Error): void;
}

/** Compile threads started on first use and ended by {@link CompileThreads.close}. */
export class CompileThreads {
  private threads: { worker: Worker; busy: number }[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(private readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError('compile threads must be an integer of at least 1');
  }

  /** Compiles `bytes` on the least busy thread. */
  compile(bytes: Uint8Array, input: string, output: string, features: number): Promise<CompileResult> {
    const thread = this.pick();
    const id = this.nextId++;
    return new Promise<CompileResult>((resolve, reject) => {
      // A busy thread keeps the process alive until it answers; an idle one does not.
      if (thread.busy++ === 0) thread.worker.ref();
      const done = () => {
        if (--thread.busy === 0) thread.worker.unref();
      };
      this.pending.set(id, {
        thread,
        resolve: (r) => {
          done();
          resolve(r);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      thread.worker.postMessage({ id, bytes, input, output, features } satisfies CompileRequest);
    });
  }

  /** Threads running now (started on first use or by {@link start}). */
  get running(): number {
    return this.threads.length;
  }

  /** Starts the threads not started yet. */
  start(): void {
    while (this.threads.length < this.size) this.spawn();
  }

  /** Ends the threads; compilations still running fail. */
  async close(): Promise<void> {
    const threads = this.threads;
    this.threads = [];
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private pick(): { worker: Worker; busy: number } {
    const idle = this.threads.find((t) => t.busy === 0);
    if (idle) return idle;
    if (this.threads.length < this.size) return this.spawn();
    return this.threads.reduce((a, b) => (b.busy < a.busy ? b : a));
  }

  private spawn(): { worker: Worker; busy: number } {
    const worker = startModuleThread(`${__dirname}/compile-thread`);
    // An idle compile thread must not keep a finished process alive.
    worker.unref();
    const thread = { worker, busy: 0 };
    worker.on('message', (reply: CompileReply) => {
      const p = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      p?.resolve('program' in reply ? { program: reply.program } : { unsupported: reply.unsupported });
    });
    worker.on('error', (err) => this.failAll(thread, err));
    worker.on('exit', (code) => this.failAll(thread, new Error(`compile thread exited with code ${code}`)));
    this.threads.push(thread);
    return thread;
  }

  /** A thread that died takes its pending compilations with it: they fail (the attempt retries), never hang. */
  private failAll(thread: { worker: Worker }, err: Error): void {
    this.threads = this.threads.filter((t) => t !== thread);
    for (const [id, p] of this.pending) {
      if (p.thread !== thread) continue;
      this.pending.delete(id);
      p.reject(err);
    }
  }
}
