/**
 * Watched model files: a warm shard thread's freshness check without a `stat` per file (model-freshness.ts).
 *
 * A warm run checked every device's two model files with a `stat` each, 28 % of a warm autoencoder thread's time
 * on this project's VM. Where the store is a local folder on a local file system (Linux), the worker's event loop
 * instead watches (inotify) the version folder of each model a thread has read, or found unchanged by `stat`, and the
 * folders above it (the store's folder, `models/`); any event there marks the device changed. The thread then
 * takes a device whose watch holds as unchanged without a `stat`, and checks it by `stat` again otherwise.
 *
 * The watches live on the worker's event loop, which never runs a shard (it would leave inotify's queue unread and
 * let it overflow, losing events unseen), and the flags they set are shared with the threads
 * (SharedArrayBuffer, one slot per watched device). A watch is armed only after its files were found as the
 * thread last read them, by `lstat`s made after the watch was set; files with other links (a change through another
 * path of a hard link is not reported to this folder's watch) or reached through a symbolic link are never
 * watched, nor stores on network or FUSE file systems (changes made by other hosts raise no events here). When a
 * shard starts the thread asks for one turn of the worker's event loop, and waits for it before preparing its
 * devices, so that every change made before the shard started has been delivered: a warm worker answers as a fresh
 * one, as with the `stat`s.
 */
import { lstatSync, realpathSync, statfsSync, watch, type FSWatcher, type Stats } from 'node:fs';
import { basename, join } from 'node:path';
import { LruCache } from '../lru-cache';
import { keys } from '../shared/keys';
import { fingerprintOf, print } from './model-freshness';

/** Devices a shard thread may have watched at once (each a watch of the kernel's and about 2.5 KB here). */
const WATCH_SLOTS = 20_000;

/**
 * A thread idle this long between two shards starts a new stretch of work (the next hourly run; a backfill's runs
 * back to back are one stretch). Past its slots a thread gives up only the watch of a device it has not used in
 * the current stretch: a fleet larger than the slots, met in the same order each run, would otherwise give up
 * every watch before its next use and pay both the `stat`s and the watches every run.
 */
const STRETCH_GAP_MS = 10_000;

/**
 * How long the worker is idle (no shard on any thread) before it sets the watches asked for: setting one takes a
 * watch and three `lstat`s, about 35 µs, so 10,000 take a third of a second, which a run's plan and commit (on the
 * same event loop) should not wait for.
 */
const ARM_IDLE_MS = 500;
/** Watches set between two turns of the event loop. */
const ARM_BATCH = 256;

/** A slot's state, in its low bits; the rest is the generation of the device the thread put there. */
const PENDING = 1;
const ARMED = 2;
const DIRTY = 3;
const REFUSED = 4;
const STATE_BITS = 3;
const STATE_MASK = (1 << STATE_BITS) - 1;
const GENERATIONS = 1 << (31 - STATE_BITS);

/** File systems whose changes the kernel sees all of (statfs magic numbers): none over a network or FUSE. */
const LOCAL_FILE_SYSTEMS = new Set([
  0xef53, // ext2, ext3, ext4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0x01021994, // tmpfs
  0xf2f52010, // f2fs
  0x2fc12fc1, // zfs
  0x794c7630, // overlayfs
]);

/**
 * A thread's requests to watch devices' model files in one store folder, found as `fingerprints` (model.json's and
 * model.onnx's prints), one column each: a message of 10,000 objects cost the worker more than their watches saved
 * in the run that asked.
 */
export interface WatchRequests {
  /** The store's folder. */
  root: string;
  slots: number[];
  generations: number[];
  devices: string[];
  versions: string[];
  fingerprints: string[];
}

/** One request of {@link WatchRequests}, as the worker queues it. */
interface WatchRequest {
  slot: number;
  generation: number;
  root: string;
  device: string;
  version: string;
  fingerprint: string;
}

/** What a shard thread tells the worker of its watches. */
export type WatchMessage =
  { type: 'watch'; requests: WatchRequests } | { type: 'unwatch'; slot: number } | { type: 'settle'; id: number };

/** The thread's half: which devices' files are watched, and requests for more. */
export class WatchedModels {
  private readonly board: Int32Array;
  /**
   * The slot and generation of each device (by the freshness check's id) and the stretch of work it was last used
   * in, least recently used first.
   */
  private readonly slots: LruCache<string, { id: string; slot: number; generation: number; stretch: number }>;
  private readonly free: number[] = [];
  /** Requests not sent yet, by store folder. */
  private requests = new Map<string, WatchRequests>();
  private readonly settling = new Map<number, () => void>();
  private nextSettle = 0;
  private stretch = 0;
  /** When the thread last started or ended a shard (performance.now()). */
  private lastActive = -Infinity;

