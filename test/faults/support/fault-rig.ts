/**
 * The fault suite's rig: a real Temporal dev server on a SQLite file (so it can be killed and restarted on the
 * same file), real `fleetscore worker` processes (so they can be SIGKILLed, SIGTERMed and SIGSTOPped), a seeded
 * demo fleet in a local folder or a real MinIO (reached by the workers through a store gate that can hold one
 * request, to aim a fault at an exact point), and the checks every fault test ends with: the run completed and
 * its committed predictions equal a fault-free run's, row for row. About 500 lines: the rig class is one object
 * the tests drive (servers, workers, runs, commits); what it records lives in fault-record.ts, its workers in
 * worker-process.ts, the store gate in store-gate.ts.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  WorkflowFailedError,
  type Client,
  type Connection,
  type WorkflowHandle,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { decodePredictions, predictionRows } from '../../../lib/arrow/predictions';
import { seedDemoFleet } from '../../../lib/demo/demo-fleet';
import { readDemoTruth } from '../../../lib/demo/demo-truth';
import { keys, shardName } from '../../../lib/shared/keys';
import { readIndex } from '../../../lib/models/model-index';
import { SCORING_WORKFLOW, type RunProgress } from '../../../lib/shared/names';
import { progressQuery } from '../../../lib/shared/queries';
import { readManifest } from '../../../lib/scoring/manifest';
import type { RunSummary, ScoringRunInput } from '../../../lib/shared/run-types';
import { copyObjects } from '../../../lib/store/copy-objects';
import { LocalStore } from '../../../lib/store/local-store';
import type { ObjectStore } from '../../../lib/store/object-store';
import { S3Store } from '../../../lib/store/s3-store';
import { connectClient, temporalTarget } from '../../../lib/temporal/connection';
import { startDevServer, type DevServer } from '../../../lib/temporal/dev-server';
import { windowAt } from '../../../lib/shared/window';
import { startS3Server, type S3TestServer } from '../../support/s3-server';
import { freePort } from '../../support/free-port';
import {
  compareRows,
  recordFault,
  type CommittedRows,
  type Comparison,
  type FaultRecord,
  type RowValue,
} from './fault-record';
import { HeldRead } from './held-read';
import { StoreGate, type StoreRequest } from './store-gate';
import { WorkerProcess } from './worker-process';
import { messageOf } from '../../../lib/shared/errors';

const ROOT = resolve(__dirname, '../../..');

/** The seeded window every run scores. */
export const END_MS = Date.UTC(2026, 10, 21, 12);
export const WINDOW = windowAt(END_MS - 3_600_000).id;
/** A protobuf Timestamp as milliseconds since the epoch. */
function timestampMs(t: { seconds?: Long | number | null; nanos?: number | null }): number {
  const seconds = typeof t.seconds === 'number' ? t.seconds : (t.seconds?.toNumber() ?? 0);
  return seconds * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
}

/** How long a shard attempt has run before `waitForShard` calls it mid-shard. */
const SHARD_RUNNING_MS = 250;

/** A fleet big enough that a cold shard lasts seconds (a new ONNX session per device), so it can be interrupted. */
export interface FleetSize {
  devices: number;
  sensors: number;
  shardSize: number;
}

/** Options of {@link FaultRig.start}. */
export interface RigOptions extends FleetSize {
  s3?: boolean;
  /** Extra environment for the worker processes (e.g. fake secrets). */
  workerEnv?: Record<string, string>;
  /**
   * Workers stack Mahalanobis models (the default path of `fleetscore worker`). Off by default: with
   * `--no-batching` every device gets its own ONNX session, so a cold shard lasts long enough to aim at by time;
   * stacked shards are aimed at through the store gate instead.
   */
  stacked?: boolean;
  /** Writes the fleet into the store folder instead of the seeded demo fleet (`devices` must match it). */
  fleet?: (storeDir: string) => Promise<void>;
}

