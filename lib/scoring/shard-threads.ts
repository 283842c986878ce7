/**
 * The cpu pool scores shards in worker threads of its own, one per CPU it may use, so the shard loop (rows
 * gathered, models read, verified and compiled, kernels run, predictions built) runs on every core while the
 * worker's event loop stays free for workflow tasks, polls and heartbeats. Each thread holds its own caches (its
 * share of the worker's budgets). A shard goes back to the thread that scored it last (remembered by store and
 * shard number): a plan numbers a fleet's shards by its sorted devices, so hour after hour a shard finds its models
 * warm there. (Routing every shard to whichever thread is idle sent half the devices of a warm run to the wrong
 * thread's cold caches: shards finish in a different order each hour.) A shard no thread has scored waits here
 * until a thread has no shard preparing its models (a thread's shards prepare one after the other), and goes to
 * that thread: the thread that gets through its work first takes the next. (Sent on arrival to the thread with the
 * fewest shards running, the last two shards of a cold 10,000-SVM run both went to the thread that had just freed a
 * slot, behind each other, while the other thread finished its two and sat idle: 6 shards against 4, and the
 * placement kept that split in every warm run after. Routing shard k to thread k mod N was worse: both threads of
 * a cold 10,000-forest run sat idle for 7 to 14 of its 47 s.) The activity stays on the worker's event loop: it
 * heartbeats, logs and cancels on the thread's behalf.
 */
import type { Worker } from 'node:worker_threads';
import { DEFAULT_AGGREGATES_BYTES } from '../arrow/aggregates-cache';
import { LruCache } from '../lru-cache';
import { ModelWatches, type WatchMessage } from './model-watches';
import { PartBroker, type PartAnswer, type PartMessage } from './part-exchange';
import { DEFAULT_MAX_COMPILED_BYTES } from '../models/fast-paths/compiled-models';
import {
  DEFAULT_MAX_SESSIONS,
  DEFAULT_MAX_STACKED_MODELS,
  type ModelSessionCacheOptions,
} from '../models/model-sessions';
import type { ProgramOrigin } from '../models/fast-paths/compiled-models';
import type { ModelSessionObserver, SessionPlacement } from '../models/onnx-session-pool';
import { startModuleThread } from '../node-thread';
import type { ModelFilesFolder } from '../store/kept-model-files';
import { ERROR_CLASSES } from '../shared/error-types';
import type { ShardRequest, ShardSummary } from '../shared/run-types';
import type { Window } from '../shared/window';
import type { ShardContext } from './score-shard';

/** The cache options a shard thread builds its {@link ModelSessionCache} with. */
export type ShardThreadCacheOptions = Pick<
  ModelSessionCacheOptions,
  | 'executionProviders'
  | 'checkPlacement'
  | 'batching'
  | 'maxSessions'
  | 'maxStackedModels'
  | 'maxCompiledBytes'
  | 'programsDir'
>;

/** What a shard thread starts with: its caches' options and budgets. */
export interface ShardThreadSetup {
  cache: ShardThreadCacheOptions;
  /** Bytes of parsed Arrow parts its aggregates cache keeps. */
  aggregatesBytes: number;
  /** Where an S3 store's model files are kept on the host (lib/store/kept-model-files.ts); none when absent. */
  modelFiles?: ModelFilesFolder;
  /** The thread's board of watched model files (model-watches.ts). */
  watchBoard: SharedArrayBuffer;
}

/**
 * An error as it crosses from a shard thread: its class name, message and stack, and its own fields of plain
 * values (device, file, field and those of its class, such as a checksum's expected and actual values).
 */
export interface ThreadError {
  name: string;
  message: string;
  stack?: string | undefined;
  fields: Record<string, string | number | boolean>;
}

/** The part of a {@link ShardContext} that crosses to the thread as data. */
export type ThreadShardContext = Pick<ShardContext, 'attempt' | 'taskQueue' | 'workflowId' | 'workflowRunId'>;

