/**
 * Worker faults aimed through the store gate: the gate holds one store request of a worker (a plan file, a model
 * file, a predictions file, the manifest), so the fault hits that worker at exactly that point of the activity,
 * however fast the activity is. The workers run the default stacked path (batched Mahalanobis inference, which
 * finishes a shard too fast to aim at by time), against a real MinIO:
 * - SIGKILL mid-shard, stacked: while the shard reads its models, and after inference while it writes its
 *   predictions. Temporal retries the shard after the heartbeat timeout; the shard is committed by attempt 2.
 * - SIGTERM while busy, stacked, while the shard reads its models: the worker finishes the shard (attempt 1) and
 *   exits 0.
 * - SIGKILL in planRun (plan files half written) and in commitRun (before the manifest is written, and after it
 *   was written but before commitRun heard back): the step runs again on another worker and rewrites the same
 *   keys, except a commit whose manifest already landed: its retry finds the run's own commit and writes nothing.
 *   Either way: one plan, one manifest naming the run, the reference's counts.
 * - SIGTERM in planRun and in commitRun: the worker finishes the step and exits 0; nothing is written twice.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { keys } from '../../lib/shared/keys';
import type { ScoringRunInput } from '../../lib/shared/run-types';
import { measureFault, storeRequests, useFaultRig, WINDOW } from './support/fault-rig';
import { waitUntil } from '../support/wait-until';
import { CLEAN } from './support/fault-record';
import { type WorkerProcess } from './support/worker-process';
import type { HeldRequest, HoldPhase, StoreRequest } from './support/store-gate';

jest.setTimeout(300_000);

// Every test starts cold workers as on a new host, which GET their models through the gate: the rig's workers keep
// no model files (a restarted worker would read its models from the host, and no model request would be held).
const rig = useFaultRig({
  devices: 1500,
  sensors: 4,
  shardSize: 250,
  s3: true,
  stacked: true,
  workerEnv: { FLEETSCORE_MODEL_FILES_DIR: 'off' },
});

/** Where in a shard a fault is aimed: the request held, and the shard it belongs to (of 6). */
const SHARD_POINTS = [
  ['reading its models, middle shard', 2, 'models'],
  ['writing its predictions, late shard', 4, 'predictions'],
] as const;

/** The run's quick steps: where a fault is aimed, the request held and when, and the write counted after. */
const STEP_POINTS = [
  ['planRun, plan files half written', storeRequests.planWrite(3), 'request', storeRequests.planWrite(0)],
  ['commitRun, before the manifest is written', storeRequests.manifestWrite, 'request', storeRequests.manifestWrite],
  ['commitRun, manifest written, reply lost', storeRequests.manifestWrite, 'response', storeRequests.manifestWrite],
] as const;

/** The request of `shard` to hold: the first model file read for its first device, or its predictions write. */
async function shardRequest(shard: number, at: 'models' | 'predictions'): Promise<(r: StoreRequest) => boolean> {
  if (at === 'predictions') return storeRequests.predictionsWrite(shard);
  const [first] = await rig.shardDevices(shard);
  return storeRequests.modelRead(first!);
}

/** Starts a run on two cold workers and waits until the gate holds `match`; returns the run, request and worker. */
async function startAndHold(
  id: string,
  match: (r: StoreRequest) => boolean,
  overrides: Partial<ScoringRunInput> = {},
  phase: HoldPhase = 'request',
): Promise<{ handle: Awaited<ReturnType<typeof rig.start>>; held: HeldRequest; victim: WorkerProcess }> {
  await rig.startWorkers(2);
  const caught = rig.gate!.hold(match, phase);
  const handle = await rig.start(id, overrides);
  const held = await caught;
  return { handle, held, victim: rig.workerOf(held) };
}

/**
 * SIGTERMs the worker whose request is held, lets the request go on a moment later (the worker has stopped
 * polling by then), starts a replacement, and returns the status the worker got for its request and its exit code.
 */
async function terminateWhileHeld(
  held: HeldRequest,
  victim: WorkerProcess,
): Promise<[number | undefined, number | null]> {
  victim.signal('SIGTERM');
  await sleep(1_000);
  const status = await held.release();
  await rig.startWorkers(1);
  const exitCode = await victim.exited;
  rig.workers.splice(rig.workers.indexOf(victim), 1);
  return [status, exitCode];
}

test.each(SHARD_POINTS)('stacked: SIGKILL of the worker %s', async (point, shard, at) => {
  const match = await shardRequest(shard, at);
  const result = await measureFault(rig, 'worker SIGKILL mid-shard, stacked', point, async () => {
    const { handle, held, victim } = await startAndHold('stacked-kill', match);
    await rig.killAndReplace(victim);
    held.drop();
    return { injected: 1, summary: await rig.result(handle) };
  });
  expect(result.record.runsCompleted).toBe(1);
  expect(result).toMatchObject(CLEAN);
  // The fault landed inside the shard: its killed attempt was retried, and the retry's files are the commit.
  const { manifest } = await rig.committed();
  expect(manifest.shards.find((s) => s.shard === shard)?.attempt).toBeGreaterThan(1);
});

