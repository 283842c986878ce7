/**
 * `npm run bench:gpu`: the gpu pool against the cpu pool on one window of the demo fleet, through the real Temporal
 * dev server, `fleetscore worker` processes and the local store. Four workers in turn, each scoring the window cold
 * and then warm: gpu and cpu, each stacking the Mahalanobis models (the default) and with `--no-batching` (one
 * onnxruntime session per device); the gpu pool checks each session's placement, the stacked one's too, by
 * profiling its first inference. The table
 * gives each worker's provider decision, its sessions by placement, both runs' wall time and rows/s, and how far its
 * predictions are from the first cpu worker's. A gpu worker that refuses to start (no CUDA here) is a row that says
 * why; `--gpu-fallback cpu` runs it on the CPU provider instead. Writes bench/results/gpu-latest.json.
 *
 * Usage: npm run bench:gpu -- [--devices 2000] [--sensors 16] [--shard-size 500] [--gpu-fallback refuse|cpu]
 *   [--models stacked,sessions]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { seedDemoFleet } from '../lib/demo/demo-fleet';
import type { Pool } from '../lib/shared/names';
import { LocalStore } from '../lib/store/local-store';
import { connectClient, temporalTarget } from '../lib/temporal/connection';
import { startDevServer } from '../lib/temporal/dev-server';
import { childOfBench, serverOfBench } from './stop-with-bench';
import { startRun } from '../lib/temporal/runs';
import { gatherPredictions } from '../cli/commands/predictions';
import { formatTable } from '../cli/utils/table';
import { WorkerProcess } from '../test/faults/support/worker-process';
import { freePort } from '../test/support/free-port';
import { metricSamples } from '../test/support/prometheus-text';

const ROOT = resolve(__dirname, '..');

interface Config {
  pool: Pool;
  batching: boolean;
}

interface RunMeasured {
  wall_s: number;
  rows: number;
  rows_per_s: number;
}

interface Row extends Config {
  /** The worker's provider decision, or why it did not start. */
  decision: string;
  started: boolean;
  cold?: RunMeasured;
  warm?: RunMeasured;
  /** New onnxruntime sessions by where their nodes ran (gpu pool only; from the worker's metrics). */
  sessions?: Record<string, number>;
  /** Seconds the worker spent in inference over both runs (its `fleetscore_inference_seconds` histogram). */
  inference_s?: number;
  /** Against the reference worker's predictions: largest score difference, relative to the score's size. */
  max_rel_diff?: number;
  /** Rows whose anomaly flag differs from the reference's. */
  flags_differ?: number;
}

type Predictions = Map<string, { score: number; isAnomaly: boolean }>;

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '2000' },
    sensors: { type: 'string', default: '16' },
    'shard-size': { type: 'string', default: '500' },
    'gpu-fallback': { type: 'string', default: 'refuse' },
    models: { type: 'string', default: 'stacked,sessions' },
  },
});

/** Sums the samples of one Prometheus metric by the value of `label` (under '' for samples without it). */
function metricSums(text: string, name: string, label: string): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const { labels, value } of metricSamples(text, name)) {
    const key = new RegExp(`${label}="([^"]*)"`).exec(labels)?.[1] ?? '';
    sums[key] = (sums[key] ?? 0) + value;
  }
  return sums;
}

/** The window's committed predictions by `device@ts`, read as `predictions show` reads them. */
async function committedPredictions(store: string, window: string): Promise<Predictions> {
  const { rows } = await gatherPredictions({ store, window, limit: Number.MAX_SAFE_INTEGER });
  return new Map(rows.map((r) => [`${r.device}@${r.ts}`, { score: r.score, isAnomaly: r.isAnomaly }]));
}

function compare(reference: Predictions, rows: Predictions): { max_rel_diff: number; flags_differ: number } {
  if (rows.size !== reference.size) throw new Error(`${rows.size} predictions, the reference has ${reference.size}`);
  let maxRel = 0;
  let flags = 0;
  for (const [key, ref] of reference) {
    const row = rows.get(key);
    if (!row) throw new Error(`prediction ${key} missing`);
    maxRel = Math.max(maxRel, Math.abs(row.score - ref.score) / Math.max(1, Math.abs(ref.score)));
    if (row.isAnomaly !== ref.isAnomaly) flags++;
  }
  return { max_rel_diff: maxRel, flags_differ: flags };
}

let workers = 0;

