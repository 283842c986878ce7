/**
 * Pruning run folders. Every run of a window writes its own `predictions/window=W/run=<runId>/` and
 * `logs/window=W/run=<runId>/` folders, and readers read only the run the window's manifest names. The folders of
 * the other runs (superseded by a later commit, or failed, cancelled or terminated before committing) are never
 * read again; this deletes them once that is safe.
 *
 * The rule: a run folder is deleted only when
 * 1. the window's manifest does not name its run (the committed run's folders are never touched),
 * 2. nothing in it (predictions or logs) was written within the grace period: a run writes its plan, its shards'
 *    files and each attempt's log as it goes, so a folder untouched for longer than any run goes without writing
 *    belongs to no run that is still running (and to no run that may still commit), and
 * 3. the manifest was not written within the grace period either: a reader that read the manifest before it was
 *    replaced may still be reading the files of the run it named.
 */
import { forEachLimited } from '../shared/concurrency';
import { keys, runFolderOf } from '../shared/keys';
import type { ObjectStore, StoredObject } from '../store/object-store';
import { parseWindow } from '../shared/window';
import { readManifest } from './manifest';
import { messageOf } from '../shared/errors';
import { appendTo } from '../shared/multimap';

/** What pruning decided about one run folder. */
export interface RunFolder {
  window: string;
  runId: string;
  /** Whether the window's manifest names this run. */
  committed: boolean;
  /** Objects in the folder (predictions and logs) and their bytes. */
  objects: number;
  bytes: number;
  /** Last-modified time of the newest object in the folder, ISO. */
  newest: string;
  /** Whether the rule lets it go. */
  action: 'keep' | 'delete';
  /** Why it is kept or deleted, for the operator. */
  reason: string;
  /** Objects the rule deletes: all of them, or with `keepLogs` all but the logs; 0 when kept. */
  toDelete: number;
  /** Objects deleted: `toDelete` after a prune that went well, 0 on a dry run. */
  deleted: number;
  /** Why deleting failed part way (the next prune picks the rest up). */
  error?: string;
}

/** Options of `pruneRuns`. */
export interface PruneOptions {
  /** Window ids to prune; every window with run folders in the store when undefined. */
  windows?: readonly string[];
  /** Only windows (of any length) that start in `[fromMs, toMs)`. */
  range?: { fromMs: number; toMs: number };
  /** The grace period: folders (and manifests) written more recently than this are kept. */
  olderThanMs: number;
  /** Delete only the predictions folders, keeping every run's logs. */
  keepLogs?: boolean;
  /** Decide and report, delete nothing. */
  dryRun?: boolean;
  /** The time ages are measured at (epoch ms); the clock by default. */
  now?: number;
}

/** Listings and deletes in flight at once: S3 lists one window's prefix and deletes one object per request. */
const LIST_CONCURRENCY = 8;
const DELETE_CONCURRENCY = 16;

/**
 * Decides, by the rule above, which run folders of the windows go, deletes them (unless `dryRun`) and returns every
 * run folder found, kept or not, by window and run id. All windows are decided before anything is deleted, so an
 * unreadable manifest stops the prune with nothing deleted.
 */