/** A question for a thread's aggregates cache: the device ids of a run's parts (see {@link WindowDevices}). */
export interface WindowDevicesQuery {
  store: string;
  window: Window;
  parts: string[];
  runId: string;
}

/** What the worker sends a shard thread. */
export type ToShardThread =
  | { type: 'score'; id: number; req: ShardRequest; ctx: ThreadShardContext }
  | { type: 'abort'; id: number }
  | { type: 'window-devices'; id: number; query: WindowDevicesQuery }
  /**
   * Whether any thread of the worker scores a shard now: a thread saves programs and keeps model files only once
   * the whole worker is idle, so that this work never takes a core from another thread's shard.
   */
  | { type: 'busy'; busy: boolean }
  /** The worker is closing: save what is unsaved and answer `closed`. */
  | { type: 'close' }
  /** The worker's event loop has taken in the file events before the thread's `settle` of this id. */
  | { type: 'settled'; id: number }
  /** The answer to the thread's `part-want` (part-exchange.ts). */
  | { type: 'part'; id: string; answer: PartAnswer<ThreadError> };

/** What a shard thread sends the worker. `observed` carries the session cache's metrics since the last one. */
export type FromShardThread =
  | { type: 'heartbeat'; id: number; devicesDone: number }
  | { type: 'prepared'; id: number }
  | { type: 'log'; id: number; level: 'info' | 'warn'; message: string; attrs?: Record<string, unknown> }
  | {
      type: 'observed';
      hits: number;
      misses: number;
      inferences: number[];
      placements: SessionPlacement[];
      programs: Partial<Record<ProgramOrigin, number>>;
      /** S3 model files GET again to keep them on the host. */
      modelFilesFetched: number;
    }
  | { type: 'warning'; message: string }
  | { type: 'done'; id: number; summary: ShardSummary }
  | { type: 'window-devices'; id: number; devices: string[] }
  | { type: 'failed'; id: number; error: ThreadError }
  | { type: 'closed' }
  | WatchMessage
  | PartMessage<ThreadError>;

/** A request a thread has not answered yet: a shard (with its context) or a window-devices query. */
interface Running {
  ctx?: ShardContext;
  /** A shard still preparing its models (a thread with one takes no new shard). */
  preparing: boolean;
  resolve(answer: Extract<FromShardThread, { type: 'done' | 'window-devices' }>): void;
  reject(err: Error): void;
}

interface Thread {
  worker: Worker;
  running: Map<number, Running>;
  /** Called when the thread answers `closed`. */
  closed?: () => void;
}

/** A shard no thread has scored, waiting for a thread with no shard preparing. */
interface Waiting {
  req: ShardRequest;
  /** Sends it to thread `index` (synchronously: it is running there, preparing, before the next is routed). */
  send(index: number): void;
  fail(err: Error): void;
}

/** How often a shard waiting for a thread heartbeats. */
const WAITING_HEARTBEAT_MS = 1_000;

/**
 * The most a closing worker waits for a thread to save the programs it compiled (saves are deferred to idle time:
 * shard-thread.ts): 5,000 forests' programs take about 0.5 s on a quiet host. Past it, unsaved ones compile again.
 */
const CLOSE_SAVE_MS = 30_000;

/** Shards whose thread a worker remembers (a few dozen bytes each): 100,000 devices are 200 shards of a store. */
const MAX_PLACED_SHARDS = 100_000;

/** Options of {@link ShardThreads}. */
export interface ShardThreadsOptions {
  /** Threads; each scores the shards routed to it, several at once when more are routed than threads exist. */
  threads: number;
  /** The session cache options of the worker: each thread gets them with an equal share of the budgets. */
  cache: ShardThreadCacheOptions;
  /** The worker's budget for parsed Arrow parts (default `DEFAULT_AGGREGATES_BYTES`), shared as `cache`'s are. */
  aggregatesBytes?: number;
  /** Where the threads keep an S3 store's model files on the host; none when absent. */
  modelFiles?: ModelFilesFolder;
  /** Gets the threads' session cache metrics (cache lookups, inference calls, placements). */
  observer?: ModelSessionObserver;
}

