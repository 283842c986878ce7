/**
 * `npm run bench`: one hourly run's cost per model family and fleet size (devices x 60 rows x 7 features), side
 * by side: the limit (fleetscore's scoring kernel over in-memory rows), the usual per-device Python loop (peer)
 * over the same models, and fleetscore through the real Temporal dev server, a worker process and the local
 * store: cold (a fresh worker on a host that has compiled nothing; the median of `--cold-repeats` such workers),
 * warm (the median of its next `--repeats` runs, each of the next hour's window: its models warm, its parts
 * unread) and restart (a fresh worker on the same host, with the programs the first saved and, on S3, the model
 * files it kept). The peer is the median of `--repeats` runs too. With `--store s3` the worker reads and writes a
 * bucket of a local MinIO server (the fleet uploaded first) instead of the local folder; the limit and the peer
 * read the folder either way.
 * Prints a table and writes bench/results/latest.json.
 *
 * Usage: npm run bench -- [--families mahalanobis,ocsvm-rbf,...] [--sizes 1000,10000,100000] [--shard-size 500]
 *   [--max-parallel-shards 8] [--trees 100] [--trees-at-100k 25] [--procs 2] [--unstacked-max 10000]
 *   [--repeats 3] [--cold-repeats 1] [--worker-cpu-prof DIR] [--shard-threads N] [--input-format arrow|parquet]
 *   [--store local|s3]
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { temporal } from '@temporalio/proto';
import { connectClient, temporalTarget } from '../lib/temporal/connection';
import { startDevServer } from '../lib/temporal/dev-server';
import { startRun } from '../lib/temporal/runs';
import { RUN_DEFAULTS } from '../lib/shared/run-types';
import { HOUR_MS, windowAt } from '../lib/shared/window';
import { formatTable } from '../cli/utils/table';
import { copyObjects } from '../lib/store/copy-objects';
import { LocalStore } from '../lib/store/local-store';
import { openStore } from '../lib/store/open-store';
import { READ_AHEAD_MESSAGE } from '../activities';
import { orchestration, type Interval } from './orchestration';
import { benchFleet, FAMILIES, filesUnder, writeWindow, type Family, type InputFormat } from './fleets';
import { measureOtherLoad } from './other-load';
import { ensurePeerPython } from './peer-python';
import { childOfBench, serverOfBench } from './stop-with-bench';
import { freePort } from '../test/support/free-port';
import { startS3Server, type S3TestServer } from '../test/support/s3-server';

const ROOT = resolve(__dirname, '..');
const END_MS = Date.UTC(2026, 10, 21, 12);
const exec = promisify(execFile);
/** Cores used by other processes during a row above which the bench says the row is not comparable. */
const OTHER_LOAD_WARN = 0.1;
/**
 * The peer runs once more after fleetscore's runs when its median took less than this: a peer as fast or slow
 * after as before says the machine kept its speed while the row ran. (This VM's speed moved by a third within half
 * an hour on 2026-12-06, with nothing else running in it: the same warm run took 0.97 s and then 1.65 s.)
 */
const PEER_AGAIN_MAX_S = 60;
/** How far the peer after fleetscore's runs may be from its median before it, as a fraction, without a warning. */
const PEER_DRIFT_WARN = 0.15;

interface Measured {
  rows: number;
  wall_s: number;
  rows_per_s: number;
  peak_rss_mb: number;
  /** Devices per fast path (the limit only). */
  paths?: Record<string, number>;
}

interface FleetscoreMeasured {
  /** The cold run of median wall among `cold_walls_s`. */
  cold: Measured;
  cold_walls_s: number[];
  /** The warm run of median wall among `warm_walls_s`. */
  warm: Measured;
  warm_walls_s: number[];
  /** A fresh worker after the first, reading the compiled programs it saved (only when asked for). */
  restart?: Measured;
  worker_peak_rss_mb: number;
  history_events: number;
  history_bytes: number;
  shards: number;
  orchestration_s: number;
  read_ahead_in_gaps_s: number;
}

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function limit(store: string, window: string): Promise<Measured> {
  const run = exec(process.execPath, ['--import', 'tsx', 'bench/limit.ts', store, window], {
    cwd: ROOT,
    maxBuffer: 1 << 24,
  });
  childOfBench(run.child);
  return JSON.parse((await run).stdout) as Measured;
}