/** A dev server, a store with a seeded fleet, worker processes and a client. */
export class FaultRig {
  client!: Client;
  server!: DevServer;
  store!: ObjectStore;
  storeUri!: string;
  s3?: S3TestServer;
  /** Between the workers and the S3 server (S3 rigs only); see {@link FaultRig.workerOf}. */
  gate?: StoreGate;
  readonly workers: WorkerProcess[] = [];
  /** Every worker ever started, for grepping their output. */
  readonly allWorkers: WorkerProcess[] = [];
  reference?: CommittedRows;
  private connection!: Connection;
  private dir!: string;
  private ports!: { port: number; uiPort: number };
  private workerEnv!: NodeJS.ProcessEnv;
  private spawned = 0;
  readonly taskQueue = `faults-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  private constructor(readonly options: RigOptions) {}

  /** Starts everything and seeds the fleet (one window). */
  static async start(options: RigOptions): Promise<FaultRig> {
    const rig = new FaultRig(options);
    await rig.init();
    return rig;
  }

  /** A rig not started yet: {@link FaultRig.init} starts it (see {@link useFaultRig}). */
  static create(options: RigOptions): FaultRig {
    return new FaultRig(options);
  }

  /** Starts the servers and seeds the fleet (one window). */
  async init(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'fleetscore-faults-'));
    this.ports = { port: await freePort(), uiPort: await freePort() };
    const seedStore = new LocalStore(join(this.dir, 'store'));
    const fleet = this.options.fleet;
    const [server] = await Promise.all([
      startDevServer({ dbFile: join(this.dir, 'temporal.db'), ...this.ports }),
      fleet
        ? fleet(join(this.dir, 'store'))
        : seedDemoFleet(seedStore, {
            devices: this.options.devices,
            sensors: this.options.sensors,
            hours: 1,
            endMs: END_MS,
            seed: 5,
            anomalyRate: 0.02,
          }),
    ]);
    this.server = server;
    const { TEMPORAL_PROFILE: _p, FLEETSCORE_STORE: _s, ...inherited } = process.env;
    this.workerEnv = {
      ...inherited,
      TEMPORAL_ADDRESS: server.address,
      TEMPORAL_NAMESPACE: 'default',
      FLEETSCORE_LOG_LEVEL: 'WARN',
      // The rig's workers share one host folder of saved programs and one of kept S3 model files, as workers on one
      // host do, both empty at the start of each rig.
      FLEETSCORE_PROGRAMS_DIR: join(this.dir, 'programs'),
      FLEETSCORE_MODEL_FILES_DIR: join(this.dir, 'model-files'),
      ...this.options.workerEnv,
    };
    if (this.options.s3) {
      this.s3 = await startS3Server();
      Object.assign(this.workerEnv, this.s3.env);
      const s3 = new S3Store({
        bucket: this.s3.bucket,
        prefix: '',
        endpoint: this.s3.endpoint,
        forcePathStyle: true,
        region: 'us-east-1',
      });
      // The SDK reads credentials from the environment; this process uses them too.
      Object.assign(process.env, this.s3.env);
      await copyObjects(seedStore, s3);
      this.store = s3;
      // No endpoint in the URI: each worker reaches the server through its own gate port (FLEETSCORE_S3_ENDPOINT).
      this.gate = new StoreGate(this.s3.endpoint);
      this.storeUri = `s3://${this.s3.bucket}`;
    } else {
      this.store = seedStore;
      this.storeUri = seedStore.uri;
    }
    ({ client: this.client, connection: this.connection } = await connectClient(
      temporalTarget({ address: server.address, namespace: 'default' }),
    ));
  }

  /** Starts `n` cpu pool worker processes (one shard at a time each) and waits until they poll. */
  async startWorkers(n: number): Promise<WorkerProcess[]> {
    const started = await Promise.all(Array.from({ length: n }, () => this.spawnWorker()));
    this.workers.push(...started);
    return started;
  }

  private async spawnWorker(): Promise<WorkerProcess> {
    // `node --import tsx`, not the tsx binary: one process, so signals reach the worker itself and its identity
    // (`pid@host`) is the pid we hold. `--no-batching` (unless the rig is stacked) gives every device its own ONNX
    // session, so a cold shard of 500 devices takes a second or more (stacked scoring takes a fraction of that):
    // long enough to aim a fault at by time. On S3 rigs each worker reaches the store through its own gate port.
    const args = ['worker', '--pool', 'cpu', '--task-queue', this.taskQueue, '--shards', '1'];
    if (!this.options.stacked) args.push('--no-batching');
    // Taken before any await: workers start side by side, and each needs a label of its own.
    const label = this.gate ? `worker-${++this.spawned}` : undefined;
    const env = { ...this.workerEnv };
    if (this.gate && label) env.FLEETSCORE_S3_ENDPOINT = await this.gate.listen(label);
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const worker = new WorkerProcess(child, label);
    this.allWorkers.push(worker);
    const deadline = Date.now() + 60_000;
    while (!worker.output.includes('polling')) {
      if (!worker.running) throw new Error(`worker exited during start-up:\n${worker.output}`);
      if (Date.now() > deadline) throw new Error(`worker did not start in 60 s:\n${worker.output}`);
      await sleep(100);
    }
    return worker;
  }

  /** The worker that sent a request the store gate holds. */
  workerOf(request: StoreRequest): WorkerProcess {
    const worker = this.workers.find((w) => w.label === request.listener);
    if (!worker) throw new Error(`no running worker sent ${request.method} ${request.key} (${request.listener})`);
    return worker;
  }

  /** SIGKILLs a worker and starts a replacement at once, as a process supervisor would. */
  async killAndReplace(victim: WorkerProcess): Promise<void> {
    victim.signal('SIGKILL');
    await victim.exited;
    this.workers.splice(this.workers.indexOf(victim), 1);
    await this.startWorkers(1);
  }

  /** Stops every worker (SIGTERM, then SIGKILL), so the next run starts on cold ones. */
  async stopWorkers(): Promise<void> {
    this.gate?.cancelHolds();
    const all = this.workers.splice(0);
    for (const w of all) {
      w.signal('SIGCONT');
      w.signal('SIGTERM');
    }
    await Promise.all(
      all.map(async (w) => {
        const timer = setTimeout(() => w.signal('SIGKILL'), 15_000);
        await w.exited;
        clearTimeout(timer);
      }),
    );
  }

  /** The input of a run of the seeded window on this rig's workers. */
  input(overrides: Partial<ScoringRunInput> = {}): ScoringRunInput {
    return {
      store: this.storeUri,
      window: WINDOW,
      pool: 'cpu',
      taskQueues: { cpu: this.taskQueue, gpu: this.taskQueue },
      shardSize: this.options.shardSize,
      maxParallelShards: 2,
      timeouts: { shardHeartbeat: '3s' },
      ...overrides,
    };
  }

  /** Starts a run. */
  start(id: string, overrides: Partial<ScoringRunInput> = {}): Promise<WorkflowHandleWithFirstExecutionRunId> {
    return this.client.workflow.start(SCORING_WORKFLOW, {
      taskQueue: this.taskQueue,
      workflowId: `${id}-${Date.now()}`,
      args: [this.input(overrides)],
    });
  }

  /** Waits for a run's result, riding out a restarting server. */
  async result(handle: WorkflowHandle, timeoutMs = 240_000): Promise<RunSummary> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return (await handle.result()) as RunSummary;
      } catch (err) {
        if (!isUnavailable(err) || Date.now() > deadline) throw err;
        await sleep(500);
      }
    }
  }

  /** The run's progress, or undefined while no worker or server answers. */
  async progress(handle: WorkflowHandle): Promise<RunProgress | undefined> {
    try {
      return await handle.query(progressQuery);
    } catch {
      return undefined;
    }
  }

  /** The scoreShard activities completed so far, counted in the run's history (the server's answer alone). */
  async shardsCompleted(handle: WorkflowHandle): Promise<number> {
    const { events } = await handle.fetchHistory();
    const shards = new Set<string>();
    let done = 0;
    for (const e of events ?? []) {
      if (e.activityTaskScheduledEventAttributes?.activityType?.name === 'scoreShard') shards.add(String(e.eventId));
      const completed = e.activityTaskCompletedEventAttributes;
      if (completed && shards.has(String(completed.scheduledEventId))) done++;
    }
    return done;
  }

  /**
   * The scoreShard attempts running now: which worker, which attempt, how many devices done, and how long ago the
   * server saw the attempt start (ms); `closed` once the run is no longer running.
   */
  async runningShards(
    handle: WorkflowHandle,
  ): Promise<{ closed: boolean; shards: { identity: string; devicesDone: number; attempt: number; ageMs: number }[] }> {
    try {
      const d = await handle.describe();
      const now = Date.now();
      const shards = (d.raw.pendingActivities ?? [])
        .filter(
          (a) =>
            a.activityType?.name === 'scoreShard' &&
            a.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
        )
        .map((a) => {
          const p = a.heartbeatDetails?.payloads?.[0];
          const details = p ? defaultPayloadConverter.fromPayload<{ devicesDone?: number }>(p) : undefined;
          return {
            identity: a.lastWorkerIdentity ?? '',
            devicesDone: details?.devicesDone ?? 0,
            attempt: a.attempt ?? 1,
            ageMs: a.lastStartedTime ? now - timestampMs(a.lastStartedTime) : 0,
          };
        });
      return { closed: d.status.name !== 'RUNNING', shards };
    } catch {
      return { closed: false, shards: [] };
    }
  }

  /**
   * Waits until a shard is being scored at the given point of the run: at least `shardsDone` shards finished and a
   * shard attempt started on a worker at least {@link SHARD_RUNNING_MS} ago by the server's clock (a cold shard
   * takes seconds, so this lands mid-shard; heartbeat details are throttled by the SDK and too coarse to aim with).
   * Of several, the one started last, which has the most left to do. Returns the worker scoring it; throws at once
   * when the run ends first.
   */
  async waitForShard(
    handle: WorkflowHandle,
    point: { shardsDone: number },
    timeoutMs = 120_000,
  ): Promise<WorkerProcess> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      // Both from the server, never a query: a worker busy scoring answers a query late (seconds on a loaded CI
      // machine), and a late shard could end before the answer came.
      const [done, running] = await Promise.all([
        this.shardsCompleted(handle).catch(() => -1),
        this.runningShards(handle),
      ]);
      if (running.closed) throw new Error(`the run ended before a shard reached ${JSON.stringify(point)}`);
      if (done >= point.shardsDone) {
        const youngest = running.shards
          .filter((s) => s.ageMs >= SHARD_RUNNING_MS)
          .sort((a, b) => a.ageMs - b.ageMs)
          .map((s) => this.workers.find((w) => w.identity === s.identity && w.running))
          .find((w) => w !== undefined);
        if (youngest) return youngest;
      }
      await sleep(50);
    }
    throw new Error(`no shard reached ${JSON.stringify(point)} in ${timeoutMs} ms`);
  }

  /**
   * Holds the read of the model of shard `shard`'s `at`th device (see {@link HeldRead}), so the worker scoring
   * that shard stops there, however fast the machine. Make it before the run starts; release it (`held.release()`)
   * once the test has acted: a held shard sends no heartbeats (the rig's heartbeat timeout is 3 s), and a retry
   * must find the file as it was. Local rigs without stacking only (each device's model.onnx is read while its
   * shard is scored).
   */
  async holdShard(shard: number, at: number): Promise<HeldRead> {
    const device = (await this.shardDevices(shard))[at];
    if (device === undefined || this.s3 || this.options.stacked) throw new Error(`cannot hold shard ${shard} at ${at}`);
    const version = (await readIndex(this.store)).devices[device]!.version;
    return new HeldRead(join(fileURLToPath(this.storeUri), keys.modelOnnx(device, version)));
  }

  /** Waits until a worker of this rig blocks in the held read, and returns it. */
  async readerOf(held: HeldRead): Promise<WorkerProcess> {
    await held.reader();
    // The reader waits in open() until the hold opens the write end, so its descriptor shows a moment later.
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(10)) {
      const victim = this.workers.find((w) => w.running && held.openBy(w.child.pid!));
      if (victim) return victim;
    }
    throw new Error(`no worker of this rig is reading ${held.path}`);
  }

  /** Reads a window's commit: the manifest and every row of the shard files it lists. */
  async committed(window = WINDOW): Promise<CommittedRows> {
    const manifest = await readManifest(this.store, window);
    if (!manifest) throw new Error(`window ${window} has no manifest`);
    const rows = new Map<string, RowValue>();
    const occurrences = new Map<string, number>();
    for (const shard of manifest.shards) {
      if (!shard.predictions) continue;
      for (const row of predictionRows(decodePredictions(await this.store.get(shard.predictions)))) {
        const key = `${row.device}@${row.ts}`;
        occurrences.set(key, (occurrences.get(key) ?? 0) + 1);
        rows.set(key, `${row.score}|${row.isAnomaly}|${row.modelVersion}`);
      }
    }
    return { manifest, rows, occurrences };
  }

  /**
   * Runs the window once without faults on cold workers and keeps its commit as the reference, after checking it
   * against the seeded ground truth: every row scored once, anomalies exactly where they were injected.
   */
  async runReference(): Promise<CommittedRows> {
    await this.startWorkers(2);
    try {
      const summary = await this.result(await this.start('reference'));
      if (summary.scored !== this.options.devices) throw new Error(`reference run: ${JSON.stringify(summary)}`);
    } finally {
      await this.stopWorkers();
    }
    const reference = await this.committed();
    const truth = await readDemoTruth(this.store, WINDOW);
    const anomalous = new Set(truth!.anomalies.map((a) => `${a.device}@${a.ts}`));
    if (reference.rows.size !== this.options.devices * 60) throw new Error('reference: wrong row count');
    for (const [key, value] of reference.rows) {
      if ((value.split('|')[1] === 'true') !== anomalous.has(key)) throw new Error(`reference: ${key} wrong`);
    }
    this.reference = reference;
    return reference;
  }

  /** Compares a commit with the reference, row for row and device outcome for device outcome. */
  compare(actual: CommittedRows): Comparison {
    if (!this.reference) throw new Error('no reference run');
    return compareRows(this.reference, actual);
  }

  /** The devices planRun puts in a shard: the index's device ids, sorted, in slices of the shard size. */
  async shardDevices(shard: number): Promise<string[]> {
    const devices = Object.keys((await readIndex(this.store)).devices).sort();
    return devices.slice(shard * this.options.shardSize, (shard + 1) * this.options.shardSize);
  }

  /** Every manifest key under the window's predictions: exactly one once the window is committed. */
  async manifestKeys(window = WINDOW): Promise<string[]> {
    return (await this.store.list(keys.predictionsPrefix(window))).filter((k) => k.endsWith('_manifest.json'));
  }

  /** Every object in the store as text (for grepping), keyed by its key. */
  async dumpStore(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const key of await this.store.list(''))
      out.set(key, Buffer.from(await this.store.get(key)).toString('latin1'));
    return out;
  }

  /** Stops everything and deletes the rig's folder. */
  async close(): Promise<void> {
    await this.stopWorkers().catch(() => undefined);
    for (const w of this.allWorkers) w.signal('SIGKILL');
    await this.connection?.close().catch(() => undefined);
    await this.server?.stop().catch(() => undefined);
    await this.gate?.close();
    if (this.store instanceof S3Store) this.store.destroy();
    await this.s3?.stop();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  /** Kills the dev server (SIGKILL) and starts it again on the same SQLite file and ports after `downMs`. */
  async crashTemporal(downMs: number): Promise<void> {
    await this.server.kill();
    await sleep(downMs);
    this.server = await startDevServer({ dbFile: join(this.dir, 'temporal.db'), ...this.ports });
  }
}