/** A worker's shard threads: started by {@link ShardThreads.start} (or the first shard), ended by `close`. */
export class ShardThreads {
  private readonly threads: (Thread | undefined)[];
  /** The thread that scored each shard last, by store and shard number. */
  private readonly placed = new LruCache<string, number>(MAX_PLACED_SHARDS);
  /** Shards no thread has scored, in the order they came, until a thread is free to prepare them. */
  private readonly waiting: Waiting[] = [];
  private nextId = 0;
  /** Shards running on any thread (see the `busy` message). */
  private shardsRunning = 0;
  /** The model files of a local store the event loop watches for the threads. */
  private readonly watches = new ModelWatches(
    (message) => this.warn(message),
    undefined,
    (devices) => this.options.observer?.watchedModelFolders?.(devices),
  );

  /** The parts one thread read, for the others (part-exchange.ts). */
  private readonly parts: PartBroker<ThreadError>;

  constructor(private readonly options: ShardThreadsOptions) {
    if (!Number.isInteger(options.threads) || options.threads < 1)
      throw new RangeError('shard threads must be an integer of at least 1');
    this.threads = new Array<Thread | undefined>(options.threads).fill(undefined);
    this.parts = new PartBroker(
      options.threads,
      this.share(options.aggregatesBytes ?? DEFAULT_AGGREGATES_BYTES),
      (i, id, answer) => this.threads[i]?.worker.postMessage({ type: 'part', id, answer } satisfies ToShardThread),
      (i) => this.threads[i]?.running.size ?? 0,
    );
  }

  /** Parts of windows read by one thread and taken by another, since the threads started. */
  get partsExchanged(): { read: number; taken: number } {
    return { ...this.parts.counts };
  }

  /** Hands a thread's message about parts to the broker, and tells the observer of the parts read or taken. */
  private partsMessage(index: number, msg: PartMessage<ThreadError>): void {
    const { read, taken } = this.parts.counts;
    this.parts.handle(index, msg);
    const observer = this.options.observer;
    if (this.parts.counts.read > read) observer?.windowParts?.('read', this.parts.counts.read - read);
    if (this.parts.counts.taken > taken) observer?.windowParts?.('taken', this.parts.counts.taken - taken);
  }

  /** A thread's share of a budget of the worker's. */
  private share(total: number): number {
    return Math.ceil(total / this.threads.length);
  }

  private warn(message: string): void {
    if (this.options.observer?.warning) this.options.observer.warning(message);
    else process.emitWarning(message);
  }

  /** Starts every thread now, so the first shard does not wait for one. */
  start(): void {
    for (let i = 0; i < this.threads.length; i++) this.threads[i] ??= this.spawn(i);
  }

  /**
   * The thread (0-based) that scores `req` if it comes now: the one that scored this store's shard of that number
   * last, else of the threads with no shard preparing the one with the fewest running (the rest of their work:
   * inference and writes), from shard k's thread (k mod N) on; undefined when every thread has a shard preparing,
   * and the shard would wait.
   */
  route(req: Pick<ShardRequest, 'store' | 'shard'>): number | undefined {
    const placed = this.placed.get(placement(req));
    if (placed !== undefined) return placed;
    const n = this.threads.length;
    let best: number | undefined;
    for (let k = 0; k < n; k++) {
      const i = (req.shard + k) % n;
      const thread = this.threads[i];
      if (thread && [...thread.running.values()].some((r) => r.preparing)) continue;
      if (best === undefined || (thread?.running.size ?? 0) < (this.threads[best]?.running.size ?? 0)) best = i;
    }
    return best;
  }