  constructor(
    board: SharedArrayBuffer,
    private readonly post: (msg: WatchMessage) => void,
    /** A pause between shards that starts a new stretch of work (default {@link STRETCH_GAP_MS}). */
    private readonly stretchGapMs = STRETCH_GAP_MS,
  ) {
    this.board = new Int32Array(board);
    for (let i = this.board.length - 1; i >= 0; i--) this.free.push(i);
    // Never full: the least recently used device gives its slot up before another takes one (watch).
    this.slots = new LruCache(this.board.length + 1);
  }

  /** Whether the device's files are watched and nothing happened to them since they were last found unchanged. */
  unchanged(id: string): boolean {
    const entry = this.slots.get(id);
    if (entry === undefined) return false;
    entry.stretch = this.stretch;
    return Atomics.load(this.board, entry.slot) === ((entry.generation << STATE_BITS) | ARMED);
  }

  /**
   * Asks for the device's files to be watched, found unchanged (`fingerprint`) just now by `stat`: sent with the
   * next {@link flush}. Nothing when they are watched already, asked for, or refused (a link, say), nor when every
   * slot holds a device used in this stretch of work.
   */
  watch(id: string, root: string, device: string, version: string, fingerprint: string): void {
    let entry = this.slots.get(id);
    if (entry) {
      entry.stretch = this.stretch;
      const state = Atomics.load(this.board, entry.slot);
      if (state >>> STATE_BITS === entry.generation && (state & STATE_MASK) !== DIRTY) return;
    } else {
      if (this.free.length === 0) {
        const oldest = this.slots.oldest()!;
        if (oldest.stretch === this.stretch) return;
        this.slots.delete(oldest.id);
        this.post({ type: 'unwatch', slot: oldest.slot });
        this.free.push(oldest.slot);
      }
      entry = { id, slot: this.free.pop()!, generation: 0, stretch: this.stretch };
      this.slots.set(id, entry);
    }
    entry.generation = ((Atomics.load(this.board, entry.slot) >>> STATE_BITS) + 1) % GENERATIONS;
    Atomics.store(this.board, entry.slot, (entry.generation << STATE_BITS) | PENDING);
    let r = this.requests.get(root);
    if (!r) {
      r = { root, slots: [], generations: [], devices: [], versions: [], fingerprints: [] };
      this.requests.set(root, r);
    }
    r.slots.push(entry.slot);
    r.generations.push(entry.generation);
    r.devices.push(device);
    r.versions.push(version);
    r.fingerprints.push(fingerprint);
  }

  /** Sends the requests of {@link watch} made since the last flush. */
  flush(): void {
    this.lastActive = performance.now();
    for (const requests of this.requests.values()) this.post({ type: 'watch', requests });
    this.requests.clear();
  }

  /** Resolves once the worker's event loop has taken in every file event that happened before this call. */
  settle(): Promise<void> {
    const now = performance.now();
    if (now - this.lastActive > this.stretchGapMs) this.stretch++;
    this.lastActive = now;
    if (this.slots.size === 0) return Promise.resolve();
    const id = this.nextSettle++;
    return new Promise((resolve) => {
      this.settling.set(id, resolve);
      this.post({ type: 'settle', id });
    });
  }

  /** The worker's answer to {@link settle}. */
  settled(id: number): void {
    this.settling.get(id)?.();
    this.settling.delete(id);
  }
}

/** One store folder's watches: the folder itself, its `models/`, and the devices watched under them. */
interface RootWatch {
  /**
   * The folder's real path and inode when its watches were set: another later (a link moved, a folder above it
   * renamed and another put in its place) drops them all.
   */
  identity: string;
  watchers: FSWatcher[];
  /** Each watched device's slots, by thread. */
  devices: Map<string, Set<Watched>>;
}

interface Watched {
  thread: number;
  slot: number;
  generation: number;
  root: string;
  device: string;
  watcher: FSWatcher;
}

/** The worker's half: every thread's watches, on the worker's event loop. */
export class ModelWatches {
  private readonly boards: Int32Array[] = [];
  private readonly watched = new Map<string, Watched>();
  /** Store folders with their watches; null for a folder that cannot be watched (not local, not Linux). */
  private readonly roots = new Map<string, RootWatch | null>();
  private queue: { thread: number; request: WatchRequest }[] = [];
  private busy = false;
  private arming: NodeJS.Timeout | undefined;
  /** Set when the kernel refused a watch for want of watches: no more are asked of it. */
  private exhausted = false;
  /** The count last told to `counted`, and whether a count is due at the end of this turn. */
  private told = 0;
  private counting = false;

