/**
 * The quick start as a user runs it: `npm start -- --once` in a fresh data folder starts a real Temporal dev
 * server, seeds the demo fleet, runs the workers and the latest window, and exits. Then the CLI reads what
 * was committed, and every prediction is checked against the demo's ground truth and an independent score.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { tableFromIPC } from 'apache-arrow';
import { decodePredictions, predictionRows } from '../../lib/arrow/predictions';
import { demoFeatureNames } from '../../lib/demo/demo-ids';
import { trainDemoModel } from '../../lib/demo/demo-model';
import { readDemoTruth } from '../../lib/demo/demo-truth';
import { keys } from '../../lib/shared/keys';
import { readIndex } from '../../lib/models/model-index';
import { readManifest, type Manifest } from '../../lib/scoring/manifest';
import { nodeEndOfLifeNotice } from '../../lib/node-support';
import { durationMs } from '../../lib/shared/duration';
import { RUN_DEFAULTS } from '../../lib/shared/run-types';
import { latestScoreableWindow, scoreableAt, windowAt, windowIdOf } from '../../lib/shared/window';
import { LocalStore } from '../../lib/store/local-store';
import { isReachable, temporalTarget } from '../../lib/temporal/connection';
import { runWorkflowId } from '../../lib/temporal/runs';
import { close, referenceMahalanobis } from '../support/expected-scores';
import { freePort } from '../support/free-port';

jest.setTimeout(300_000);

const run = promisify(execFile);
const ROOT = resolve(__dirname, '..', '..');
/** The CLI as `npm start` runs it: one Node process (the tsx command would SIGKILL it on a signal it acks late). */
const CLI = join(ROOT, 'cli', 'fleetscore.cjs');
const DEVICES = 25;
const SENSORS = 4;

let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-e2e-'));
  const { TEMPORAL_PROFILE: _p, FLEETSCORE_STORE: _s, ...rest } = process.env;
  env = {
    ...rest,
    FLEETSCORE_DATA_DIR: join(dir, 'data'),
    TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
    FLEETSCORE_UI_PORT: String(await freePort()),
  };
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The CLI on the suite's dev server address, with the data folder `data` (default: the first test's). */
function fleetscoreIn(data: string | undefined, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  const withData = data === undefined ? env : { ...env, FLEETSCORE_DATA_DIR: data };
  return run(process.execPath, [CLI, ...args], { cwd: ROOT, env: withData, maxBuffer: 64 * 1024 * 1024 });
}

function fleetscore(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return fleetscoreIn(undefined, ...args);
}

interface UpProcess {
  child: ChildProcessWithoutNullStreams;
  exited: Promise<number | null>;
  stderr(): string;
  /** Sends `signal` as the test would: to the process group when detached. */
  signal(signal: NodeJS.Signals): void;
  /** Waits until its stderr holds `text`; fails, with the stderr's tail, when it exits first or after 60 s. */
  until(text: string): Promise<void>;
}

/**
 * `fleetscore up ARGS` in the background with the data folder `data`; `detached` puts it in a process group of
 * its own, which a test signals as a whole, as a terminal's Ctrl-C does. `until` waits for a text on its stderr.
 */