test.each(SHARD_POINTS.slice(0, 1))(
  'stacked: SIGTERM of the worker %s: it finishes the shard and exits 0',
  async (point, shard, at) => {
    const match = await shardRequest(shard, at);
    let outcome: [number | undefined, number | null] = [undefined, null];
    const result = await measureFault(rig, 'worker SIGTERM while busy, stacked', point, async () => {
      // Nothing is meant to time out here: a long heartbeat timeout keeps the held shard from being retried.
      const { handle, held, victim } = await startAndHold('stacked-term', match, {
        timeouts: { shardHeartbeat: '30s' },
      });
      outcome = await terminateWhileHeld(held, victim);
      return { injected: 1, summary: await rig.result(handle) };
    });
    // The stopping worker got its request through, finished its shard (attempt 1) and exited cleanly.
    expect(outcome).toEqual([200, 0]);
    expect(result.record.runsCompleted).toBe(1);
    expect(result).toMatchObject(CLEAN);
    const { manifest } = await rig.committed();
    expect(manifest.shards.find((s) => s.shard === shard)?.attempt).toBe(1);
  },
);

test.each(STEP_POINTS)('SIGKILL of the worker running %s', async (point, match, phase, written) => {
  const gate = rig.gate!;
  const since = gate.forwarded.length;
  let runId = '';
  let victimLabel = '';
  const result = await measureFault(rig, 'worker SIGKILL in planRun / commitRun', point, async () => {
    const { handle, held, victim } = await startAndHold('step-kill', match, {}, phase);
    runId = handle.firstExecutionRunId;
    victimLabel = victim.label!;
    // In planRun, the other plan files land first: the killed attempt leaves the plan half written.
    if (point.startsWith('planRun')) {
      await waitUntil('five plan files are written', () => gate.succeeded(storeRequests.planWrite(), since) === 5);
    }
    // Killed first: a request dropped while its worker lives is simply sent again.
    await rig.killAndReplace(victim);
    held.drop();
    return { injected: 1, summary: await rig.result(handle) };
  });
  expect(result.record.runsCompleted).toBe(1);
  expect(result).toMatchObject(CLEAN);
  // The killed worker wrote shard 0's plan file, or the manifest when its reply was the part held, and not the
  // held write before it; the step then ran again on another worker and wrote the same keys (how often depends
  // on Temporal: a re-run step can itself be interrupted by a workflow task timeout on a loaded machine) -- except
  // a commit that had already written the manifest: its retry finds the run's own commit and writes nothing.
  const byVictim = (r: StoreRequest) => r.listener === victimLabel && written(r);
  const byOthers = (r: StoreRequest) => r.listener !== victimLabel && written(r);
  expect(gate.succeeded(byVictim, since)).toBe(point === 'commitRun, before the manifest is written' ? 0 : 1);
  if (point === 'commitRun, manifest written, reply lost') {
    expect(gate.succeeded(byOthers, since)).toBe(0);
    const commitLogs = await rig.store.list(keys.unitLogsPrefix(WINDOW, runId, 'commit'));
    const text = (await Promise.all(commitLogs.map((k) => rig.store.get(k)))).map((b) => Buffer.from(b)).join('');
    expect(text).toContain('"event":"already-committed"');
  } else {
    expect(gate.succeeded(byOthers, since)).toBeGreaterThanOrEqual(1);
  }
  // One plan folder (the input parts read and six shard files), one manifest, naming this run, with the
  // reference's counts.
  const { manifest } = await rig.committed();
  expect(manifest.runId).toBe(runId);
  expect(manifest.counts).toEqual(rig.reference!.manifest.counts);
  expect(await rig.store.list(`${keys.runPrefix(WINDOW, manifest.runId)}_plan/`)).toHaveLength(7);
  expect(await rig.manifestKeys()).toEqual([keys.manifest(WINDOW)]);
});

test.each(STEP_POINTS.slice(0, 2))(
  'SIGTERM of the worker running %s: it finishes the step and exits 0',
  async (point, match, phase, written) => {
    const gate = rig.gate!;
    const since = gate.forwarded.length;
    let outcome: [number | undefined, number | null] = [undefined, null];
    const result = await measureFault(rig, 'worker SIGTERM in planRun / commitRun', point, async () => {
      const { handle, held, victim } = await startAndHold('step-term', match, {}, phase);
      outcome = await terminateWhileHeld(held, victim);
      return { injected: 1, summary: await rig.result(handle) };
    });
    expect(outcome).toEqual([200, 0]);
    expect(result.record.runsCompleted).toBe(1);
    expect(result).toMatchObject(CLEAN);
    // The step ran once: its files were written once, and the window has one manifest.
    expect(gate.succeeded(written, since)).toBe(1);
    expect(await rig.manifestKeys()).toEqual([keys.manifest(WINDOW)]);
  },
);