  constructor(
    private readonly warn: (message: string) => void,
    /** How long the worker is idle before watches are set (default {@link ARM_IDLE_MS}). */
    private readonly idleMs = ARM_IDLE_MS,
    /** Gets the number of devices watched (all threads) when it changed, once a turn at most. */
    private readonly counted?: (devices: number) => void,
  ) {}

  /** The board shared with thread `thread` (a new one when a thread is started again): its slots' states. */
  board(thread: number, slots = WATCH_SLOTS): SharedArrayBuffer {
    for (const w of [...this.watched.values()]) if (w.thread === thread) this.drop(w);
    this.queue = this.queue.filter((q) => q.thread !== thread);
    const buffer = new SharedArrayBuffer(slots * Int32Array.BYTES_PER_ELEMENT);
    this.boards[thread] = new Int32Array(buffer);
    return buffer;
  }

  /** Whether any thread scores a shard: watches are set only while none does, so as not to take its core. */
  setBusy(busy: boolean): void {
    this.busy = busy;
    clearTimeout(this.arming);
    this.arming = undefined;
    this.armSoon(this.idleMs);
  }

  /** Handles a message of thread `thread`; `answer` gets the answer to a `settle`. */
  handle(thread: number, msg: WatchMessage, answer: (id: number) => void): void {
    if (msg.type === 'watch') {
      const { root, slots, generations, devices, versions, fingerprints } = msg.requests;
      for (let i = 0; i < slots.length; i++) {
        const request = {
          slot: slots[i]!,
          generation: generations[i]!,
          root,
          device: devices[i]!,
          version: versions[i]!,
          fingerprint: fingerprints[i]!,
        };
        this.queue.push({ thread, request });
      }
      this.armSoon(this.idleMs);
    } else if (msg.type === 'unwatch') {
      // A request of the slot still queued is of an older generation than the slot's: arm skips it.
      const w = this.watched.get(`${thread}/${msg.slot}`);
      if (w) this.drop(w);
    } else {
      for (const [root, watch] of this.roots) if (watch && identityOf(root) !== watch.identity) this.dropRoot(root);
      // Two turns: the second's poll reads every event the kernel queued before the thread asked.
      setImmediate(() => setImmediate(() => answer(msg.id)));
    }
  }

  /** Ends every watch. */
  close(): void {
    clearTimeout(this.arming);
    for (const root of [...this.roots.keys()]) this.dropRoot(root);
    this.queue = [];
  }

  /** Sets the queued watches, a batch a turn, once the worker has been idle `ms`; stops when a shard starts. */
  private armSoon(ms: number): void {
    if (this.busy || this.queue.length === 0 || this.arming) return;
    this.arming = setTimeout(() => {
      this.arming = undefined;
      if (this.busy) return;
      for (const { thread, request } of this.queue.splice(0, ARM_BATCH)) {
        try {
          this.arm(thread, request);
        } catch (err) {
          // Never the worker's end: the device stays checked by stat.
          this.warn(`watching the model files of ${request.device} failed: ${(err as Error).message}`);
        }
      }
      this.armSoon(0);
    }, ms);
    this.arming.unref();
  }

