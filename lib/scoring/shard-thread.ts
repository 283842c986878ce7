/**
 * The body of a shard thread (shard-threads.ts): its own store clients and caches, and the shards the worker
 * routes to it, scored exactly as on the worker's event loop (scoreShard). Models compile here, on this thread:
 * it is already off the event loop that runs workflow tasks and heartbeats.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { AggregatesCache } from '../arrow/aggregates-cache';
import type { ProgramOrigin } from '../models/fast-paths/compiled-models';
import { ModelSessionCache } from '../models/model-sessions';
import type { SessionPlacement } from '../models/onnx-session-pool';
import { KeptModelFiles } from '../store/kept-model-files';
import { openStore } from '../store/open-store';
import type { ObjectStore } from '../store/object-store';
import { withSignal } from '../store/signal-store';
import { Turns } from '../shared/concurrency';
import { messageOf, type InvalidAggregates } from '../shared/errors';
import { ModelFreshness } from './model-freshness';
import { WatchedModels } from './model-watches';
import { ThreadPartExchange } from './part-exchange';
import { scoreShard } from './score-shard';
import {
  reviveError,
  threadError,
  type FromShardThread,
  type ShardThreadSetup,
  type ToShardThread,
} from './shard-threads';

/** The least time between two heartbeats a thread posts for one attempt. */
const HEARTBEAT_POST_MS = 250;

/**
 * How long a thread and its worker are idle before the thread saves the programs it compiled: past the gaps between
 * a run's shards.
 */
const SAVE_IDLE_MS = 1_000;

/** Programs saved between two looks at the thread's messages (a new shard stops the saving). */
const SAVE_BATCH = 16;
/** Model files kept at a time when idle (0.1 to 0.6 ms each): a new shard waits for one batch at most. */
const WRITE_BATCH = 64;
/** Of those, files GET again from the store (a round trip each, and up to a megabyte for a forest). */
const FETCH_BATCH = 8;

const port = parentPort!;
const post = (msg: FromShardThread) => port.postMessage(msg);

// Session cache metrics, sent with the next heartbeat or answer rather than one message per device.
let hits = 0;
let misses = 0;
let inferences: number[] = [];
let placements: SessionPlacement[] = [];
let programs: Partial<Record<ProgramOrigin, number>> = {};
let modelFilesFetched = 0;
const flushObserved = () => {
  const observed = hits + misses + inferences.length + placements.length + modelFilesFetched;
  if (observed + Object.keys(programs).length === 0) return;
  post({ type: 'observed', hits, misses, inferences, placements, programs, modelFilesFetched });
  hits = misses = modelFilesFetched = 0;
  inferences = [];
  placements = [];
  programs = {};
};

const setup = (workerData as { data: ShardThreadSetup }).data;
const sessions = new ModelSessionCache({
  ...setup.cache,
  // Every model compiles here, forests too. A compile thread per shard thread made a cold pass over 10,000 25-tree
  // forests faster in isolation, but in `npm run bench` (10,000 such forests, two shard threads, twice each way)
  // it took 48.9 and 51.2 s cold and 3.44 and 4.31 s warm, against 36.5 and 58.1 s cold and 2.86 and 3.28 s warm
  // compiling here, and 230 MB more worker memory.
  compileThreads: 0,
  // Saved programs too are read synchronously here, as the store is (storeAt).
  blockingReads: true,
  // And saved once the worker is idle (saveWhenIdle), not in a shard's way: creating the files took 9 % of a cold
  // forest thread's time under the bench's load.
  deferProgramSaves: true,
  observer: {
    cacheLookup: (hit) => (hit ? hits++ : misses++),
    inference: (seconds, rows) => inferences.push(seconds, rows),
    placement: (p) => {
      placements.push(p);
      flushObserved();
    },
    program: (origin) => void (programs[origin] = (programs[origin] ?? 0) + 1),
    warning: (message) => post({ type: 'warning', message }),
  },
});
// A part one thread reads, the others take from it (part-exchange.ts).
// Only parts that fail as a whole cross as errors: InvalidAggregates, revived as such.
const parts = new ThreadPartExchange(post, threadError, (e) => reviveError(e) as InvalidAggregates);
const aggregates = new AggregatesCache(setup.aggregatesBytes, parts);
const watches = new WatchedModels(setup.watchBoard, post);
const freshness = new ModelFreshness(watches);
// The worker holds two shards per thread (worker-slots.ts): they prepare their models one after the other. Cold
// runs of 10,000 25-tree forests took 37 to 40 s with the two interleaving their reads and compiles (three times the
// full garbage collections of one shard per thread) and 32 to 38 s in turns, as with one per thread (32 to 40 s).
const prepareTurns = new Turns();
// And they score their prepared devices in turns: the first shard finishes, and its slot takes the next shard, while
// the other goes on, instead of both finishing together. Warm 10,000 autoencoders: median 0.44 s against 0.49 s
// over 35 runs each (docs/benchmarks.md, 2026-12-07 17:45).
const inferTurns = new Turns();
const stores = new Map<string, ObjectStore>();
const attempts = new Map<number, AbortController>();