/** Starts a `fleetscore worker` of `pool` and waits until it polls or exits; its decision line says which. */
async function startWorker(
  address: string,
  work: string,
  pool: Pool,
  flags: string[],
): Promise<{ worker: WorkerProcess; decision: string; metricsPort: number }> {
  const metricsPort = await freePort();
  const worker = new WorkerProcess(
    childOfBench(
      spawn(
        process.execPath,
        ['--import', 'tsx', 'cli/main.ts', 'worker', '--pool', pool, '--metrics-port', String(metricsPort), ...flags],
        {
          cwd: ROOT,
          env: {
            ...process.env,
            TEMPORAL_ADDRESS: address,
            FLEETSCORE_LOG_LEVEL: 'INFO',
            // A host of its own per worker: each cold run compiles what it needs.
            FLEETSCORE_PROGRAMS_DIR: join(work, `programs-${++workers}`),
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    ),
  );
  while (worker.running && !worker.output.includes(`polling fleetscore-${pool}`)) await sleep(100);
  // The worker's decision line without its cache budgets (its provider, a gpu pool's FP32/TF32 choice and probe,
  // its slots), or its refusal; onnxruntime's own log lines are left out.
  const line = /(?:cpu|gpu) pool\b[^\n]*/.exec(worker.output)?.[0] ?? worker.output.trim();
  const decision = worker.running ? line.split('; caches:')[0]! : line;
  return { worker, decision, metricsPort };
}

async function main(): Promise<void> {
  const devices = Number(args.devices);
  const sensors = Number(args.sensors);
  const shardSize = Number(args['shard-size']);
  const work = mkdtempSync(join(tmpdir(), 'fleetscore-bench-gpu-'));
  const store = new LocalStore(join(work, 'store'));
  const [server, fleet] = await Promise.all([
    startDevServer({ dbFile: join(work, 'temporal.db'), port: await freePort(), uiPort: await freePort() }).then(
      serverOfBench,
    ),
    seedDemoFleet(store, { devices, sensors, hours: 1, gpuEvery: 1 }),
  ]);
  const window = fleet.windows[fleet.windows.length - 1]!;
  const { client, connection } = await connectClient(temporalTarget({ address: server.address }));
  const results: Row[] = [];
  let reference: Predictions | undefined;
  try {
    const models = args.models.split(',');
    const configs: Config[] = [
      ...(models.includes('stacked') ? [true] : []),
      ...(models.includes('sessions') ? [false] : []),
    ].flatMap((batching) => (['cpu', 'gpu'] as const).map((pool) => ({ pool, batching })));
    for (const config of configs) {
      // Run workflows (planning, commits) live on the cpu pool's task queue: a gpu row has a cpu worker beside it.
      const workflows = config.pool === 'gpu' ? await startWorker(server.address, work, 'cpu', []) : undefined;
      const { worker, decision, metricsPort } = await startWorker(server.address, work, config.pool, [
        ...(config.batching ? [] : ['--no-batching']),
        ...(config.pool === 'gpu' ? ['--gpu-fallback', args['gpu-fallback']] : []),
      ]);
      const stop = async () => {
        for (const w of [worker, workflows?.worker]) w?.signal('SIGTERM');
        await Promise.all([worker.exited, workflows?.worker.exited]);
      };
      if (!worker.running) {
        await stop();
        results.push({ ...config, decision, started: false });
        continue;
      }
      try {
        const once = async (): Promise<RunMeasured> => {
          const start = performance.now();
          const handle = await startRun(client, { store: fleet.store, window, shardSize, pool: config.pool });
          const summary = await handle.result();
          if (summary.scored !== devices) throw new Error(`${config.pool} run: ${JSON.stringify(summary)}`);
          const wall = (performance.now() - start) / 1000;
          return { wall_s: wall, rows: summary.rows, rows_per_s: summary.rows / wall };
        };
        const cold = await once();
        const warm = await once();
        const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        const rows = await committedPredictions(fleet.store, window);
        reference ??= rows;
        results.push({
          ...config,
          decision,
          started: true,
          cold,
          warm,
          sessions: metricSums(metrics, 'fleetscore_model_sessions_created_total', 'placement'),
          inference_s: metricSamples(metrics, 'fleetscore_inference_seconds_sum').reduce((t, m) => t + m.value, 0),
          ...compare(reference, rows),
        });
      } finally {
        await stop();
      }
    }
  } finally {
    await connection.close();
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const fmt = (n: number | undefined, digits: number) => (n === undefined ? '-' : n.toFixed(digits));
  const table = results.map((r) => [
    r.pool,
    r.batching ? 'stacked' : 'session per device',
    r.started ? fmt(r.cold?.wall_s, 2) : 'did not start',
    fmt(r.warm?.wall_s, 2),
    r.warm ? Math.round(r.warm.rows_per_s) : '-',
    fmt(r.inference_s, 2),
    r.sessions
      ? Object.entries(r.sessions)
          .map(([p, n]) => `${p} ${n}`)
          .join(', ') || '-'
      : '-',
    r.max_rel_diff === undefined ? '-' : r.max_rel_diff.toExponential(1),
    r.flags_differ ?? '-',
  ]);
  const headers = [
    'pool',
    'models',
    'cold s',
    'warm s',
    'warm rows/s',
    'inference s',
    'sessions',
    'score diff',
    'flags',
  ];
  console.log(`${devices} devices x 60 rows x ${sensors} sensors, shards of ${shardSize}; ${cpus().length} CPUs`);
  console.log(formatTable(headers, table));
  for (const r of results) console.log(`${r.pool}${r.batching ? '' : ' --no-batching'}: ${r.decision}`);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(
    join(ROOT, 'bench', 'results', 'gpu-latest.json'),
    `${JSON.stringify({ devices, sensors, shardSize, results }, null, 2)}\n`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