export async function pruneRuns(store: ObjectStore, options: PruneOptions): Promise<RunFolder[]> {
  const now = options.now ?? Date.now();
  const planned: { folder: RunFolder; objects: StoredObject[] }[] = [];
  for (const [window, listing] of await listRunFolders(store, options.windows)) {
    if (options.range && !startsIn(window, options.range)) continue;
    const manifest = await readManifest(store, window);
    // Also the commit's own time, and now for a manifest the listing missed: one that a commit racing this prune
    // wrote after the listing is new, whatever the listing says.
    const manifestWritten =
      manifest && Math.max(listing.manifest?.lastModified.getTime() ?? now, Date.parse(manifest.committedAt) || 0);
    for (const [runId, objects] of [...listing.runs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const newest = objects.reduce((max, o) => Math.max(max, o.lastModified.getTime()), 0);
      const committed = manifest?.runId === runId;
      const folder: RunFolder = {
        window,
        runId,
        committed,
        objects: objects.length,
        bytes: objects.reduce((sum, o) => sum + o.size, 0),
        newest: new Date(newest).toISOString(),
        action: 'keep',
        reason: '',
        toDelete: 0,
        deleted: 0,
      };
      if (committed) {
        folder.reason = 'the committed run: the manifest names it';
      } else if (now - newest < options.olderThanMs) {
        folder.reason = `written ${age(now - newest)} ago, within the grace period: its run may still be running`;
      } else if (manifestWritten !== undefined && now - manifestWritten < options.olderThanMs) {
        folder.reason =
          `the manifest was written ${age(now - manifestWritten)} ago, within the grace period: ` +
          'a reader of the manifest it replaced may still read these files';
      } else {
        folder.action = 'delete';
        folder.reason = manifest
          ? `not the committed run (the manifest names run ${manifest.runId}): superseded, failed or cancelled`
          : 'the window has no manifest: the run failed or was cancelled before committing';
      }
      const logs = keys.runLogsPrefix(window, runId);
      const doomed = options.keepLogs ? objects.filter((o) => !o.key.startsWith(logs)) : objects;
      if (folder.action === 'delete' && doomed.length === 0) {
        folder.action = 'keep';
        folder.reason = 'only its logs are left, and they are kept';
      }
      if (folder.action === 'delete') folder.toDelete = doomed.length;
      planned.push({ folder, objects: doomed });
    }
  }
  if (!options.dryRun) {
    for (const { folder, objects } of planned) {
      if (folder.action === 'delete') await deleteFolder(store, folder, objects);
    }
  }
  return planned.map((p) => p.folder);
}

/** A window's run folders (objects by run id) and its manifest object, from one listing per area. */
interface WindowListing {
  manifest?: StoredObject;
  runs: Map<string, StoredObject[]>;
}

/**
 * Lists the predictions and logs of `windows` (or all of them) and groups the objects by window and run, windows
 * sorted. Folders whose names fleetscore could not have written (not a window, not a run id) are not its own and
 * are left out.
 */
async function listRunFolders(
  store: ObjectStore,
  windows: readonly string[] | undefined,
): Promise<Map<string, WindowListing>> {
  const prefixes = windows
    ? windows.flatMap((w) => [keys.predictionsPrefix(w), keys.logsPrefix(w)])
    : [keys.predictionsRoot(), keys.logsRoot()];
  const objects: StoredObject[] = [];
  await forEachLimited(prefixes, LIST_CONCURRENCY, async (prefix) => {
    for (const o of await store.listObjects(prefix)) objects.push(o);
  });
  const byKey = new Map(objects.map((o) => [o.key, o]));
  const byWindow = new Map<string, WindowListing>();
  for (const o of objects) {
    const folder = runFolderOf(o.key);
    if (!folder || !isRunFolder(folder.window, folder.runId)) continue;
    const listing = byWindow.get(folder.window) ?? { runs: new Map<string, StoredObject[]>() };
    listing.manifest = byKey.get(keys.manifest(folder.window));
    appendTo(listing.runs, folder.runId, o);
    byWindow.set(folder.window, listing);
  }
  return new Map([...byWindow].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Whether a (listed, valid) window starts in the range. */
function startsIn(window: string, { fromMs, toMs }: { fromMs: number; toMs: number }): boolean {
  const { startMs } = parseWindow(window);
  return startMs >= fromMs && startMs < toMs;
}

/** Whether a listed window and run id are ones fleetscore writes (the key builders accept them). */
function isRunFolder(window: string, runId: string): boolean {
  try {
    parseWindow(window);
    keys.runPrefix(window, runId);
    return true;
  } catch {
    // Not a window id or not a safe run id: someone else's folder, never ours to delete.
    return false;
  }
}

/**
 * Deletes the folder's objects, after checking that the manifest still names another run: a commit since the
 * decision (which the grace period makes all but impossible) keeps the folder.
 */
async function deleteFolder(store: ObjectStore, folder: RunFolder, objects: readonly StoredObject[]): Promise<void> {
  try {
    if ((await readManifest(store, folder.window))?.runId === folder.runId) {
      Object.assign(folder, {
        action: 'keep',
        reason: 'committed while pruning: the manifest now names it',
        toDelete: 0,
      });
      return;
    }
    await forEachLimited(objects, DELETE_CONCURRENCY, async (o) => {
      await store.delete(o.key);
      folder.deleted += 1;
    });
  } catch (err) {
    folder.error = messageOf(err);
  }
}

/** A short age: `3d4h`, `2h15m`, `40s`. */
function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const [d, h, m] = [Math.floor(s / 86_400), Math.floor((s % 86_400) / 3600), Math.floor((s % 3600) / 60)];
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  return m > 0 ? `${m}m${s % 60}s` : `${s}s`;
}