  /**
   * Scores one shard on a thread; heartbeats and logs go through `ctx`, and `ctx.signal` cancels the thread's
   * attempt (which then writes nothing more), or the shard's wait for a thread. Rejects with the attempt's error,
   * rebuilt as its fleetscore class.
   */
  score(req: ShardRequest, ctx: ShardContext): Promise<ShardSummary> {
    const { attempt, taskQueue, workflowId, workflowRunId } = ctx;
    const onThread = (index: number) => {
      this.placed.set(placement(req), index);
      return this.ask(index, ctx, (id) => ({
        type: 'score',
        id,
        req,
        ctx: { attempt, taskQueue, workflowId, workflowRunId },
      })).then((answer) => (answer.type === 'done' ? answer.summary : unexpected(answer.type)));
    };
    // A shard placed on a thread goes there at once; a new one waits its turn behind those already waiting.
    const placed = this.placed.get(placement(req));
    const index = placed ?? (this.waiting.length === 0 ? this.route(req) : undefined);
    if (index !== undefined) return onThread(index);
    return new Promise<ShardSummary>((resolve, reject) => {
      const signal = ctx.signal;
      // The activity must not time out while it waits: it heartbeats, as a shard waiting for its turn does.
      const beat = setInterval(() => ctx.heartbeat({ devicesDone: 0 }), WAITING_HEARTBEAT_MS);
      const leave = () => {
        clearInterval(beat);
        signal?.removeEventListener('abort', onAbort);
        const at = this.waiting.indexOf(waiting);
        if (at >= 0) this.waiting.splice(at, 1);
      };
      const waiting: Waiting = {
        req,
        send: (i) => {
          leave();
          try {
            resolve(onThread(i));
          } catch (err) {
            // A thread that cannot be started fails this shard, not the message handler that sent it.
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        },
        fail: (err) => {
          leave();
          reject(err);
        },
      };
      const onAbort = () => waiting.fail(signal!.reason as Error);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiting);
      if (signal?.aborted) onAbort();
    });
  }

  /** Sends waiting shards, first come first, to threads with no shard preparing. */
  private sendWaiting(): void {
    while (this.waiting.length > 0) {
      const next = this.waiting[0]!;
      const index = this.route(next.req);
      if (index === undefined) return;
      next.send(index);
    }
  }

  /**
   * The device ids with rows in a run's parts, from the aggregates cache of the thread that scored the store's
   * shard 0: where that was this run's, the thread has parsed the parts already and the commit parses (and holds)
   * no other copy; else the thread parses them, off the event loop.
   */
  windowDevices(query: WindowDevicesQuery): Promise<string[]> {
    const index = this.placed.get(placement({ store: query.store, shard: 0 })) ?? 0;
    return this.ask(index, undefined, (id) => ({ type: 'window-devices', id, query })).then((answer) =>
      answer.type === 'window-devices' ? answer.devices : unexpected(answer.type),
    );
  }

  /**
   * Has every thread read and parse a run's parts now, into its aggregates cache, where its shards will find them:
   * the plan's worker does so as its run's shards are being scheduled, which takes a workflow task and a dispatch,
   * rather than in each thread's first shard. Resolves when all have.
   */
  readAhead(query: WindowDevicesQuery): Promise<void> {
    return Promise.all(
      this.threads.map((_, i) => this.ask(i, undefined, (id) => ({ type: 'window-devices', id, query }))),
    ).then(() => undefined);
  }

