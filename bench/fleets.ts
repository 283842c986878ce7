/**
 * The benchmark's fleets, one per model family: the demo's Mahalanobis fleet is seeded in TypeScript; every other
 * family is trained per device and exported by bench/make_fleet.py in the bench's Python venv, and cached under
 * .cache/bench/fleets/ keyed by its parameters (generation is resumable: a stopped one continues where it was).
 */
import { execFile } from 'node:child_process';
import { childOfBench } from './stop-with-bench';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { seedDemoFleet } from '../lib/demo/demo-fleet';
import { LocalStore } from '../lib/store/local-store';
import type { Window } from '../lib/shared/window';

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
] as const;

/** A benchmark family. */
export type Family = (typeof FAMILIES)[number];

/** Features per device in every family's fleet. */
export const BENCH_FEATURES = 7;

/** Where a family's fleet is, ready to score: a store folder and, for the peer, the folder of its pickles. */
export interface BenchFleet {
  store: string;
  /** The peer's per-device pickles; undefined for Mahalanobis, whose peer pickles from the store itself. */
  pickles?: string;
  /** Trees per forest (isolation forest only). */
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
  store = join(work, 'store'),
): Promise<BenchFleet> {
  if (family === 'mahalanobis') {
    const started = performance.now();
    await seedDemoFleet(new LocalStore(store), {
      devices,
      sensors: BENCH_FEATURES,
      hours: 1,
      endMs: window.endMs,
    });
    return { store, generatedS: (performance.now() - started) / 1000 };
  }
  const forest = family === 'isolation-forest';
  const name = `${family}-d${devices}${forest ? `-t${trees}` : ''}-k${BENCH_FEATURES}-s1-g${GENERATOR[family] ?? 1}-${window.id}`;
  const fleet = join(ROOT, '.cache', 'bench', 'fleets', name);
  let generatedS = 0;
  if (!existsSync(join(fleet, 'fleet.json'))) {
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
  mkdirSync(store, { recursive: true });
  symlinkSync(join(fleet, 'store', 'models'), join(store, 'models'));
  symlinkSync(join(fleet, 'store', 'aggregates'), join(store, 'aggregates'));
  return { store, pickles: join(fleet, 'peer'), trees: forest ? trees : undefined, generatedS };
}