/**
 * Reads every file under `dir` once, untimed, so that the next run finds them in the page cache: the peer its
 * pickles, as a cron job that reads the same files every hour does, and each fresh worker the store's model files.
 * The autoencoder's peer at 10,000 devices ran at 189k rows/s right after the page cache was dropped and at 300k to
 * 500k rows/s with its pickles cached (2026-12-02). A worker's models were read by the limit just before, but this
 * VM pages out files idle for a minute (DAMON reclaim), and a cold run read them back from disk at 50 µs a file
 * against 8 µs cached (2026-12-06): the autoencoder's cold at 10,000 devices took 3.40 s, and 2.98 to 3.13 s with
 * its files read first. Files larger than half the machine's memory are left alone (false): the run reads them
 * from disk, as it would on this machine. (Half the free memory, counted before 2026-12-03 21:25, put the 11 GB of
 * pickles of 10,000 100-tree forests on either side of the line from one run to the next, and their peer at 9 or
 * at 18 to 23 ms a device.)
 */
function readEveryFile(dir: string, what: string): boolean {
  const files = filesUnder(dir);
  const bytes = files.reduce((n, file) => n + file.size, 0);
  if (bytes > totalmem() / 2) {
    const gb = (n: number) => (n / 2 ** 30).toFixed(1);
    process.stderr.write(
      `bench: ${what} (${gb(bytes)} GB) are more than half the memory (${gb(totalmem())} GB): read from disk\n`,
    );
    return false;
  }
  for (const file of files) readFileSync(file.path);
  return true;
}

/** The peer's run of median wall among `repeats` (its pickles read once beforehand), and every run's wall. */
async function peer(
  python: string,
  store: string,
  window: string,
  work: string,
  repeats: number,
  pickles?: string,
): Promise<Measured & { pickles_cached: boolean; walls_s: number[] }> {
  const cached = pickles ? readEveryFile(pickles, "the peer's pickles") : true;
  const runs: Measured[] = [];
  for (let i = 0; i < repeats; i++) {
    const args = ['bench/peer.py', '--store', store, '--window', window, '--work', work];
    const run = exec(python, pickles ? [...args, '--pickles', pickles] : args, { cwd: ROOT, maxBuffer: 1 << 24 });
    childOfBench(run.child);
    runs.push(JSON.parse((await run).stdout) as Measured);
  }
  return { ...medianOf(runs, (r) => r.wall_s), pickles_cached: cached, walls_s: runs.map((r) => r.wall_s) };
}

/** The element of median `key` (the lower middle one of an even count). */
function medianOf<T>(items: readonly T[], key: (t: T) => number): T {
  return [...items].sort((a, b) => key(a) - key(b))[Math.floor((items.length - 1) / 2)]!;
}

/** Peak resident memory of a live process, from /proc (Linux). */
function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Resolves once the bytes of the files under `dir` stopped changing for two seconds (or after ten minutes). */
async function untilSettled(dir: string): Promise<void> {
  const bytes = () => {
    try {
      return filesUnder(dir).reduce((sum, f) => sum + f.size, 0);
    } catch {
      return -1; // a file renamed or swept between the listing and its stat: still changing
    }
  };
  let last = bytes();
  for (let stable = 0, waited = 0; stable < 4 && waited < 600_000; waited += 500) {
    await sleep(500);
    const now = bytes();
    stable = now === last ? stable + 1 : 0;
    last = now;
  }
}

/**
 * A listener for a worker's JSON log stream that passes on each read-ahead line's interval (its `startedAt` and
 * `ms`); lines split across chunks are joined first.
 */