  /** Posts the message `make(id)` to thread `index` and waits for its answer; `ctx.signal` cancels a shard. */
  private ask(
    index: number,
    ctx: ShardContext | undefined,
    make: (id: number) => ToShardThread,
  ): Promise<Extract<FromShardThread, { type: 'done' | 'window-devices' }>> {
    const thread = (this.threads[index] ??= this.spawn(index));
    const id = this.nextId++;
    const signal = ctx?.signal;
    if (ctx) this.shardStarted();
    return new Promise((resolve, reject) => {
      const onAbort = () => thread.worker.postMessage({ type: 'abort', id } satisfies ToShardThread);
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => {
        signal?.removeEventListener('abort', onAbort);
        if (ctx) this.shardEnded();
        thread.running.delete(id);
        this.prepared(running);
        // A thread with nothing to do must not keep a finished process alive.
        if (thread.running.size === 0) thread.worker.unref();
      };
      // A shard (it has a context) prepares its models first; a window-devices query does not count.
      const running: Running = {
        ...(ctx ? { ctx } : {}),
        preparing: ctx !== undefined,
        resolve: (answer) => {
          settle();
          resolve(answer);
        },
        reject: (err) => {
          settle();
          // A cancelled attempt fails with the cancellation itself, as it does on the worker's event loop.
          reject(signal?.aborted ? (signal.reason as Error) : err);
        },
      };
      thread.running.set(id, running);
      thread.worker.ref();
      thread.worker.postMessage(make(id));
      if (signal?.aborted) onAbort();
    });
  }

  /** Counts a shard sent to a thread, telling every thread when the worker turns busy (a new thread: spawn). */
  private shardStarted(): void {
    if (this.shardsRunning++ === 0) this.tellThreads(true);
  }

  /** Counts a shard that ended, telling every thread when the worker turns idle. */
  private shardEnded(): void {
    if (--this.shardsRunning === 0) this.tellThreads(false);
  }

  private tellThreads(busy: boolean): void {
    for (const t of this.threads) t?.worker.postMessage({ type: 'busy', busy } satisfies ToShardThread);
    this.watches.setBusy(busy);
  }

  /** Records that a shard has prepared its models (or ended), and sends the next waiting shard. */
  private prepared(running: Running): void {
    if (!running.preparing) return;
    running.preparing = false;
    this.sendWaiting();
  }

  /**
   * Ends the threads once each has saved the programs it compiled (within {@link CLOSE_SAVE_MS}); shards still
   * running on them fail, and so do shards waiting for one.
   */
  async close(): Promise<void> {
    for (const w of [...this.waiting]) w.fail(new Error('the shard threads were closed'));
    const threads = this.threads.splice(0, this.threads.length, ...this.threads.map(() => undefined));
    await Promise.all(threads.flatMap((t) => (t ? [end(t)] : [])));
    this.watches.close();
  }

  /** What a thread builds its caches with: the worker's budgets divided by the threads. */
  private setup(index: number): ShardThreadSetup {
    const { cache } = this.options;
    const share = (total: number) => this.share(total);
    return {
      cache: {
        ...cache,
        maxSessions: share(cache.maxSessions ?? DEFAULT_MAX_SESSIONS),
        maxStackedModels: share(cache.maxStackedModels ?? DEFAULT_MAX_STACKED_MODELS),
        maxCompiledBytes: share(cache.maxCompiledBytes ?? DEFAULT_MAX_COMPILED_BYTES),
      },
      aggregatesBytes: share(this.options.aggregatesBytes ?? DEFAULT_AGGREGATES_BYTES),
      ...(this.options.modelFiles ? { modelFiles: this.options.modelFiles } : {}),
      watchBoard: this.watches.board(index),
    };
  }

