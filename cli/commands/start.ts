/**
 * `fleetscore up` (what `npm start` runs): the whole system on one machine. Starts a Temporal dev server unless one
 * answers, seeds a demo fleet into an empty store, runs a cpu and a gpu pool worker, applies the schedules from
 * code, scores the most recent window at once and prints its summary (or shows the window's commit, when its input
 * and models are as that run read them), then serves the hourly schedule until Ctrl-C (or exits with `--once`), and
 * says what it stopped.
 */
import { setMaxListeners } from 'node:events';
import { join } from 'node:path';
import { WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import { Command } from 'commander';
import { z } from 'zod';
import { config, webUiBase } from '../../lib/config';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import { readIndex } from '../../lib/models/model-index';
import { nodeEndOfLifeNotice } from '../../lib/node-support';
import { POOLS } from '../../lib/shared/names';
import { progressQuery } from '../../lib/shared/queries';
import { listFailures } from '../../lib/scoring/commit-run';
import { readManifest, type Manifest } from '../../lib/scoring/manifest';
import { changesSinceCommit } from '../../lib/scoring/stale-windows';
import { keys } from '../../lib/shared/keys';
import { RUN_DEFAULTS, type RunCounts, type RunSummary } from '../../lib/shared/run-types';
import type { ObjectStore } from '../../lib/store/object-store';
import { openStore } from '../../lib/store/open-store';
import { messageOf, TemporalUnreachable } from '../../lib/shared/errors';
import { describeUnreachable } from '../../lib/temporal/connection-failure';
import {
  CONNECT_TIMEOUT_MS,
  connectClient,
  connectWorker,
  isReachable,
  temporalTarget,
} from '../../lib/temporal/connection';
import { startDevServer, type DevServer } from '../../lib/temporal/dev-server';
import { progressStatus } from '../../lib/temporal/run-watch';
import { runUiUrl, runWorkflowId, startRun } from '../../lib/temporal/runs';
import { installRuntime } from '../../lib/temporal/runtime';
import { ensureSearchAttributes } from '../../lib/temporal/search-attributes';
import { latestScoreableWindow } from '../../lib/shared/window';
import { durationMs } from '../../lib/shared/duration';
import { loadSchedules } from '../../schedules/schedule-file';
import { applySchedules, scheduledRunInput } from '../../schedules/schedule-reconciler';
import { createPoolWorker, type PoolWorker } from '../../workers/pool-worker';
import { notice as say } from '../utils/notice';
import { positiveInt } from '../utils/options';
import { parseOptions } from '../utils/parse-options';
import { commitLines, failureLines, formatTable } from '../utils/table';

const optionsSchema = z.object({
  once: z.boolean().optional(),
  devices: positiveInt,
  sensors: positiveInt,
  hours: positiveInt,
});

/** The run summary as the user sees it (a run's result, or a committed window's manifest). */
function renderSummary(
  s: RunCounts & Pick<RunSummary, 'window' | 'manifest' | 'failures' | 'outcome' | 'supersededBy'>,
  store: string,
  url: string,
): string {
  const table = formatTable(
    ['window', 'devices', 'scored', 'no data', 'failed', 'rows', 'anomalies'],
    [[s.window, s.devices, s.scored, s.noData, s.failed, s.rows, s.anomalies]],
  );
  const failures = failureLines(s);
  return [
    table,
    ...commitLines(s),
    ...(failures.length ? ['', 'failed devices:', ...failures] : []),
    '',
    `predictions  ${store.replace(/\/$/, '')}/predictions/window=${s.window}/ (manifest ${s.manifest})`,
    `run          ${url}`,
    `read them    npm run fleetscore -- predictions show ${s.window} --anomalies`,
  ].join('\n');
}

/** `fleetscore up` (alias `start`; `npm start`): fleetscore on this machine, until Ctrl-C. */
export const upCommand = new Command('up')
  .alias('start')
  .description('run fleetscore on this machine: dev server, workers, schedules, and one run of the latest window')
  .option('--once', 'exit after the first run instead of serving the schedule')
  .option('--devices <n>', 'demo fleet size when the store is empty', '200')
  .option('--sensors <n>', 'demo sensors per device', '8')
  .option('--hours <n>', 'demo hours of aggregates, ending with the latest window past its settle time', '24')
  .action(async (raw: Record<string, unknown>, command: Command) => {
    const options = parseOptions(command, optionsSchema, raw);
    const endOfLife = nodeEndOfLifeNotice(process.versions.node, Date.now());
    if (endOfLife) say(endOfLife);
    // The summary is what a user reads here; worker state changes would drown it (FLEETSCORE_LOG_LEVEL=INFO shows them).
    installRuntime({ quiet: true });
    const declared = loadSchedules(undefined);
    const [schedule] = declared.schedules;
    if (!schedule) throw new Error(`${declared.file} declares no schedule`);
    const input = scheduledRunInput(schedule);
    // Fixed once, so the demo's last hour and the first run agree even when the clock crosses an hour meanwhile; the
    // last window past its settle time (at 13:03 that is 11:00, which the run accepts, not 12:00, which it refuses).
    const settleMs = durationMs(input.settle ?? RUN_DEFAULTS.settle) ?? 0;
    const window = latestScoreableWindow(Date.now(), schedule.windowHours, settleMs);
    let target = temporalTarget();
    let server: DevServer | undefined;
    const workers: PoolWorker[] = [];
    let running: Promise<unknown> | undefined;
    let workerConnection: NativeConnection | undefined;
    try {
      if (!(await isReachable(target))) {
        // Only a local address gets a dev server; a remote one that does not answer is an error to report.
        const local = /^(?:127\.0\.0\.1|localhost):(\d+)$/.exec(target.address);
        if (!local) {
          throw new TemporalUnreachable(target, await describeUnreachable(target.address, CONNECT_TIMEOUT_MS, ''));
        }
        const dbFile = join(config().dataDir, 'temporal.db');
        say(`starting the Temporal dev server on ${target.address} (SQLite ${dbFile})`);
        // Out of the terminal's process group: a Ctrl-C drains the workers first, then this stops the server.
        server = await startDevServer({ dbFile, port: Number(local[1]), uiPort: config().uiPort, detached: true });
        target = temporalTarget({ address: server.address }, 'the dev server fleetscore up started');
      }
      const uiBase = webUiBase();
      say(`Temporal at ${target.address}, namespace ${target.namespace}; Web UI ${uiBase}`);
      const { client, connection } = await connectClient(target);
      try {
        const added = await ensureSearchAttributes(connection, target.namespace);
        if (added.length) say(`registered search attributes ${added.join(', ')}`);

        const store = openStore(input.store);
        if (Object.keys((await readIndex(store)).devices).length === 0) {
          say(
            `store ${store.uri} is empty: seeding a demo fleet of ${options.devices} devices x ${options.sensors} sensors x ${options.hours} h`,
          );
          const seeded = await seedDemoFleet(store, {
            devices: options.devices,
            sensors: options.sensors,
            hours: options.hours,
            endMs: window.endMs,
          });
          say(
            `seeded ${seeded.rows} rows with ${seeded.anomalies} injected anomalies; models: ${seeded.models.cpu} cpu, ${seeded.models.gpu} gpu`,
          );
        }

        workerConnection = await connectWorker(target);
        for (const pool of POOLS) {
          // One machine has no GPU worker host: the gpu pool runs here, on CUDA if present, else on CPU.
          const worker = await createPoolWorker({
            pool,
            connection: workerConnection,
            namespace: target.namespace,
            gpuFallback: 'cpu',
          });
          say(worker.providers.decision);
          workers.push(worker);
        }
        running = Promise.all(workers.map((w) => w.worker.run()));

        for (const change of await applySchedules(client, declared.schedules, { scope: declared.scope })) {
          say(`schedule ${change.id}: ${change.action} (${change.reason})`);
          if (change.notice) say(change.notice);
        }

        // Asked before the start: this process's workers poll already, so a run it starts moves on at once.
        const joined = await openRunStart(client, runWorkflowId(input.store, window.id));
        const standing = joined ? undefined : await standingCommit(store, window.id);
        const serve = (): void => {
          if (options.once) {
            for (const w of workers) w.worker.shutdown();
          } else {
            say(`serving schedule ${schedule.id} (${uiBase}/namespaces/${target.namespace}/schedules); Ctrl-C to stop`);
          }
        };
        if (standing) {
          const url = runUiUrl(uiBase, target.namespace, standing.workflowId, standing.runId);
          const shown = {
            ...standing.counts,
            window: window.id,
            manifest: keys.manifest(window.id),
            failures: listFailures(standing.devices),
          };
          process.stdout.write(`${renderSummary(shown, store.uri, url)}\n`);
          serve();
        } else {
          say(`scoring the most recent window past its settle time, ${window.id}`);
          const handle = await startRun(client, { ...input, window: window.id });
          const url = runUiUrl(uiBase, target.namespace, handle.workflowId, handle.firstExecutionRunId);
          if (joined) await sayJoined(handle, window.id, joined, url);
          // Ctrl-C while it runs (waiting for input, say) stops the workers; the run stays open on the server, and the
          // wait for its result is cancelled, so no retry of it outlives the connection.
          const waiting = new AbortController();
          // The SDK adds an abort listener to the signal for each call made under it and never removes it: one per
          // long poll of the result (about every 20 s while the run waits for its input), which made Node warn of a
          // leak past ten. They go with the signal once the wait is over.
          setMaxListeners(0, waiting.signal);
          const summary = await Promise.race([
            connection.withAbortSignal(waiting.signal, () => handle.result()),
            running.then(() => undefined),
          ]);
          waiting.abort();
          if (summary === undefined) {
            say(
              `stopped before the run of window ${window.id} ended: it stays open in Temporal (${url}) and carries on ` +
                'when workers poll again (`npm start`)',
            );
          } else {
            process.stdout.write(`${renderSummary(summary, store.uri, url)}\n`);
            serve();
          }
        }
        // Ctrl-C / SIGTERM: the SDK runtime shuts the workers down gracefully, and run() resolves.
        await running;
      } finally {
        await connection.close();
      }
    } finally {
      // On an error, drain the workers before the sessions they use are released and the server stops.
      for (const w of workers) if (w.worker.getState() === 'RUNNING') w.worker.shutdown();
      await running;
      await Promise.all(workers.map((w) => w.close()));
      await workerConnection?.close();
      if (server) {
        say('stopping the Temporal dev server');
        await server.stop();
      }
    }
    say(
      server
        ? `stopped cleanly: workers drained, dev server down (its history stays in ${join(config().dataDir, 'temporal.db')}, ` +
            `the store in ${input.store}); \`npm start\` carries on from there`
        : `stopped cleanly: workers drained; Temporal at ${target.address} keeps running, and so does the schedule ` +
            `${schedule.id} there: start workers (\`npm start\` or \`fleetscore worker\`) or pause it`,
    );
  });

/**
 * The window's committed manifest when it stands for the window as it is now (its input, and the models the index
 * pins, as its run read them), so `up` shows it instead of scoring the window again at every start; undefined
 * otherwise, having said why a committed window is scored again.
 */
async function standingCommit(store: ObjectStore, window: string): Promise<Manifest | undefined> {
  const manifest = await readManifest(store, window);
  if (!manifest) return undefined;
  const changes = await changesSinceCommit(store, manifest, await readIndex(store));
  const committed = `window ${window} was committed at ${manifest.committedAt} by run ${manifest.runId}`;
  if (changes.length > 0) {
    say(`${committed}, but ${changes.join(' and ')}: scoring it again`);
    return undefined;
  }
  say(
    `${committed}, and its input and models are as that run read them: showing that commit, not scoring it ` +
      `again (\`fleetscore runs start ${window}\` would)`,
  );
  return manifest;
}

/**
 * When the workflow `workflowId` has a run open now (a start with that id joins it rather than starting one), the
 * time that run started; otherwise undefined.
 */
async function openRunStart(client: Client, workflowId: string): Promise<Date | undefined> {
  try {
    const run = await client.workflow.getHandle(workflowId).describe();
    return run.status.name === 'RUNNING' ? run.startTime : undefined;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

/**
 * Says that `up` follows the window's run that was already open (one an earlier `up` left waiting for its input,
 * say), and whether it still waits: the workers replay what that run did without logging it again, so without
 * these lines `up` would show nothing until the run moves on.
 */
async function sayJoined(handle: WorkflowHandle, window: string, startTime: Date, url: string): Promise<void> {
  say(`window ${window} already has an open run, started ${startTime.toISOString()}: following it (${url})`);
  try {
    const progress = await handle.query(progressQuery);
    if (progress.input) say(`that run is ${progressStatus(progress)}`);
  } catch (err) {
    // Following the run does not need its progress: say why it is unknown and carry on.
    say(`could not ask that run for its progress: ${messageOf(err)}`);
  }
}
