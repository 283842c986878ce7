/**
 * One window run twice at once, and again after it was committed. The rule (docs/operations.md): every run
 * writes its shard files under its own folder (`predictions/window=W/run=<run id>/`), and the manifest, written
 * last, lists only its own run's files; so concurrent runs never mix, the run that started last is the window's
 * commit whatever order they finish in (the commit fence), and a re-run replaces the window whole. Each case checks the committed window against a
 * fault-free run, row for row, and that every shard file the manifest lists belongs to the committed plan.
 */
import { ScheduleOverlapPolicy, type WorkflowHandle } from '@temporalio/client';
import { setTimeout as sleep } from 'node:timers/promises';
import { keys } from '../../lib/shared/keys';
import { SCORING_WORKFLOW } from '../../lib/shared/names';
import type { RunSummary } from '../../lib/shared/run-types';
import { parseWindow } from '../../lib/shared/window';
import { backfillRange } from '../../schedules/backfill-range';
import { measureFault, useFaultRig, WINDOW } from './support/fault-rig';
import { CLEAN } from './support/fault-record';

jest.setTimeout(300_000);

const rig = useFaultRig({ devices: 3000, sensors: 4, shardSize: 500 });

/** The committed manifest is the run that started last, and lists only files of that run. */
async function expectOnePlan(runIds: string[]): Promise<void> {
  const { manifest } = await rig.committed();
  expect(manifest.runId).toBe(runIds[runIds.length - 1]);
  const prefix = keys.runPrefix(WINDOW, manifest.runId);
  for (const s of manifest.shards) expect(s.predictions?.startsWith(prefix)).toBe(true);
}

test('two runs of one window at once, with different shard sizes', async () => {
  const runIds: string[] = [];
  const result = await measureFault(rig, 'same window twice at once', 'two manual runs', async () => {
    await rig.startWorkers(2);
    const a = await rig.start('twice-a', { shardSize: 500 });
    const b = await rig.start('twice-b', { shardSize: 700 });
    const summaries = await Promise.all([rig.result(a), rig.result(b)]);
    runIds.push(...(await Promise.all([a, b].map(async (h) => (await h.describe()).runId))));
    const completed = summaries.filter((s) => s.scored === rig.options.devices).length;
    return { injected: 1, runs: 2, completed, summary: summaries[1] };
  });
  expect(result.record.runsCompleted).toBe(2);
  expect(result).toMatchObject(CLEAN);
  await expectOnePlan(runIds);
});

test('a backfill (overlap allow-all) of a window while a live run scores it', async () => {
  const runIds: string[] = [];
  const scheduleId = `faults-backfill-${Date.now()}`;
  const { start, end } = backfillRange(
    { windowHours: 1, offsetMs: 5 * 60_000 },
    parseWindow(WINDOW).startMs,
    parseWindow(WINDOW).startMs + 3_600_000,
  );
  const { window: _w, ...scheduled } = rig.input({ shardSize: 700 });
  const schedule = await rig.client.schedule.create({
    scheduleId,
    spec: { intervals: [{ every: '1h', offset: '5m' }] },
    action: { type: 'startWorkflow', workflowType: SCORING_WORKFLOW, taskQueue: rig.taskQueue, args: [scheduled] },
    policies: { overlap: ScheduleOverlapPolicy.ALLOW_ALL },
    state: { paused: true },
  });
  try {
    const result = await measureFault(rig, 'same window twice at once', 'backfill over a live run', async () => {
      await rig.startWorkers(2);
      const live = await rig.start('live');
      await rig.waitForShard(live, { shardsDone: 0 });
      await schedule.backfill([{ start, end, overlap: ScheduleOverlapPolicy.ALLOW_ALL }]);
      let backfilled: WorkflowHandle | undefined;
      for (let i = 0; i < 200 && !backfilled; i++) {
        for await (const wf of rig.client.workflow.list({ query: `TemporalScheduledById = '${scheduleId}'` })) {
          backfilled = rig.client.workflow.getHandle(wf.workflowId, wf.runId);
        }
        if (!backfilled) await sleep(100);
      }
      if (!backfilled) throw new Error('the backfilled run did not appear');
      const summaries: RunSummary[] = await Promise.all([rig.result(live), rig.result(backfilled)]);
      runIds.push(...(await Promise.all([live, backfilled].map(async (h) => (await h.describe()).runId))));
      expect(summaries[1]!.window).toBe(WINDOW);
      const completed = summaries.filter((s) => s.scored === rig.options.devices).length;
      return { injected: 1, runs: 2, completed, summary: summaries[0] };
    });
    expect(result.record.runsCompleted).toBe(2);
    expect(result).toMatchObject(CLEAN);
    await expectOnePlan(runIds);
  } finally {
    await schedule.delete();
  }
});

test('a re-run after the window was committed replaces it whole', async () => {
  let firstPlan = '';
  const result = await measureFault(rig, 're-run of a committed window', 'after commit', async () => {
    await rig.startWorkers(2);
    await rig.result(await rig.start('first'));
    firstPlan = (await rig.committed()).manifest.runId;
    const again = await rig.start('again', { shardSize: 700 });
    const summary = await rig.result(again);
    return { injected: 1, runs: 2, completed: 2, summary };
  });
  expect(result).toMatchObject(CLEAN);
  const { manifest } = await rig.committed();
  expect(manifest.runId).not.toBe(firstPlan);
  // The first commit's files are still there but listed by no manifest: readers ignore them.
  expect((await rig.store.list(keys.runPrefix(WINDOW, firstPlan))).length).toBeGreaterThan(0);
  expect(manifest.shards.every((s) => !s.predictions?.includes(firstPlan))).toBe(true);
  const manifests = (await rig.store.list(keys.predictionsPrefix(WINDOW))).filter((k) => k.endsWith('_manifest.json'));
  expect(manifests).toEqual([keys.manifest(WINDOW)]);
});