  private arm(thread: number, r: WatchRequest): void {
    const board = this.boards[thread];
    // The slot given to another device (or asked for again) since: nothing to set.
    if (!board || Atomics.load(board, r.slot) >>> STATE_BITS !== r.generation) return;
    const set = (state: number) => {
      if (Atomics.load(board, r.slot) >>> STATE_BITS === r.generation)
        Atomics.store(board, r.slot, (r.generation << STATE_BITS) | state);
    };
    const root = this.exhausted ? undefined : this.rootWatch(r.root);
    // The version folder itself, not a link to one: a link moved in the device's folder raises no event here
    // (a device's folder, link or not, moved or removed does, in models/).
    // Without modelDir's trailing separator, which would have lstat follow a link.
    const versionDir = join(r.root, keys.modelDir(r.device, r.version).slice(0, -1));
    const files = [join(versionDir, 'model.json'), join(versionDir, 'model.onnx')];
    if (!root || !isRealDir(versionDir)) return set(REFUSED);
    const key = `${thread}/${r.slot}`;
    const old = this.watched.get(key);
    if (old) this.drop(old);
    let watcher: FSWatcher;
    try {
      watcher = watch(versionDir, { persistent: false });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
        this.exhausted = true;
        this.warn(
          `the kernel allows no more file watches (fs.inotify.max_user_watches): ${this.watched.size} model ` +
            'folders are watched, the other devices are checked with a stat per model file each run',
        );
      }
      return set(REFUSED);
    }
    const w: Watched = { thread, slot: r.slot, generation: r.generation, root: r.root, device: r.device, watcher };
    watcher.on('change', () => this.changed(w));
    watcher.on('error', () => this.changed(w));
    this.watched.set(key, w);
    this.count();
    let devices = root.devices.get(r.device);
    if (!devices) root.devices.set(r.device, (devices = new Set()));
    devices.add(w);
    // Looked at after the watch was set: a change between the thread's look and this one shows here.
    const prints = files.map((f) => soleFile(f));
    if (prints.some((p) => p === undefined)) {
      this.drop(w);
      return set(REFUSED);
    }
    if (fingerprintOf(prints) !== r.fingerprint) return this.changed(w);
    set(ARMED);
  }

  /** Marks a watched device changed, and ends its watch (the thread asks again once it found the files again). */
  private changed(w: Watched): void {
    this.drop(w);
    const board = this.boards[w.thread];
    if (board && Atomics.load(board, w.slot) >>> STATE_BITS === w.generation)
      Atomics.store(board, w.slot, (w.generation << STATE_BITS) | DIRTY);
  }

  private drop(w: Watched): void {
    w.watcher.close();
    const key = `${w.thread}/${w.slot}`;
    if (this.watched.get(key) === w) this.watched.delete(key);
    this.count();
    const root = this.roots.get(w.root);
    const devices = root?.devices.get(w.device);
    devices?.delete(w);
    if (devices?.size === 0) root!.devices.delete(w.device);
  }

  /** The watches of a store folder and its `models/`, set once; undefined where it cannot be watched. */
  private rootWatch(root: string): RootWatch | undefined {
    const known = this.roots.get(root);
    if (known !== undefined) return known ?? undefined;
    let folder: RootWatch | null = null;
    try {
      if (process.platform === 'linux' && LOCAL_FILE_SYSTEMS.has(statfsSync(root).type)) {
        const identity = identityOf(root);
        if (identity === undefined) throw new Error('gone');
        const all = () => this.dropRoot(root);
        const onDevice = (name: string | Buffer | null) => {
          // models/ itself moved or removed (its own events carry its name), or events lost: every device.
          if (name === null || String(name) === 'models') return all();
          for (const w of [...(this.roots.get(root)?.devices.get(String(name)) ?? [])]) this.changed(w);
        };
        const watchers: FSWatcher[] = [];
        folder = { identity, watchers, devices: new Map() };
        // The folder: its models/ renamed, removed or replaced, or the folder itself moved or removed (its own
        // events carry its name). models/: a device's folder renamed or removed.
        const self = basename(root);
        const onRoot = (name: string | Buffer | null) =>
          name === null || String(name) === 'models' || String(name) === self ? all() : undefined;
        for (const [dir, onEvent] of [
          [root, onRoot],
          [`${root}/models`, onDevice],
        ] as const) {
          const w = watch(dir, { persistent: false }, (_, name) => onEvent(name));
          w.on('error', all);
          watchers.push(w);
        }
      }
    } catch {
      // No models/ yet, or no watch to be had: checked by stat.
      if (folder) for (const w of folder.watchers) w.close();
      folder = null;
    }
    this.roots.set(root, folder);
    return folder ?? undefined;
  }

  /** Tells `counted` the number of devices watched at the end of this turn, if it changed. */
  private count(): void {
    if (!this.counted || this.counting) return;
    this.counting = true;
    setImmediate(() => {
      this.counting = false;
      if (this.watched.size !== this.told) this.counted?.((this.told = this.watched.size));
    }).unref();
  }

  /** Marks every device of a store folder changed and ends its watches (set again when next asked for). */
  private dropRoot(root: string): void {
    const watch = this.roots.get(root);
    this.roots.delete(root);
    if (!watch) return;
    for (const w of watch.watchers) w.close();
    for (const devices of watch.devices.values()) for (const w of [...devices]) this.changed(w);
  }
}

/** The folder's real path and inode; undefined when it is gone. */
function identityOf(path: string): string | undefined {
  try {
    const real = realpathSync.native(path);
    return `${real}:${lstatSync(real).ino}`;
  } catch {
    return undefined;
  }
}

function isRealDir(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** A regular file's print, undefined for a link of either kind or anything else. */
function soleFile(path: string): string | undefined {
  let s: Stats;
  try {
    s = lstatSync(path);
  } catch {
    return undefined;
  }
  if (!s.isFile() || s.nlink !== 1) return undefined;
  return print({ key: basename(path), size: s.size, lastModified: s.mtime });
}
