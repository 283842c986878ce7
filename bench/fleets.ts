/**
 * The benchmark's fleets, one per model family: the demo's Mahalanobis fleet is seeded in TypeScript; every other
 * family is trained per device and exported by bench/make_fleet.py in the bench's Python venv, and cached under
 * .cache/bench/fleets/ keyed by its parameters (generation is resumable: a stopped one continues where it was).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, statfsSync, statSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { seedDemoFleet } from '../lib/demo/demo-fleet';
import { LocalStore } from '../lib/store/local-store';
import type { Window } from '../lib/shared/window';
import { childOfBench } from './stop-with-bench';

const ROOT = resolve(__dirname, '..');
const exec = promisify(execFile);

/** The families `npm run bench -- --families` takes. */
export const FAMILIES = [
  'mahalanobis',
  'ocsvm-rbf',
  'ocsvm-poly',
  'isolation-forest',
  'pca-reconstruction',
  'autoencoder',
  'lof',
  'rf-classifier',
] as const;

/** A benchmark family. */
export type Family = (typeof FAMILIES)[number];

/** Features per device in every family's fleet. */
export const BENCH_FEATURES = 7;

/** Where a family's fleet is, ready to score: a store folder and, for the peer, the folder of its pickles. */
/** How the bench's windows of aggregates are written: Arrow IPC files, or Parquet as pyarrow writes it by default. */
export type InputFormat = 'arrow' | 'parquet';

/**
 * Writes the window whose parts are in `source` into `store` as `to` windows (the same window, or the next hours'
 * with every timestamp moved), in `format` (bench/next_windows.py).
 */
export async function writeWindow(
  python: string,
  source: string,
  window: Window,
  store: string,
  format: InputFormat,
  to: readonly string[] = [window.id],
): Promise<void> {
  const args = ['bench/next_windows.py', '--source', source, '--window', window.id];
  args.push('--aggregates', join(store, 'aggregates'), '--to', to.join(','), '--format', format);
  await exec(python, args, { cwd: ROOT });
}

export interface BenchFleet {
  store: string;
  /** The peer's per-device pickles; undefined for Mahalanobis, whose peer pickles from the store itself. */
  pickles?: string;
  /** Trees per forest (isolation forest and random forest classifier only). */
  trees?: number;
  /** Seconds spent generating it now (0 when it came from the cache). */
  generatedS: number;
}

/**
 * Per family, bumped with bench/make_fleet.py's GENERATOR, so a change to what a fleet holds makes new ones
 * (forests: 2 since bench/forest_onnx.py writes them instead of skl2onnx; same graph, another node order;
 * autoencoders: 2 since they are trained many at a time, which may round differently).
 */
const GENERATOR: Partial<Record<Family, number>> = { 'isolation-forest': 2, autoencoder: 2 };

/** The files under `dir` (recursively) with their sizes; none when it does not exist. */
export function filesUnder(dir: string): { path: string; size: number }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true }).flatMap((entry) => {
    if (!entry.isFile()) return [];
    const path = join(entry.parentPath, entry.name);
    return [{ path, size: statSync(path).size }];
  });
}

/**
 * Bytes a generated fleet takes on disk (its store and the peer's pickles), per device: about 19 KB a tree for an
 * isolation forest (1.9 GB for 1,000 100-tree forests, 48 GB for 100,000 of 25 trees), 1.3 KB a tree for a random
 * forest classifier (36 KB of ONNX and 89 KB of pickle for 100 trees, 2026-12-05), LOF_BYTES for a local outlier factor
 * (which holds its 240 training rows twice: in its ONNX and in its pickle) and 25 KB for the other families (23 to
 * 24 KB measured), as cached on 2026-12-04.
 */
function fleetBytes(family: Family, devices: number, trees: number): number {
  const perTree = family === 'isolation-forest' ? 19_500 : family === 'rf-classifier' ? RF_CLASSIFIER_TREE_BYTES : 0;
  return devices * (perTree > 0 ? perTree * trees : family === 'lof' ? LOF_BYTES : 25_000);
}

/** The families whose fleets are forests of `--trees` trees. */
const TREE_FAMILIES: ReadonlySet<Family> = new Set(['isolation-forest', 'rf-classifier']);

const LOF_BYTES = 110_000;
const RF_CLASSIFIER_TREE_BYTES = 1_300;

