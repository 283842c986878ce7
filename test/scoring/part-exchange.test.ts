/**
 * The parts exchange between a worker's shard threads (lib/scoring/part-exchange.ts), its two halves wired in one
 * process: each part is read by one thread and taken by the others; threads reading a window at once take turns
 * over its parts; a part a thread could not read (a store error) or whose thread ended goes to another thread that
 * wants it; a part that fails as a whole is shared as that failure; parts are kept within the budget.
 */
import type { ExchangedPart } from '../../lib/arrow/aggregates-cache';
import type { SharedPart } from '../../lib/arrow/aggregates-part';
import { PartBroker, ThreadPartExchange, type PartAnswer } from '../../lib/scoring/part-exchange';
import { InvalidAggregates } from '../../lib/shared/errors';

/** A shared part of `bytes` bytes (the broker only weighs and passes it). */
function sharedPart(file: string, bytes = 100): SharedPart {
  const none = new Int32Array(0);
  return {
    file,
    ipc: new Uint8Array(bytes),
    tsType: { unit: 1, timezone: 'UTC' },
    byteLength: bytes,
    ts: new Float64Array(0),
    tsNanos: null,
    runStart: none,
    runEnd: none,
    runBatch: none,
    batchStart: none,
    devices: [],
    deviceRunStart: none,
    deviceRuns: none,
  };
}

/** Three threads' exchanges and the broker between them, messages delivered at once; what each thread was told. */
function wired(maxBytes = 1_000, load: number[] = [0, 0, 0]) {
  const told: [number, string, string][] = [];
  const threads: ThreadPartExchange<string>[] = [];
  const broker = new PartBroker<string>(
    3,
    maxBytes,
    (thread, id, answer: PartAnswer<string>) => {
      told.push([thread, id, Object.keys(answer)[0]!]);
      threads[thread]!.answer(id, answer);
    },
    (thread) => load[thread]!,
  );
  for (const i of [0, 1, 2]) {
    threads.push(
      new ThreadPartExchange<string>(
        (msg) => broker.handle(i, msg),
        (err) => err.message,
        (message) => new InvalidAggregates(message, { file: 'from-data' }),
      ),
    );
  }
  return { broker, threads, told };
}