function readAheadLines(found: (interval: Interval) => void): (chunk: Buffer) => void {
  let rest = '';
  return (chunk) => {
    const lines = (rest + chunk.toString()).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes(READ_AHEAD_MESSAGE)) continue;
      const entry = JSON.parse(line) as { message?: string; startedAt?: string; ms?: number };
      if (entry.message !== READ_AHEAD_MESSAGE || entry.startedAt === undefined || entry.ms === undefined) continue;
      const start = Date.parse(entry.startedAt);
      found([start, start + entry.ms]);
    }
  };
}

/**
 * Resolves once the child's stderr says `text`; then stops keeping its output (a worker at INFO logs every run), or
 * rejects with that output if it exits first.
 */
function waitForLine(child: ChildProcess, text: string): Promise<void> {
  return new Promise((done, fail) => {
    let seen = '';
    const exited = (code: number | null) => fail(new Error(`worker exited with ${code}: ${seen}`));
    const read = (chunk: Buffer) => {
      seen += chunk.toString();
      if (!seen.includes(text)) return;
      child.stderr?.off('data', read);
      child.off('exit', exited);
      done();
    };
    child.stderr?.on('data', read);
    child.once('exit', exited);
  });
}

/** Rows of each device in the bench's window. */
const ROWS_PER_DEVICE = 60;

/**
 * The pause before each warm run: 2 s, or 50 µs a device past 40,000 devices (the worker sets a watch in about
 * 35 µs, once it has been idle half a second).
 */
function warmPauseMs(devices: number): number {
  return Math.max(2_000, devices * 0.05);
}