  private spawn(index: number): Thread {
    const worker = startModuleThread(`${__dirname}/shard-thread`, this.setup(index));
    worker.unref();
    if (this.shardsRunning > 0) worker.postMessage({ type: 'busy', busy: true } satisfies ToShardThread);
    const thread: Thread = { worker, running: new Map() };
    const observer = this.options.observer;
    worker.on('message', (msg: FromShardThread) => {
      if (msg.type === 'observed') {
        for (let i = 0; i < msg.hits; i++) observer?.cacheLookup?.(true);
        for (let i = 0; i < msg.misses; i++) observer?.cacheLookup?.(false);
        for (let i = 0; i < msg.inferences.length; i += 2)
          observer?.inference?.(msg.inferences[i]!, msg.inferences[i + 1]!);
        for (const p of msg.placements) observer?.placement?.(p);
        for (const [origin, n] of Object.entries(msg.programs) as [ProgramOrigin, number][])
          for (let i = 0; i < n; i++) observer?.program?.(origin);
        if (msg.modelFilesFetched > 0) observer?.modelFilesFetched?.(msg.modelFilesFetched);
        return;
      }
      if (msg.type === 'warning') {
        this.warn(msg.message);
        return;
      }
      if (msg.type === 'watch' || msg.type === 'unwatch' || msg.type === 'settle') {
        this.watches.handle(index, msg, (id) => worker.postMessage({ type: 'settled', id } satisfies ToShardThread));
        return;
      }
      if (msg.type === 'part-want' || msg.type === 'part-parsed' || msg.type === 'part-released') {
        this.partsMessage(index, msg);
        return;
      }
      if (msg.type === 'closed') {
        thread.closed?.();
        return;
      }
      const running = thread.running.get(msg.id);
      if (!running) return;
      if (msg.type === 'heartbeat') running.ctx?.heartbeat({ devicesDone: msg.devicesDone });
      else if (msg.type === 'prepared') this.prepared(running);
      else if (msg.type === 'log') running.ctx?.log[msg.level](msg.message, msg.attrs);
      else if (msg.type === 'failed') running.reject(reviveError(msg.error));
      else running.resolve(msg);
    });
    // A thread that dies takes its shards with it: they fail (Temporal retries them), never hang; the next shard
    // routed to it starts a new thread.
    const died = (err: Error) => {
      if (this.threads[index] === thread) this.threads[index] = undefined;
      this.parts.threadGone(index);
      for (const r of [...thread.running.values()]) r.reject(err);
    };
    worker.on('error', (err) => died(new Error(`shard thread ${index} failed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => died(new Error(`shard thread ${index} exited with code ${code}`)));
    return thread;
  }
}

/** Ends `thread` once it has answered `closed`, exited, or had {@link CLOSE_SAVE_MS}. */
async function end(thread: Thread): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, CLOSE_SAVE_MS);
    thread.closed = () => {
      clearTimeout(timer);
      resolve();
    };
    thread.worker.once('exit', thread.closed);
    thread.worker.postMessage({ type: 'close' } satisfies ToShardThread);
  });
  await thread.worker.terminate();
}

/** The key a shard's thread is remembered by. */
function placement({ store, shard }: Pick<ShardRequest, 'store' | 'shard'>): string {
  return `${shard} ${store}`;
}

function unexpected(type: string): never {
  throw new Error(`a shard thread answered with ${type}`);
}

/** `err` as data that crosses to another thread. */
export function threadError(err: unknown): ThreadError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err), fields: {} };
  const fields: ThreadError['fields'] = {};
  for (const [name, value] of Object.entries(err)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') fields[name] = value;
  }
  return { name: err.name, message: err.message, stack: err.stack, fields };
}

/** The error a shard thread sent, as an instance of its fleetscore class (a plain Error of its name otherwise). */
export function reviveError(e: ThreadError): Error {
  const cls = ERROR_CLASSES.find((c) => c.name === e.name);
  const err: Error = cls ? (Object.create(cls.prototype as object) as Error) : new Error(e.message);
  // A fleetscore error's device, file and field are undefined unless set, as its constructor leaves them.
  if (cls) Object.assign(err, { device: undefined, file: undefined, field: undefined });
  Object.assign(err, e.fields, { name: e.name });
  // Not enumerable, as on any Error.
  for (const [name, value] of [
    ['message', e.message],
    ['stack', e.stack],
  ] as const)
    Object.defineProperty(err, name, { value, writable: true, configurable: true, enumerable: false });
  return err;
}
