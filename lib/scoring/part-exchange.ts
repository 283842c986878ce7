/**
 * Parsed aggregate parts shared between a worker's shard threads. Each thread used to read and parse every part of
 * a window (its shards' devices may be in any part), so a worker held one copy of the window per thread (about
 * 330 MB each at 100,000 devices) and parsed it once per thread. Now a thread asks the worker's event loop for a
 * part first: the first thread to ask reads it, into SharedArrayBuffers (aggregates-part.ts `readSharedPart`), and
 * the others take that, views and all, without a copy. A thread reads one part at a time, so two threads reading
 * a window ahead of its shards take turns over its parts, each reading about half.
 *
 * The event loop keeps a part read until every thread has it, within a thread's share of the parts budget (the
 * threads' own caches hold what their shards use, so a part every thread took costs nothing more here); a part
 * that fails as a whole is shared as that failure. A store error is not: the part goes to the next thread that
 * wants it, as it would be read again by the next shard.
 */
import type { ExchangedPart, PartExchange } from '../arrow/aggregates-cache';
import { decodedArrayBytes, type SharedPart } from '../arrow/aggregates-part';
import type { InvalidAggregates } from '../shared/errors';
import { LruCache } from '../lru-cache';

/** A part's answer as it crosses threads: an error as data (`threadError`). */
export type PartAnswer<E> = { read: true } | { shared: SharedPart } | { error: E };

/** What a shard thread tells the worker of parts. */
export type PartMessage<E> =
  | { type: 'part-want'; id: string }
  | { type: 'part-parsed'; id: string; part: { shared: SharedPart } | { error: E } }
  | { type: 'part-released'; id: string };

/** What a failed part weighs in the event loop's keep: its message and fields. */
const FAILED_WEIGHT = 1_024;

/** The thread's half: asks the worker before reading a part, and answers for the parts it read. */
export class ThreadPartExchange<E> implements PartExchange {
  private readonly waiting = new Map<string, (answer: ExchangedPart) => void>();

  constructor(
    private readonly post: (msg: PartMessage<E>) => void,
    private readonly toData: (err: InvalidAggregates) => E,
    private readonly fromData: (err: E) => InvalidAggregates,
  ) {}

  want(id: string): Promise<ExchangedPart> {
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.post({ type: 'part-want', id });
    });
  }

  parsed(id: string, part: { shared: SharedPart } | { error: InvalidAggregates }): void {
    const data = 'shared' in part ? part : { error: this.toData(part.error) };
    this.post({ type: 'part-parsed', id, part: data });
  }

  released(id: string): void {
    this.post({ type: 'part-released', id });
  }

  /** The worker's answer to `want(id)`. */
  answer(id: string, answer: PartAnswer<E>): void {
    const resolve = this.waiting.get(id);
    this.waiting.delete(id);
    if (!resolve) {
      // Nobody here waits for it any more: another thread may read it.
      if ('read' in answer) this.released(id);
      return;
    }
    resolve('error' in answer ? { error: this.fromData(answer.error) } : answer);
  }
}

/** A part wanted and not read yet: who wants it, and the thread reading it (if one is). */
interface Wanted {
  wanters: Set<number>;
  reader?: number;
}

/** The worker's half, on its event loop: which thread reads which part, and the parts read. */
export class PartBroker<E> {
  private readonly wanted = new Map<string, Wanted>();
  /** Parts read, with the threads that have them, until all do. */
  private readonly ready: LruCache<string, { answer: PartAnswer<E>; holders: Set<number> }>;
  /** Threads reading a part now (each reads one at a time). */
  private readonly reading = new Set<number>();
  /** Parts read by a thread, and parts a thread took from another (for tests and the worker's log). */
  readonly counts = { read: 0, taken: 0 };

  constructor(
    /** The worker's threads: a part all of them have is no longer kept here. */
    private readonly threads: number,
    /** Bytes of parts kept for threads that have not asked yet (a thread's share of the worker's parts budget). */
    maxBytes: number,
    private readonly send: (thread: number, id: string, answer: PartAnswer<E>) => void,
    /**
     * How much a thread has to do now (its shards): a part goes to the least busy thread that wants it, since a
     * thread reads it only between the devices of its shards (a forest's compile can take a second).
     */
    private readonly load: (thread: number) => number = () => 0,
  ) {
    this.ready = new LruCache(maxBytes);
  }

  /** Handles a message of thread `thread`. */
  handle(thread: number, msg: PartMessage<E>): void {
    if (msg.type === 'part-want') this.want(thread, msg.id);
    else if (msg.type === 'part-parsed') this.parsed(thread, msg.id, msg.part);
    else this.released(thread, msg.id);
  }

  /**
   * A thread ended: what it was reading goes to another thread that wants it, and the parts it had are kept for the
   * thread started in its place (same index), which has none of them.
   */
  threadGone(thread: number): void {
    this.reading.delete(thread);
    for (const id of [...this.wanted.keys()]) this.forget(thread, id);
    for (const kept of this.ready.values()) kept.holders.delete(thread);
    this.assign();
  }

  private want(thread: number, id: string): void {
    const ready = this.ready.get(id);
    if (ready) {
      this.counts.taken++;
      this.send(thread, id, ready.answer);
      this.held(id, ready.holders.add(thread));
      return;
    }
    let w = this.wanted.get(id);
    if (!w) this.wanted.set(id, (w = { wanters: new Set() }));
    w.wanters.add(thread);
    this.assign();
  }

  private parsed(thread: number, id: string, part: { shared: SharedPart } | { error: E }): void {
    this.reading.delete(thread);
    this.counts.read++;
    const w = this.wanted.get(id);
    this.wanted.delete(id);
    const holders = new Set([thread]);
    for (const other of w?.wanters ?? []) {
      if (other === thread) continue;
      this.counts.taken++;
      this.send(other, id, part);
      holders.add(other);
    }
    this.ready.set(id, { answer: part, holders }, 'shared' in part ? sharedBytes(part.shared) : FAILED_WEIGHT);
    this.held(id, holders);
    this.assign();
  }

  /** Keeps a part no longer once every thread has it. */
  private held(id: string, holders: Set<number>): void {
    if (holders.size >= this.threads) this.ready.delete(id);
  }

  private released(thread: number, id: string): void {
    this.reading.delete(thread);
    // The thread's own want failed with it (its shard gets the store's error).
    this.forget(thread, id);
    this.assign();
  }

  /** Thread `thread` neither wants nor reads part `id` any more; a part nobody wants is forgotten. */
  private forget(thread: number, id: string): void {
    const w = this.wanted.get(id);
    if (!w) return;
    w.wanters.delete(thread);
    if (w.reader === thread) w.reader = undefined;
    if (w.wanters.size === 0 && w.reader === undefined) this.wanted.delete(id);
  }

  /**
   * Gives each part no thread reads, in the order they were wanted, to the least busy thread that wants it and reads
   * nothing now.
   */
  private assign(): void {
    for (const [id, w] of this.wanted) {
      if (w.reader !== undefined) continue;
      let reader: number | undefined;
      for (const thread of w.wanters) {
        if (!this.reading.has(thread) && (reader === undefined || this.load(thread) < this.load(reader)))
          reader = thread;
      }
      if (reader === undefined) continue;
      w.reader = reader;
      this.reading.add(reader);
      this.send(reader, id, { read: true });
    }
  }
}

/** The bytes a shared part holds: its IPC, decoded arrays and device index. */
function sharedBytes(p: SharedPart): number {
  return p.ipc.byteLength + decodedArrayBytes(p) + p.deviceRunStart.byteLength + p.deviceRuns.byteLength;
}
