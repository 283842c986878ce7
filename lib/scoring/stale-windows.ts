/**
 * Late data: a committed window whose input changed after its run read it. The manifest records every part the run
 * read (key, size, ETag or modification time); comparing that with the window's input folders now finds parts
 * added, replaced or removed since. What `fleetscore runs stale` lists, `runs rescore --stale` scores again, and a
 * schedule with `rescoreLateWithin` re-scores on its own.
 */
import { listWindowInput } from '../arrow/window-input';
import type { ModelIndex } from '../models/model-meta';
import { parseWindow, windowIdOf } from '../shared/window';
import type { ObjectStore } from '../store/object-store';
import { inputPart, listCommittedWindows, readManifest, type InputPart, type Manifest } from './manifest';

const HOUR_MS = 3_600_000;

/** A committed window and how its input differs from what its run read. */
export interface StaleWindow {
  window: string;
  /** The run whose commit stands (its workflow and run id), its schedule, and when it committed. */
  workflowId: string;
  runId: string;
  scheduleId?: string;
  committedAt: string;
  added: string[];
  replaced: string[];
  removed: string[];
}

/** What a look for late data found in a range. */
export interface StaleReport {
  stale: StaleWindow[];
  /** Committed windows whose manifest does not record its input (runs from before it was recorded). */
  unknown: string[];
  /** Committed windows looked at. */
  checked: number;
}

/** The committed windows (of any length) that start in `[fromMs, toMs)`, every one when no range is given. */
export async function committedWindowsIn(
  store: ObjectStore,
  range?: { fromMs: number; toMs: number },
): Promise<string[]> {
  return (await listCommittedWindows(store)).filter((w) => {
    if (!range) return true;
    const { startMs } = parseWindow(w);
    return startMs >= range.fromMs && startMs < range.toMs;
  });
}

/** The committed windows in the range whose input changed since their run read it. */
export async function findStaleWindows(
  store: ObjectStore,
  range?: { fromMs: number; toMs: number },
): Promise<StaleReport> {
  return checkWindows(store, await committedWindowsIn(store, range));
}

/**
 * The windows of `hours` hours that start in `[fromMs, toMs)`, newest first, counted back from `toMs` (a window
 * start): the ones a scheduled run looks at for late data, named without listing the store.
 */
export function windowsBefore(fromMs: number, toMs: number, hours: number): string[] {
  const out: string[] = [];
  for (let t = toMs - hours * HOUR_MS; t >= fromMs; t -= hours * HOUR_MS) out.push(windowIdOf(t, hours));
  return out;
}

/** Of `windows`, the committed ones whose input changed since their run read it; uncommitted ones are skipped. */
export async function checkWindows(store: ObjectStore, windows: readonly string[]): Promise<StaleReport> {
  const report: StaleReport = { stale: [], unknown: [], checked: 0 };
  for (const window of windows) {
    const manifest = await readManifest(store, window);
    if (!manifest) continue;
    report.checked += 1;
    if (!manifest.input) {
      report.unknown.push(window);
      continue;
    }
    const now = (await listWindowInput(store, parseWindow(window))).parts.map(inputPart);
    const diff = compareInput(manifest.input.parts, now);
    if (diff.added.length + diff.replaced.length + diff.removed.length > 0)
      report.stale.push({ ...head(manifest), ...diff });
  }
  return report;
}

/**
 * What changed since the committed run of `manifest` read its window, one phrase each: its input (parts added,
 * replaced or removed, or not recorded by the manifest) and the models `index` pins now (devices registered at
 * another version, added or removed). Empty when the commit stands for the window as it is now, so scoring it again
 * would write the same predictions.
 */
export async function changesSinceCommit(store: ObjectStore, manifest: Manifest, index: ModelIndex): Promise<string[]> {
  const changes: string[] = [];
  if (manifest.input) {
    const now = (await listWindowInput(store, parseWindow(manifest.window))).parts.map(inputPart);
    const { added, replaced, removed } = compareInput(manifest.input.parts, now);
    const parts = counted('part', [added.length, 'added'], [replaced.length, 'replaced'], [removed.length, 'removed']);
    if (parts) changes.push(`its input changed since (${parts})`);
  } else changes.push('its manifest does not record the input it read');
  let other = 0;
  let added = 0;
  for (const [device, entry] of Object.entries(index.devices)) {
    const scored = manifest.devices[device];
    if (!scored) added++;
    else if (scored.version !== undefined && scored.version !== entry.version) other++;
  }
  const removed = Object.keys(manifest.devices).filter((d) => !Object.hasOwn(index.devices, d)).length;
  const models = counted('device', [other, 'at another version'], [added, 'added'], [removed, 'removed']);
  if (models) changes.push(`its models changed since (${models})`);
  return changes;
}

/** `2 parts added, 1 part removed` from counts of `noun`s, leaving out zeros; empty when every count is zero. */
function counted(noun: string, ...counts: [number, string][]): string {
  return counts
    .filter(([n]) => n > 0)
    .map(([n, what]) => `${n} ${noun}${n === 1 ? '' : 's'} ${what}`)
    .join(', ');
}

function head(m: Manifest): Omit<StaleWindow, 'added' | 'replaced' | 'removed'> {
  return {
    window: m.window,
    workflowId: m.workflowId,
    runId: m.runId,
    ...(m.scheduleId ? { scheduleId: m.scheduleId } : {}),
    committedAt: m.committedAt,
  };
}

/** Parts added, replaced (other size, ETag or modification time) and removed between two listings, by key. */
export function compareInput(
  read: readonly InputPart[],
  now: readonly InputPart[],
): Pick<StaleWindow, 'added' | 'replaced' | 'removed'> {
  const before = new Map(read.map((p) => [p.key, p]));
  const after = new Map(now.map((p) => [p.key, p]));
  const changed = (a: InputPart, b: InputPart) =>
    a.size !== b.size ||
    (a.etag !== undefined && b.etag !== undefined ? a.etag !== b.etag : a.lastModified !== b.lastModified);
  return {
    added: [...after.keys()].filter((k) => !before.has(k)),
    replaced: [...after.values()].filter((p) => before.has(p.key) && changed(before.get(p.key)!, p)).map((p) => p.key),
    removed: [...before.keys()].filter((k) => !after.has(k)),
  };
}