function upIn(data: string, args: string[], detached = false): UpProcess {
  const child = spawn(process.execPath, [CLI, 'up', ...args], {
    cwd: ROOT,
    env: { ...env, FLEETSCORE_DATA_DIR: data },
    detached,
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const up = {
    child,
    exited,
    stderr: () => stderr,
    signal(signal: NodeJS.Signals): void {
      if (detached) process.kill(-child.pid!, signal);
      else child.kill(signal);
    },
    async until(text: string): Promise<void> {
      for (let i = 0; i < 240 && !stderr.includes(text); i++) {
        if (child.exitCode !== null || child.signalCode !== null) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      if (stderr.includes(text)) return;
      const state = child.exitCode !== null || child.signalCode !== null ? 'exited' : 'still running after 60 s';
      throw new Error(
        `fleetscore up ${state} without printing ${JSON.stringify(text)}; its stderr:\n${stderr.slice(-2000)}`,
      );
    },
  };
  ups.push(up);
  return up;
}

/** Every `up` a test started: one a failed expectation left running is stopped after the test (Ctrl-C, then kill). */
const ups: UpProcess[] = [];
afterEach(async () => {
  for (const up of ups.splice(0)) {
    if (up.child.exitCode !== null || up.child.signalCode !== null) continue;
    up.signal('SIGINT');
    const timer = setTimeout(() => up.signal('SIGKILL'), 30_000);
    await up.exited;
    clearTimeout(timer);
  }
});

test('npm start -- --once scores the latest window and commits predictions that match the ground truth', async () => {
  const start = await run(
    'npm',
    ['start', '--', '--once', '--devices', String(DEVICES), '--sensors', String(SENSORS), '--hours', '2'],
    {
      cwd: ROOT,
      env,
    },
  );
  expect(start.stderr).toContain('starting the Temporal dev server');
  expect(start.stderr).toContain('seeding a demo fleet');
  expect(start.stderr).toContain('schedule fleetscore-hourly: created');
  // The run it started is its own, though its workers took it up at once: it joined nothing.
  expect(start.stderr).not.toContain('already has an open run');
  // On a Node past its end of life (CI runs this on the machine's Node 20 and on 24), said once; else not at all.
  const endOfLife = nodeEndOfLifeNotice(process.versions.node, Date.now());
  expect(start.stderr.split('past its end of life').length - 1).toBe(endOfLife ? 1 : 0);
  if (endOfLife) expect(start.stderr).toContain(`fleetscore: ${endOfLife}\n`);
  // Nothing a user cannot act on (the gpu pool runs no workflows on purpose), and a confirmed clean stop.
  expect(start.stderr).not.toContain('No workflows registered');
  expect(start.stderr).toMatch(/fleetscore: stopped cleanly: workers drained, dev server down/);
  const window = /^(\d{4}-\d\d-\d\dT\d\d)\s+25\s+25\s+0\s+0\s+1500\s+(\d+)$/m.exec(start.stdout);
  expect(window).not.toBeNull();
  const windowId = window![1]!;
  const store = new LocalStore(join(dir, 'data', 'store'));
  // The Web UI link is on the configured UI port, to the run of that window on that store.
  expect(start.stdout).toContain(
    `http://localhost:${env.FLEETSCORE_UI_PORT}/namespaces/default/workflows/${runWorkflowId(store.uri, windowId)}/`,
  );

  const manifest = (await readManifest(store, windowId)) as Manifest;
  expect(manifest.counts).toEqual({
    devices: DEVICES,
    scored: DEVICES,
    noData: 0,
    failed: 0,
    rows: DEVICES * 60,
    anomalies: Number(window![2]),
  });
  expect(new Set(manifest.shards.map((s) => s.pool))).toEqual(new Set(['cpu', 'gpu']));

  // Inputs, read back with a plain Arrow reader.
  const inputs = new Map<string, number[]>();
  for (const key of await store.list(keys.aggregatesPrefix(windowId))) {
    for (const r of tableFromIPC(await store.get(key))) {
      const row = r.toJSON() as Record<string, unknown>;
      inputs.set(
        `${String(row.device_id)}@${Number(row.ts)}`,
        demoFeatureNames(SENSORS).map((f) => Number(row[f])),
      );
    }
  }
  const truth = await readDemoTruth(store, windowId);
  const anomalous = new Set(truth!.anomalies.map((a) => `${a.device}@${a.ts}`));
  const seen = new Set<string>();
  for (const shard of manifest.shards) {
    for (const row of predictionRows(decodePredictions(await store.get(shard.predictions!)))) {
      const id = `${row.device}@${row.ts}`;
      expect(seen.has(id)).toBe(false);
      seen.add(id);
      const model = trainDemoModel(1, Number(row.device.slice(4)), SENSORS);
      expect(close(row.score, referenceMahalanobis(inputs.get(id)!, model.mean32, model.precision32))).toBe(true);
      expect(row.isAnomaly).toBe(anomalous.has(id));
    }
  }
  expect(seen).toEqual(new Set(inputs.keys()));

  // The CLI reads the same commit.
  const runs = JSON.parse((await fleetscore('runs', 'list', '--json')).stdout) as Manifest[];
  expect(runs.map((r) => r.window)).toEqual([windowId]);
  const shown = JSON.parse(
    (await fleetscore('predictions', 'show', '--window', windowId, '--anomalies', '--limit', '100000', '--json'))
      .stdout,
  ) as { device: string; ts: number }[];
  expect(new Set(shown.map((p) => `${p.device}@${p.ts}`))).toEqual(anomalous);

  // A list cut short says so and how to see it all, on stderr, so --json stays valid.
  const page = await fleetscore('predictions', 'show', windowId, '--limit', '5', '--json');
  expect(JSON.parse(page.stdout)).toHaveLength(5);
  expect(page.stderr).toBe(
    `fleetscore: showing the first 5 of ${DEVICES * 60} rows; --limit ${DEVICES * 60} shows them all\n`,
  );
  const table = await fleetscore('predictions', 'show', '--window', windowId, '--device', 'dev-00002', '--limit', '3');
  expect(table.stdout.trim().split('\n')).toHaveLength(5);
  expect(table.stderr).toBe('fleetscore: showing the first 3 of 60 rows; --limit 60 shows them all\n');
  // A device the window does not have is an error, not an empty answer.
  const unknown = (await fleetscore('predictions', 'show', windowId, '--device', 'unknown-device').catch(
    (e: unknown) => e,
  )) as { code: number; stdout: string; stderr: string };
  expect(unknown.code).toBe(1);
  expect(unknown.stdout).toBe('');
  expect(unknown.stderr).toBe(
    `fleetscore: device "unknown-device" is not in window ${windowId} (${DEVICES} devices); ` +
      '`fleetscore models list` lists the devices with a model\n',
  );
});

test('a device that fails is one line on the console and one in the summary, with no stack', async () => {
  // A fleet of its own, seeded through the CLI from three hours back to the next hour: the window `up` scores
  // (the last one past its 5-minute settle time) is among them whenever the hour turns meanwhile; at 16:03 it is
  // 14:00, at 16:06 it is 15:00.
  const data = join(dir, 'failing');
  const failing = { ...env, FLEETSCORE_DATA_DIR: data };
  const end = windowIdOf(Math.ceil(Date.now() / 3_600_000) * 3_600_000 + 3_600_000);
  await fleetscoreIn(data, 'demo', 'seed', '--devices', '5', '--sensors', '3', '--hours', '5', '--end', end);
  // Corrupt one registered model: its checksum no longer matches, so only that device fails.
  const store = new LocalStore(join(data, 'store'));
  const entry = (await readIndex(store)).devices['dev-00003']!;
  await writeFile(join(data, 'store', keys.modelOnnx('dev-00003', entry.version)), 'not a model');
  const again = await run('npm', ['start', '--', '--once'], { cwd: ROOT, env: failing });
  expect(again.stdout).toMatch(/^failed devices:\n  dev-00003: ModelChecksumMismatch: /m);
  const lines = again.stderr.split('\n').filter((l) => l.includes('dev-00003'));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(
    / WARN device failed window=\S+ shard=0 device=dev-00003 error=ModelChecksumMismatch reason="/,
  );
  expect(again.stderr).not.toMatch(/\n\s+at /);
  expect(again.stderr).not.toContain('seeding');
});

/**
 * Waits, where the window `npm start` scores (the last one past its 5-minute settle time) turns within `ms`, until
 * just after it turns: a test that starts `npm start` several times expects each to find the same window.
 */
async function clearOfWindowTurn(ms: number): Promise<void> {
  const settleMs = durationMs(RUN_DEFAULTS.settle) ?? 0;
  const next = windowAt(latestScoreableWindow(Date.now(), 1, settleMs).endMs);
  const left = scoreableAt(next, settleMs) - Date.now();
  if (left < ms) await new Promise((r) => setTimeout(r, left + 10_000));
}

test('npm start again shows the window it committed while its input and models are unchanged, else scores it again', async () => {
  // Its three starts take one to two minutes: at 01:04 the first scored 23:00 and the third 00:00.
  await clearOfWindowTurn(180_000);
  const data = join(dir, 'again');
  const again = { ...env, FLEETSCORE_DATA_DIR: data };
  const end = windowIdOf(Math.ceil(Date.now() / 3_600_000) * 3_600_000 + 3_600_000);
  await fleetscoreIn(data, 'demo', 'seed', '--devices', '5', '--sensors', '3', '--hours', '5', '--end', end);
  const table = /^(\d{4}-\d\d-\d\dT\d\d)\s+5\s+5\s+0\s+0\s+300\s+\d+$/m;
  const first = await run('npm', ['start', '--', '--once'], { cwd: ROOT, env: again });
  const windowId = table.exec(first.stdout)?.[1];
  expect(windowId).toBeDefined();
  const store = new LocalStore(join(data, 'store'));
  const committed = (await readManifest(store, windowId!))!;

  // Started again within the hour: the same window, committed and unchanged, is shown from its manifest.
  const shown = await run('npm', ['start', '--', '--once'], { cwd: ROOT, env: again });
  expect(shown.stderr).toContain(
    `window ${windowId} was committed at ${committed.committedAt} by run ${committed.runId}, and its input and models ` +
      `are as that run read them: showing that commit, not scoring it again (\`fleetscore runs start ${windowId}\` would)`,
  );
  expect(shown.stderr).not.toContain('scoring the most recent window');
  expect(table.exec(shown.stdout)?.[0]).toBe(table.exec(first.stdout)?.[0]);
  expect(shown.stdout).toContain(`/workflows/${encodeURIComponent(committed.workflowId)}/${committed.runId}/history`);
  expect((await readManifest(store, windowId!))!.runId).toBe(committed.runId);

  // A part written again since (a producer's late rewrite): the window is scored again, by a run of its own.
  const part = (await store.list(keys.aggregatesPrefix(windowId!)))[0]!;
  const later = new Date(Date.now() + 5_000);
  await utimes(join(data, 'store', part), later, later);
  const rescored = await run('npm', ['start', '--', '--once'], { cwd: ROOT, env: again });
  expect(rescored.stderr).toContain(
    `window ${windowId} was committed at ${committed.committedAt} by run ${committed.runId}, but its input changed ` +
      'since (1 part replaced): scoring it again',
  );
  expect(table.exec(rescored.stdout)?.[1]).toBe(windowId);
  expect((await readManifest(store, windowId!))!.runId).not.toBe(committed.runId);
}, 480_000);

test('CLI errors are one clear line and exit 1, without a stack trace', async () => {
  const err = (await fleetscore('runs', 'show', 'yesterday').catch((e: unknown) => e)) as {
    code: number;
    stderr: string;
  };
  expect(err.code).toBe(1);
  expect(err.stderr).toContain('fleetscore: WINDOW: not a window: "yesterday"');
  expect(err.stderr).not.toMatch(/\n\s+at /);
});

test('fleetscore up serves the schedule until SIGINT, then stops the workers and the dev server it started', async () => {
  const address = env.TEMPORAL_ADDRESS!;
  const up = upIn(join(dir, 'serve'), ['--devices', '5', '--hours', '1']);
  await up.until('serving schedule fleetscore-hourly');
  expect(up.stderr()).toContain('Ctrl-C to stop');
  expect(await isReachable(temporalTarget({ address }))).toBe(true);
  up.signal('SIGINT');
  expect(await up.exited).toBe(0);
  expect(up.stderr()).toContain('stopping the Temporal dev server');
  expect(up.stderr()).toMatch(/fleetscore: stopped cleanly: workers drained, dev server down \(its history stays in /);
  expect(up.stderr()).not.toContain('No workflows registered');
  expect(await isReachable(temporalTarget({ address }), 1_000)).toBe(false);
});

test('Ctrl-C while the first run waits for its input stops cleanly and leaves the run open for the next start', async () => {
  // Models and aggregates of an old hour only: the latest window has no input, so its run waits (inputWait).
  const data = join(dir, 'waiting');
  await fleetscoreIn(
    data,
    'demo',
    'seed',
    '--devices',
    '3',
    '--sensors',
    '3',
    '--hours',
    '1',
    '--end',
    '2026-01-01T00',
  );
  const up = upIn(data, ['--once'], true);
  await up.until('waiting for the input of window');
  const window = /scoring the most recent window past its settle time, (\S+)\n/.exec(up.stderr())?.[1];
  expect(window).toBeDefined();
  expect(up.stderr()).toMatch(
    new RegExp(`WARN waiting for the input of window ${window} until \\S+Z \\(inputWait 15m\\) `),
  );
  up.signal('SIGINT');
  expect(await up.exited).toBe(0);
  const stderr = up.stderr();
  const workflowId = runWorkflowId(new LocalStore(join(data, 'store')).uri, window!);
  expect(stderr).toContain(`fleetscore: stopped before the run of window ${window} ended: it stays open in Temporal (`);
  expect(stderr).toContain(`/workflows/${workflowId}/`);
  // The workers drained before the dev server, which the terminal's signal did not reach, was stopped.
  expect(stderr).toMatch(
    /stopping the Temporal dev server\nfleetscore: stopped cleanly: workers drained, dev server down/,
  );
  expect(stderr).not.toMatch(/\n\s+at /);
  expect(await isReachable(temporalTarget({ address: env.TEMPORAL_ADDRESS! }), 1_000)).toBe(false);

  // The next start joins that run, whose workers replay its wait without logging it again: up says so itself.
  const again = upIn(data, ['--once'], true);
  await again.until('that run is waiting for input until');
  expect(again.stderr()).toContain(`fleetscore: window ${window} already has an open run, started `);
  expect(again.stderr()).toMatch(
    new RegExp(
      `that run is waiting for input until \\S+Z: 1 folder\\(s\\) empty, e\\.g\\. \\S+/aggregates/window=${window}/`,
    ),
  );
  again.signal('SIGINT');
  expect(await again.exited).toBe(0);
});