/** Disk space a fleet's generation leaves free: the worker, its saved programs and the dev server need room too. */
const DISK_SPARE_BYTES = 4 * 2 ** 30;

/**
 * Refuses to generate a fleet the disk cannot hold (with the part already generated counted as written): on
 * 2026-12-04 `--families isolation-forest --sizes 1000,10000` started a 10,000-forest fleet (about 20 GB) with 16 GB
 * free, and filled the disk.
 */
function checkRoomFor(fleet: string, family: Family, devices: number, trees: number): void {
  const done = filesUnder(fleet).reduce((n, f) => n + f.size, 0);
  const need = Math.max(0, fleetBytes(family, devices, trees) - done);
  mkdirSync(dirname(fleet), { recursive: true });
  const { bavail, bsize } = statfsSync(dirname(fleet));
  const free = bavail * bsize;
  if (need + DISK_SPARE_BYTES <= free) return;
  const gb = (n: number) => `${(n / 2 ** 30).toFixed(1)} GB`;
  throw new Error(
    `bench: generating ${family} at ${devices} devices needs about ${gb(need)} more on disk and ${gb(free)} are free ` +
      `in ${dirname(fleet)} (keeping ${gb(DISK_SPARE_BYTES)} spare); free space (old fleets there can go), or ask for ` +
      'fewer --sizes or --trees',
  );
}

/**
 * A fresh store folder under `work` for `family` at `devices` devices: models and aggregates are the cached
 * fleet's (linked, not copied: a 10,000-forest fleet is gigabytes), predictions and logs go to `work`.
 */
export async function benchFleet(
  family: Family,
  devices: number,
  trees: number,
  window: Window,
  work: string,
  python: string,
  procs: number,
  inputFormat: InputFormat,
  store = join(work, 'store'),
): Promise<BenchFleet> {
  const windowDir = `window=${window.id}`;
  if (family === 'mahalanobis') {
    const started = performance.now();
    await seedDemoFleet(new LocalStore(store), {
      devices,
      sensors: BENCH_FEATURES,
      hours: 1,
      endMs: window.endMs,
    });
    if (inputFormat === 'parquet') {
      const seeded = join(work, 'seeded-window');
      renameSync(join(store, 'aggregates', windowDir), seeded);
      await writeWindow(python, seeded, window, store, 'parquet');
    }
    return { store, generatedS: (performance.now() - started) / 1000 };
  }
  const forest = TREE_FAMILIES.has(family);
  const name = `${family}-d${devices}${forest ? `-t${trees}` : ''}-k${BENCH_FEATURES}-s1-g${GENERATOR[family] ?? 1}-${window.id}`;
  const fleet = join(ROOT, '.cache', 'bench', 'fleets', name);
  let generatedS = 0;
  if (!existsSync(join(fleet, 'fleet.json'))) {
    checkRoomFor(fleet, family, devices, forest ? trees : 0);
    process.stderr.write(`bench: generating ${name} (cached for later runs; resumable)\n`);
    const started = performance.now();
    const args = ['bench/make_fleet.py', '--family', family, '--devices', String(devices), '--trees', String(trees)];
    args.push('--out', fleet, '--window-start-ms', String(window.startMs), '--window-id', window.id);
    args.push('--procs', String(procs));
    const child = exec(python, args, { cwd: ROOT, maxBuffer: 1 << 26 });
    childOfBench(child.child);
    child.child.stderr?.on('data', (chunk: Buffer) => {
      const last = chunk.toString().trim().split('\n').pop();
      if (last) process.stderr.write(`\r${last}    `);
    });
    await child;
    process.stderr.write('\n');
    generatedS = (performance.now() - started) / 1000;
  }
  mkdirSync(join(store, 'aggregates'), { recursive: true });
  symlinkSync(join(fleet, 'store', 'models'), join(store, 'models'));
  // The window itself is linked (written as Parquet for that input); the warm runs' next windows are written beside
  // it (bench/next_windows.py).
  const fleetWindow = join(fleet, 'store', 'aggregates', windowDir);
  if (inputFormat === 'parquet') await writeWindow(python, fleetWindow, window, store, 'parquet');
  else symlinkSync(fleetWindow, join(store, 'aggregates', windowDir));
  return { store, pickles: join(fleet, 'peer'), trees: forest ? trees : undefined, generatedS };
}