async function fleetscore(
  store: string,
  window: string,
  work: string,
  shardSize: number,
  /** Shards a run has scheduled at once (a run's own default unless `--max-parallel-shards`). */
  maxParallelShards: number,
  batching: boolean,
  /** The windows the warm runs score, one each (the median is reported): windows the worker has not read. */
  warmWindows: readonly string[],
  /** Where the worker writes its V8 CPU profile (`--worker-cpu-prof DIR`), if anywhere. */
  profileDir?: string,
  /** The worker's `--shard-threads` (`--shard-threads N` here), when not its default. */
  shardThreads?: string,
  /** Measure a third run on a fresh worker that finds the first worker's saved programs. */
  restart = false,
  /** Fresh workers measured cold, each on a host that has compiled nothing (the median is reported). */
  coldRuns = 1,
  /** The folder on this machine that holds the store's model files: read before each fresh worker's first run. */
  modelFiles?: string,
): Promise<FleetscoreMeasured> {
  const server = serverOfBench(
    await startDevServer({
      dbFile: join(work, `temporal-${batching}.db`),
      port: await freePort(),
      uiPort: await freePort(),
    }),
  );
  // Empty at the first worker's start: its cold run compiles everything and reads every model from the store, as
  // on a new host.
  const programsDir = join(work, `programs-${batching}`);
  const modelFilesDir = join(work, `model-files-${batching}`);
  const env = {
    ...process.env,
    TEMPORAL_ADDRESS: server.address,
    // INFO for the planning worker's read-ahead line (see bench/orchestration.ts), as JSON.
    FLEETSCORE_LOG_LEVEL: 'INFO',
    FLEETSCORE_LOG_FORMAT: 'json',
    FLEETSCORE_PROGRAMS_DIR: programsDir,
    FLEETSCORE_MODEL_FILES_DIR: modelFilesDir,
  };
  const readAheads: Interval[] = [];
  const startWorker = async (): Promise<ChildProcess> => {
    const started = childOfBench(
      spawn(
        process.execPath,
        [
          ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []),
          ...['--import', 'tsx', 'cli/main.ts', 'worker', '--pool', 'cpu', ...(batching ? [] : ['--no-batching'])],
          ...(shardThreads ? ['--shard-threads', shardThreads] : []),
        ],
        { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] },
      ),
    );
    started.stderr?.on(
      'data',
      readAheadLines((r) => readAheads.push(r)),
    );
    await waitForLine(started, 'polling fleetscore-cpu');
    return started;
  };
  const stopWorker = async (w: ChildProcess): Promise<void> => {
    w.kill('SIGTERM');
    await new Promise((done) => (w.exitCode === null ? w.once('exit', done) : done(null)));
  };
  let worker: ChildProcess | undefined;
  try {
    worker = await startWorker();
    const { client, connection } = await connectClient(temporalTarget({ address: server.address }));
    try {
      const once = async (
        scored = window,
      ): Promise<{
        m: Measured;
        handle: Awaited<ReturnType<typeof startRun>>;
        shards: number;
      }> => {
        const start = performance.now();
        const handle = await startRun(client, { store, window: scored, shardSize, pool: 'cpu', maxParallelShards });
        const summary = await handle.result();
        const wall = (performance.now() - start) / 1000;
        const m = { rows: summary.rows, wall_s: wall, rows_per_s: summary.rows / wall, peak_rss_mb: NaN };
        return { m, handle, shards: summary.shards };
      };
      // A fresh worker finds the store's model files in the page cache, as the peer finds its pickles.
      const cacheModelFiles = () => modelFiles && readEveryFile(modelFiles, "the store's model files");
      cacheModelFiles();
      const colds = [await once()];
      const warms = [];
      for (const next of warmWindows) {
        // An hourly worker is idle between its runs, and sets the watches of the model files its last run read
        // or checked by `stat` then (lib/scoring/model-watches.ts): a pause, untimed, lets it.
        await new Promise((done) => setTimeout(done, warmPauseMs(colds[0]!.m.rows / ROWS_PER_DEVICE)));
        warms.push(await once(next));
      }
      const warm = medianOf(warms, (w) => w.m.wall_s);
      const history = await warm.handle.fetchHistory();
      const workerPeak = peakRssMb(worker.pid!);
      let restarted: Measured | undefined;
      if (restart) {
        // On S3 the first worker keeps the model files it could not hold in memory by reading them again once
        // idle, as it would in the hour before the next run: the restart finds what it kept by then.
        await untilSettled(modelFilesDir);
        await stopWorker(worker);
        worker = await startWorker();
        cacheModelFiles();
        const again = await once();
        restarted = { ...again.m, peak_rss_mb: peakRssMb(worker.pid!) };
      }
      let coldPeak = 0;
      for (let i = 1; i < coldRuns; i++) {
        await stopWorker(worker);
        // A host that has compiled and kept nothing again: what the workers before saved is removed.
        rmSync(programsDir, { recursive: true, force: true });
        rmSync(modelFilesDir, { recursive: true, force: true });
        worker = await startWorker();
        cacheModelFiles();
        colds.push(await once());
        coldPeak = Math.max(coldPeak, peakRssMb(worker.pid!));
      }
      const cold = medianOf(colds, (c) => c.m.wall_s);
      return {
        cold: { ...cold.m, peak_rss_mb: workerPeak },
        cold_walls_s: colds.map((c) => c.m.wall_s),
        warm: { ...warm.m, peak_rss_mb: workerPeak },
        warm_walls_s: warms.map((w) => w.m.wall_s),
        ...(restarted ? { restart: restarted } : {}),
        worker_peak_rss_mb: Math.max(workerPeak, restarted?.peak_rss_mb ?? 0, coldPeak),
        history_events: history.events?.length ?? 0,
        history_bytes: temporal.api.history.v1.History.encode(history).finish().length,
        shards: warm.shards,
        ...orchestration(history, readAheads),
      };
    } finally {
      await connection.close();
    }
  } finally {
    if (worker) await stopWorker(worker);
    await server.stop();
  }
}

function writeResults(results: unknown[]): void {
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
}

/**
 * Uploads what a row's runs read (every model and the windows `windows`) from the fleet's local store to the
 * bucket under `prefix`, and returns the store URI the worker is given (its endpoint and credentials come from
 * the environment, as in production) with the seconds the upload took.
 */