let idle: NodeJS.Timeout | undefined;
/** Whether any thread of the worker scores a shard (the worker says so): saving waits until none does. */
let workerBusy = false;

port.on('message', (msg: ToShardThread) => {
  if (msg.type === 'abort') attempts.get(msg.id)?.abort(new Error('the attempt was cancelled'));
  else if (msg.type === 'window-devices') void windowDevices(msg);
  else if (msg.type === 'close') void close();
  else if (msg.type === 'settled') watches.settled(msg.id);
  else if (msg.type === 'part') parts.answer(msg.id, msg.answer);
  else if (msg.type === 'busy') {
    workerBusy = msg.busy;
    saveSoon();
  } else {
    clearTimeout(idle);
    void score(msg);
  }
});

/** Saves once this thread and the whole worker have been idle for {@link SAVE_IDLE_MS}; not while either is busy. */
function saveSoon(): void {
  clearTimeout(idle);
  if (attempts.size === 0 && !workerBusy) idle = setTimeout(saveWhenIdle, SAVE_IDLE_MS);
}

/**
 * Saves the programs whose save was deferred, then keeps the S3 model files whose writing was, a batch at a time,
 * while no shard is running.
 */
function saveWhenIdle(): void {
  if (attempts.size > 0 || workerBusy) return;
  saveBatch().then((left) => {
    if (left > 0) idle = setTimeout(saveWhenIdle, 0);
  }, saveFailed);
}

/** One batch of deferred programs, or when none is left of model files; how many are left. */
async function saveBatch(): Promise<number> {
  const programs = await sessions.saveDeferredPrograms(SAVE_BATCH);
  return programs > 0 ? programs : writeKeptModelFiles(WRITE_BATCH, FETCH_BATCH);
}

/**
 * Keeps up to `max` deferred model files of each store on the host, of which up to `fetch` GET again; how many are
 * left.
 */
async function writeKeptModelFiles(max: number, fetch: number): Promise<number> {
  let left = 0;
  for (const store of stores.values()) {
    if (!(store instanceof KeptModelFiles)) continue;
    const before = store.fetched;
    left += await store.writeDeferred(max, { fetch });
    modelFilesFetched += store.fetched - before;
  }
  flushObserved();
  return left;
}

/**
 * Saves every program and keeps every model file whose saving was deferred and that is held in memory (no GETs
 * while the worker stops), then says so: the worker ends the thread after.
 */
async function close(): Promise<void> {
  clearTimeout(idle);
  await sessions.saveDeferredPrograms().catch(saveFailed);
  await writeKeptModelFiles(Infinity, 0);
  post({ type: 'closed' });
}

/** Tells the worker that saving failed (a folder's own problems are warnings of the saved-programs folder). */
function saveFailed(err: unknown): void {
  post({ type: 'warning', message: `saving compiled programs failed: ${messageOf(err)}` });
}

/** This thread's client of the store at `uri`. */
function storeAt(uri: string): ObjectStore {
  let store = stores.get(uri);
  // Nothing else runs on this thread's event loop: a local folder, and the model files kept on the host for an S3
  // store, are read synchronously (local-store.ts, kept-model-files.ts).
  if (!store) {
    const warn = (message: string) => post({ type: 'warning', message });
    stores.set(
      uri,
      (store = openStore(uri, { blockingReads: true, modelFiles: setup.modelFiles, warn, deferWrites: true })),
    );
  }
  return store;
}

async function windowDevices({ id, query }: Extract<ToShardThread, { type: 'window-devices' }>): Promise<void> {
  try {
    const { window, parts, runId } = query;
    const data = await aggregates.window(storeAt(query.store), window, parts, runId);
    post({ type: 'window-devices', id, devices: data.devices() });
  } catch (err) {
    post({ type: 'failed', id, error: threadError(err) });
  }
}

async function score({ id, req, ctx }: Extract<ToShardThread, { type: 'score' }>): Promise<void> {
  const controller = new AbortController();
  attempts.set(id, controller);
  let lastBeat = 0;
  const store = storeAt(req.store);
  try {
    const summary = await scoreShard(
      {
        store: withSignal(store, controller.signal),
        sharedStore: store,
        sessions,
        aggregates,
        freshness,
        prepareTurns,
        inferTurns,
      },
      req,
      {
        ...ctx,
        signal: controller.signal,
        // The worker passes on at most one a second (activities/index.ts): a few a second are enough from here.
        heartbeat: ({ devicesDone }) => {
          if (Date.now() - lastBeat < HEARTBEAT_POST_MS) return;
          lastBeat = Date.now();
          flushObserved();
          post({ type: 'heartbeat', id, devicesDone });
        },
        prepared: () => post({ type: 'prepared', id }),
        log: {
          info: (message, attrs) => post({ type: 'log', id, level: 'info', message, attrs }),
          warn: (message, attrs) => post({ type: 'log', id, level: 'warn', message, attrs }),
        },
      },
    );
    flushObserved();
    post({ type: 'done', id, summary });
  } catch (err) {
    flushObserved();
    post({ type: 'failed', id, error: threadError(err) });
  } finally {
    attempts.delete(id);
    saveSoon();
  }
}