/** What `want` resolved with so far (undefined while it waits). */
function track(p: Promise<ExchangedPart>): { got?: ExchangedPart } {
  const t: { got?: ExchangedPart } = {};
  void p.then((got) => (t.got = got));
  return t;
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test('two threads wanting the same parts take turns reading them; each is read once and taken by the other', async () => {
  const { broker, threads, told } = wired();
  const [a, b] = threads as [ThreadPartExchange<string>, ThreadPartExchange<string>];
  const wantsA = ['p0', 'p1', 'p2'].map((id) => track(a.want(id)));
  const wantsB = ['p0', 'p1', 'p2'].map((id) => track(b.want(id)));
  await settle();
  // Thread 0 asked first: it reads p0; thread 1 reads p1; p2 waits for whichever is done first.
  expect(told).toEqual([
    [0, 'p0', 'read'],
    [1, 'p1', 'read'],
  ]);
  b.parsed('p1', { shared: sharedPart('p1') });
  await settle();
  expect(wantsA[1]!.got).toEqual({ shared: sharedPart('p1') });
  expect(told.slice(2)).toEqual([
    [0, 'p1', 'shared'],
    [1, 'p2', 'read'],
  ]);
  a.parsed('p0', { shared: sharedPart('p0') });
  b.parsed('p2', { shared: sharedPart('p2') });
  await settle();
  expect(wantsB[0]!.got).toEqual({ shared: sharedPart('p0') });
  expect(wantsA[2]!.got).toEqual({ shared: sharedPart('p2') });
  expect(broker.counts).toEqual({ read: 3, taken: 3 });
  // A later want (the thread's cache let the part go) takes it from the broker's keep, which holds it for the
  // third thread; once that has it too, it is kept no more.
  expect(await a.want('p2')).toEqual({ shared: sharedPart('p2') });
  expect(await threads[2]!.want('p2')).toEqual({ shared: sharedPart('p2') });
  expect(await a.want('p2')).toEqual({ read: true });
});

test('a part goes to the least busy of the threads that want it', async () => {
  // Thread 1 scores three shards, thread 2 one.
  const { threads, told } = wired(1_000, [0, 3, 1]);
  expect(await threads[0]!.want('p0')).toEqual({ read: true });
  const waiting = [track(threads[1]!.want('p0')), track(threads[2]!.want('p0'))];
  // Thread 0 could not read it: of the two that want it, the less busy one reads it, though the other asked first.
  threads[0]!.released('p0');
  await settle();
  expect(told).toEqual([
    [0, 'p0', 'read'],
    [2, 'p0', 'read'],
  ]);
  expect(waiting.map((w) => w.got)).toEqual([undefined, { read: true }]);
});

test('a part that fails as a whole is shared as its failure', async () => {
  const { threads } = wired();
  const [a, b] = threads as [ThreadPartExchange<string>, ThreadPartExchange<string>];
  expect(await a.want('bad')).toEqual({ read: true });
  const other = b.want('bad');
  a.parsed('bad', { error: new InvalidAggregates('is not readable Arrow IPC', { file: 'bad' }) });
  const got = await other;
  expect(got).toEqual({ error: expect.any(InvalidAggregates) });
  expect((got as { error: Error }).error.message).toContain('is not readable Arrow IPC');
});

test('a part a thread could not read, or whose thread ended, goes to another thread that wants it', async () => {
  const { broker, threads, told } = wired();
  const [a, b] = threads as [ThreadPartExchange<string>, ThreadPartExchange<string>];
  expect(await a.want('p0')).toEqual({ read: true });
  const waiting = track(b.want('p0'));
  a.released('p0');
  await settle();
  expect(waiting.got).toEqual({ read: true });
  // Thread 1 ends while reading it: thread 0, wanting it again, reads it.
  const again = track(a.want('p0'));
  broker.threadGone(1);
  await settle();
  expect(again.got).toEqual({ read: true });
  expect(told.map(([t, id, what]) => `${t} ${id} ${what}`)).toEqual(['0 p0 read', '1 p0 read', '0 p0 read']);
});

test('a thread started in place of one that ended takes the parts the other threads read, not read again', async () => {
  const { broker, threads } = wired();
  const [a, b, c] = threads as [ThreadPartExchange<string>, ...ThreadPartExchange<string>[]];
  expect(await a.want('p0')).toEqual({ read: true });
  const [fromB, fromC] = [b!.want('p0'), c!.want('p0')];
  a.parsed('p0', { shared: sharedPart('p0') });
  await Promise.all([fromB, fromC]);
  // Every thread has p0, so it is no longer kept. Another part, read by thread 0 and taken by thread 2.
  expect(await a.want('p1')).toEqual({ read: true });
  const p1 = c!.want('p1');
  a.parsed('p1', { shared: sharedPart('p1') });
  await p1;
  // Thread 2 ends and a new thread 2 starts; thread 1 takes p1: p1 is still kept, for the new thread 2.
  broker.threadGone(2);
  expect(await b!.want('p1')).toEqual({ shared: sharedPart('p1') });
  expect(await c!.want('p1')).toEqual({ shared: sharedPart('p1') });
  expect(await c!.want('p0')).toEqual({ read: true });
  expect(broker.counts).toEqual({ read: 2, taken: 5 });
});

test('a thread told to read a part it no longer waits for gives it back', () => {
  const { broker, threads, told } = wired();
  void threads[0]!.want('p0');
  // The answer came, and another for the same id arrives with nobody waiting: it is released, not left unread.
  threads[0]!.answer('p0', { read: true });
  void threads[1]!.want('p0');
  expect(told.at(-1)).toEqual([1, 'p0', 'read']);
  expect(broker.counts.read).toBe(0);
});

test('parts read are kept within the budget, least recently used first out', async () => {
  const { broker, threads } = wired(250);
  const [a, b] = threads as [ThreadPartExchange<string>, ThreadPartExchange<string>];
  for (const id of ['p0', 'p1', 'p2']) {
    expect(await a.want(id)).toEqual({ read: true });
    a.parsed(id, { shared: sharedPart(id) });
  }
  // 100 bytes each (the ipc): p0 went to keep the budget.
  expect(await b.want('p2')).toEqual({ shared: sharedPart('p2') });
  expect(await b.want('p0')).toEqual({ read: true });
  expect(broker.counts).toEqual({ read: 3, taken: 1 });
});