async function uploadFleet(
  s3: S3TestServer,
  local: string,
  prefix: string,
  windows: readonly string[],
): Promise<{ uri: string; objects: number; seconds: number }> {
  const started = performance.now();
  const uri = `s3://${s3.bucket}/${prefix}`;
  const from = new LocalStore(local);
  const to = openStore(uri);
  let objects = await copyObjects(from, to, 'models/');
  // One window at a time: the fleet's own window is a link, which a listing of aggregates/ itself does not enter.
  for (const w of windows) objects += await copyObjects(from, to, `aggregates/window=${w}/`);
  return { uri, objects, seconds: (performance.now() - started) / 1000 };
}

async function run(): Promise<void> {
  const families = option('families', 'mahalanobis').split(',') as Family[];
  for (const f of families)
    if (!FAMILIES.includes(f)) throw new Error(`unknown family ${f}; one of ${FAMILIES.join(', ')}`);
  const sizes = option('sizes', '1000,10000,100000').split(',').map(Number);
  const shardSize = Number(option('shard-size', String(RUN_DEFAULTS.shardSize)));
  const maxParallelShards = Number(option('max-parallel-shards', String(RUN_DEFAULTS.maxParallelShards)));
  const unstackedMax = Number(option('unstacked-max', '10000'));
  const trees = Number(option('trees', '100'));
  const treesAt100k = Number(option('trees-at-100k', '25'));
  const procs = Number(option('procs', '2'));
  const profileDir = option('worker-cpu-prof', '') || undefined;
  const shardThreads = option('shard-threads', '') || undefined;
  const repeats = Number(option('repeats', '3'));
  if (!(Number.isInteger(repeats) && repeats >= 1)) throw new Error(`--repeats must be a whole number from 1`);
  const inputFormat = option('input-format', 'arrow') as InputFormat;
  if (inputFormat !== 'arrow' && inputFormat !== 'parquet') throw new Error(`--input-format must be arrow or parquet`);
  const storeKind = option('store', 'local');
  if (storeKind !== 'local' && storeKind !== 's3') throw new Error(`--store must be local or s3`);
  const coldRepeats = Number(option('cold-repeats', '1'));
  if (!(Number.isInteger(coldRepeats) && coldRepeats >= 1)) {
    throw new Error(`--cold-repeats must be a whole number from 1`);
  }
  const python = await ensurePeerPython();
  const machine = {
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model ?? 'unknown',
    memory_gb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadavg_at_start: loadavg(),
  };
  const window = windowAt(END_MS - HOUR_MS);
  const results = [];
  // The workers get its credentials and endpoint through the environment they inherit from this process.
  const s3 = storeKind === 's3' ? serverOfBench(await startS3Server()) : undefined;
  if (s3) Object.assign(process.env, s3.env);
  try {
    for (const family of families) {
      for (const devices of sizes) {
        const work = mkdtempSync(join(tmpdir(), `fleetscore-bench-${family}-${devices}-`));
        try {
          // 100,000 forests of 100 trees are about 80 GB of ONNX: at 100k the forests are smaller (said in the table).
          const t = devices >= 100_000 ? treesAt100k : trees;
          process.stderr.write(`bench: ${family} at ${devices} devices x ${ROWS_PER_DEVICE} rows\n`);
          const fleet = await benchFleet(family, devices, t, window, work, python, procs, inputFormat);
          const otherLoad = measureOtherLoad();
          process.stderr.write('bench: limit\n');
          const l = await limit(fleet.store, window.id);
          process.stderr.write('bench: peer (python loop)\n');
          const p = await peer(python, fleet.store, window.id, join(work, 'peer'), repeats, fleet.pickles);
          // Each warm run scores the next hour's window (the same rows, timestamps moved): its parts are new to the
          // worker, as every hourly run's are, while its models are warm.
          const warmWindows = Array.from(
            { length: repeats },
            (_, i) => windowAt(window.startMs + (i + 1) * HOUR_MS).id,
          );
          const source = join(fleet.store, 'aggregates', `window=${window.id}`);
          await writeWindow(python, source, window, fleet.store, inputFormat, warmWindows);
          let runStore = fleet.store;
          // Where this machine holds the files of the store's models/ (MinIO's data folder, for S3).
          let modelFiles = join(fleet.store, 'models');
          let upload: Awaited<ReturnType<typeof uploadFleet>> | undefined;
          if (s3) {
            process.stderr.write('bench: uploading the fleet to the S3 server\n');
            const prefix = `${family}-${devices}`;
            upload = await uploadFleet(s3, fleet.store, prefix, [window.id, ...warmWindows]);
            runStore = upload.uri;
            modelFiles = join(s3.dataDir, s3.bucket, prefix, 'models');
          }
          process.stderr.write('bench: fleetscore (cold, warm, restart)\n');
          const f = await fleetscore(
            runStore,
            window.id,
            work,
            shardSize,
            maxParallelShards,
            true,
            warmWindows,
            profileDir,
            shardThreads,
            true,
            coldRepeats,
            modelFiles,
          );
          // Without fast paths every device needs a session of its own; measured where that still fits the time budget.
          const unstacked = family === 'mahalanobis' && devices <= unstackedMax;
          const u = unstacked
            ? await fleetscore(
                runStore,
                window.id,
                work,
                shardSize,
                maxParallelShards,
                false,
                warmWindows.slice(0, 1),
                undefined,
                shardThreads,
                false,
                1,
                modelFiles,
              )
            : undefined;
          let peerAfter: number | undefined;
          if (p.wall_s < PEER_AGAIN_MAX_S) {
            process.stderr.write('bench: peer again (the machine kept its speed?)\n');
            peerAfter = (await peer(python, fleet.store, window.id, join(work, 'peer'), 1, fleet.pickles)).wall_s;
            if (Math.abs(peerAfter / p.wall_s - 1) > PEER_DRIFT_WARN) {
              process.stderr.write(
                `bench: the peer took ${p.wall_s.toFixed(2)} s before fleetscore's runs and ${peerAfter.toFixed(2)} s ` +
                  "after: this machine's speed moved while the row ran, so its ratios are not reliable\n",
              );
            }
          }
          const other = otherLoad();
          if (other !== undefined && other > OTHER_LOAD_WARN) {
            process.stderr.write(
              `bench: other processes used ${other.toFixed(2)} cores while this row ran: its numbers are not comparable\n`,
            );
          }
          results.push({
            family,
            devices,
            trees: fleet.trees ?? null,
            input_format: inputFormat,
            store: storeKind,
            store_upload: upload ? { objects: upload.objects, seconds: upload.seconds } : null,
            rows: devices * ROWS_PER_DEVICE,
            fast_paths: l.paths ?? {},
            limit_rows_per_s: l.rows_per_s,
            peer_rows_per_s: p.rows_per_s,
            peer_pickles_cached: p.pickles_cached,
            fleetscore_cold_rows_per_s: f.cold.rows_per_s,
            fleetscore_warm_rows_per_s: f.warm.rows_per_s,
            fleetscore_restart_rows_per_s: f.restart?.rows_per_s ?? null,
            fleetscore_unstacked_cold_rows_per_s: u?.cold.rows_per_s ?? null,
            fleetscore_unstacked_warm_rows_per_s: u?.warm.rows_per_s ?? null,
            ratio_warm_to_limit: f.warm.rows_per_s / l.rows_per_s,
            ratio_warm_to_peer: f.warm.rows_per_s / p.rows_per_s,
            ratio_cold_to_peer: f.cold.rows_per_s / p.rows_per_s,
            ratio_restart_to_peer: f.restart ? f.restart.rows_per_s / p.rows_per_s : null,
            wall_s: {
              limit: l.wall_s,
              peer: p.wall_s,
              fleetscore_cold: f.cold.wall_s,
              fleetscore_warm: f.warm.wall_s,
              fleetscore_restart: f.restart?.wall_s ?? null,
              // The peer once more after fleetscore's runs (null when its median took PEER_AGAIN_MAX_S or more).
              peer_after: peerAfter ?? null,
              // Every run the medians above were taken from.
              peer_runs: p.walls_s,
              fleetscore_warm_runs: f.warm_walls_s,
              fleetscore_cold_runs: f.cold_walls_s,
            },
            repeats,
            cold_repeats: coldRepeats,
            peak_rss_mb: {
              limit: l.peak_rss_mb,
              peer: p.peak_rss_mb,
              fleetscore_worker: f.worker_peak_rss_mb,
              fleetscore_unstacked_worker: u?.worker_peak_rss_mb ?? null,
            },
            history_events: f.history_events,
            history_bytes: f.history_bytes,
            shards: f.shards,
            shard_size: shardSize,
            max_parallel_shards: maxParallelShards,
            orchestration_s: f.orchestration_s,
            orchestration_share: f.orchestration_s / f.warm.wall_s,
            read_ahead_in_gaps_s: f.read_ahead_in_gaps_s,
            fleet_generated_s: fleet.generatedS,
            other_load_cores: other ?? null,
            loadavg_at_end: loadavg(),
            machine,
          });
          // Written after every row, so a long run that is stopped keeps what it measured.
          writeResults(results);
        } finally {
          rmSync(work, { recursive: true, force: true });
        }
      }
    }
  } finally {
    await s3?.stop();
  }
  const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const signedPercent = (f: number) => `${f >= 0 ? '+' : ''}${fmt(f * 100)}%`;
  process.stdout.write(
    `${formatTable(
      [
        'family',
        'devices',
        'limit rows/s',
        'peer rows/s',
        'peer pickles',
        'cold rows/s',
        'warm rows/s',
        'restart rows/s',
        'unstacked warm',
        'warm/limit',
        'warm/peer',
        'cold/peer',
        'restart/peer',
        'warm wall s',
        'worker MB',
        'history events',
        'orchestration',
        'other load',
        'peer after',
      ],
      results.map((r) => [
        `${r.trees === null ? r.family : `${r.family} (${r.trees} trees)`}${r.input_format === 'parquet' ? ' [parquet]' : ''}${r.store === 's3' ? ' [s3]' : ''}`,
        fmt(r.devices),
        fmt(r.limit_rows_per_s),
        fmt(r.peer_rows_per_s),
        r.peer_pickles_cached ? 'memory' : 'disk',
        fmt(r.fleetscore_cold_rows_per_s),
        fmt(r.fleetscore_warm_rows_per_s),
        r.fleetscore_restart_rows_per_s === null ? 'not run' : fmt(r.fleetscore_restart_rows_per_s),
        r.fleetscore_unstacked_warm_rows_per_s === null ? 'not run' : fmt(r.fleetscore_unstacked_warm_rows_per_s),
        fmt(r.ratio_warm_to_limit, 2),
        fmt(r.ratio_warm_to_peer, 2),
        fmt(r.ratio_cold_to_peer, 2),
        r.ratio_restart_to_peer === null ? 'not run' : fmt(r.ratio_restart_to_peer, 2),
        fmt(r.wall_s.fleetscore_warm, 2),
        fmt(r.peak_rss_mb.fleetscore_worker),
        r.history_events,
        `${fmt(r.orchestration_share * 100, 1)}%`,
        r.other_load_cores === null ? 'n/a' : fmt(r.other_load_cores, 2),
        r.wall_s.peer_after === null ? 'not run' : signedPercent(r.wall_s.peer_after / r.wall_s.peer - 1),
      ]),
    )}\n`,
  );
  process.stdout.write(
    `machine: ${machine.cpus} x ${machine.cpu_model}, ${machine.memory_gb} GiB, node ${machine.node}\n`,
  );
}

run().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