/**
 * Sets up one fault test file's rig: started and checked against a fault-free reference run before the file's
 * tests, every worker stopped after each test (so each run starts on cold workers), closed after the file.
 */
export function useFaultRig(options: RigOptions): FaultRig {
  const rig = FaultRig.create(options);
  beforeAll(async () => {
    await rig.init();
    await rig.runReference();
  });
  afterEach(async () => {
    await rig.stopWorkers();
  });
  afterAll(async () => {
    await rig.close();
  });
  return rig;
}

/**
 * Runs `body` (which injects the fault and returns how many times), checks the commit and records the figures. The
 * commit checked is the seeded window's, against the reference run, unless `body` returns its own comparison (of
 * other windows, against what they must hold).
 */
export async function measureFault(
  rig: FaultRig,
  fault: string,
  point: string,
  body: () => Promise<{
    injected: number;
    summary: RunSummary | undefined;
    runs?: number;
    completed?: number;
    comparison?: Comparison;
  }>,
): Promise<Comparison & { record: FaultRecord }> {
  const started = Date.now();
  const { injected, summary, runs = 1, completed, comparison: own } = await body();
  const comparison = own ?? rig.compare(await rig.committed());
  const record: FaultRecord = {
    fault,
    point,
    injected,
    runs,
    runsCompleted: completed ?? (summary && summary.scored === rig.options.devices ? 1 : 0),
    lost: comparison.lost,
    duplicated: comparison.duplicated + comparison.unexpected,
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
  await recordFault(record);
  return { ...comparison, record };
}

/** The store requests fault tests aim at through the store gate, for the seeded window. */
export const storeRequests = {
  /** planRun writing the plan file of one shard (any shard when none is given). */
  planWrite:
    (shard?: number) =>
    (r: StoreRequest): boolean =>
      r.method === 'PUT' &&
      r.key.startsWith(keys.predictionsPrefix(WINDOW)) &&
      (shard === undefined
        ? /\/_plan\/shard-\d+\.json$/.test(r.key)
        : r.key.endsWith(`/_plan/${shardName(shard)}.json`)),
  /** commitRun writing the window's manifest: the commit. */
  manifestWrite: (r: StoreRequest): boolean => r.method === 'PUT' && r.key === keys.manifest(WINDOW),
  /** scoreShard writing one shard's predictions file. */
  predictionsWrite:
    (shard: number) =>
    (r: StoreRequest): boolean =>
      r.method === 'PUT' &&
      r.key.startsWith(keys.predictionsPrefix(WINDOW)) &&
      r.key.endsWith(`/${shardName(shard)}.arrow`),
  /** scoreShard reading a file of one device's model (model.json or model.onnx). */
  modelRead:
    (device: string) =>
    (r: StoreRequest): boolean =>
      r.method === 'GET' && r.key.startsWith(`models/${device}/`),
};

/** Polls `condition` every 50 ms until it holds; fails after `timeoutMs` with `what`. */
function isUnavailable(err: unknown): boolean {
  // A run's failure is its result, whatever its message says (a window id such as 2026-12-04T14 matched a bare
  // "14 " here, and each such run was waited on for the whole timeout).
  if (err instanceof WorkflowFailedError) return false;
  const text = `${messageOf(err)} ${messageOf((err as { cause?: unknown } | undefined)?.cause ?? '')}`;
  return /UNAVAILABLE|ECONNREFUSED|Connection dropped|connect|deadline|ServiceError/i.test(text);
}
