import type { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { SCORING_WORKFLOW, TASK_QUEUES } from '../../lib/shared/names';
import { DEFAULT_SCOPE } from '../../schedules/schedule-declaration';
import {
  ACTION_MEMO_KEY,
  applySchedules,
  compileSchedule,
  MANAGED_BY,
  type ScheduleChange,
} from '../../schedules/schedule-reconciler';
import { startTemporal } from '../support/temporal-env';
import { testSchedule } from '../support/test-schedule';

jest.setTimeout(120_000);

let env: TestWorkflowEnvironment;
let client: Client;

beforeAll(async () => {
  env = await startTemporal();
  client = env.client;
});

afterAll(async () => {
  await env?.teardown();
});

const summary = (changes: ScheduleChange[]) => Object.fromEntries(changes.map((c) => [c.id, c.action]));

/** Waits until visibility lists these schedules: listing is eventually consistent, describe is not. */
async function waitForListed(ids: string[]): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const listed = new Set<string>();
    for await (const s of client.schedule.list()) listed.add(s.scheduleId);
    if (ids.every((id) => listed.has(id))) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`schedules ${ids.join(', ')} never showed up in the list`);
}

describe('applySchedules', () => {
  const hourly = testSchedule('rec-hourly');
  const daily = testSchedule('rec-daily', {
    windowHours: 24,
    spec: { intervals: [{ every: '24h', offset: '1h' }] },
    paused: true,
  });

  it('plans without changing anything on a dry run', async () => {
    const changes = await applySchedules(client, [hourly, daily], { dryRun: true });
    expect(summary(changes)).toEqual({ 'rec-hourly': 'created', 'rec-daily': 'created' });
    await expect(client.schedule.getHandle('rec-hourly').describe()).rejects.toThrow();
  });

  it('creates the declared schedules with a scoringRun action that derives its window from the schedule', async () => {
    const changes = await applySchedules(client, [hourly, daily]);
    expect(summary(changes)).toEqual({ 'rec-hourly': 'created', 'rec-daily': 'created' });

    const d = await client.schedule.getHandle('rec-hourly').describe();
    expect(d.memo).toEqual({ managedBy: MANAGED_BY, scope: DEFAULT_SCOPE });
    expect(d.action).toMatchObject({
      type: 'startWorkflow',
      workflowType: SCORING_WORKFLOW,
      taskQueue: TASK_QUEUES.cpu,
      workflowId: 'rec-hourly',
    });
    expect(d.action.args).toEqual([
      {
        store: '/tmp/fleetscore-test-store',
        scheduleId: 'rec-hourly',
        windowHours: 1,
        shardSize: 500,
        maxParallelShards: 8,
        // The run waits as long after its window's end as the schedule does: the offset, 5 minutes.
        settle: 300_000,
      },
    ]);
    expect((d.action.args?.[0] as Record<string, unknown>).window).toBeUndefined();
    expect(d.action.memo?.[ACTION_MEMO_KEY]).toMatchObject({
      managedBy: MANAGED_BY,
      declarationHash: compileSchedule(hourly).hash,
    });
    expect(d.spec.intervals).toEqual([{ every: 3_600_000, offset: 300_000 }]);
    expect(d.policies).toMatchObject({ overlap: 'BUFFER_ONE', catchupWindow: 7_200_000 });
    expect(d.state.paused).toBe(false);
    // Runs fire 5 minutes past the hour (plus up to 30 s of jitter).
    for (const t of d.info.nextActionTimes) expect(t.getUTCMinutes()).toBe(5);

    expect((await client.schedule.getHandle('rec-daily').describe()).state.paused).toBe(true);
  });

  it('changes nothing when applied again', async () => {
    const changes = await applySchedules(client, [hourly, daily]);
    expect(summary(changes)).toEqual({ 'rec-hourly': 'unchanged', 'rec-daily': 'unchanged' });
  });

  it('keeps a hand-set pause until the declaration changes, then applies the declared state', async () => {
    await client.schedule.getHandle('rec-hourly').pause('maintenance');
    expect(summary(await applySchedules(client, [hourly, daily]))['rec-hourly']).toBe('unchanged');
    expect((await client.schedule.getHandle('rec-hourly').describe()).state).toMatchObject({
      paused: true,
      note: 'maintenance',
    });

    const changed = testSchedule('rec-hourly', { run: { ...hourly.run, shardSize: 250 } });
    const changes = await applySchedules(client, [changed, daily]);
    expect(changes.find((c) => c.id === 'rec-hourly')).toMatchObject({
      action: 'updated',
      reason: expect.stringContaining('declaration changed'),
    });
    expect(summary(changes)['rec-daily']).toBe('unchanged');
    const d = await client.schedule.getHandle('rec-hourly').describe();
    expect(d.state.paused).toBe(false);
    expect((d.action.args?.[0] as Record<string, unknown>).shardSize).toBe(250);
    expect(d.action.memo?.[ACTION_MEMO_KEY]).toMatchObject({ declarationHash: compileSchedule(changed).hash });
    expect(summary(await applySchedules(client, [changed, daily]))).toEqual({
      'rec-hourly': 'unchanged',
      'rec-daily': 'unchanged',
    });
  });

  it('reverts a schedule edited on the server behind its declaration', async () => {
    const changed = testSchedule('rec-hourly', { run: { ...hourly.run, shardSize: 250 } });
    await client.schedule.getHandle('rec-hourly').update((prev) => ({
      spec: prev.spec,
      action: { ...prev.action, taskQueue: 'someone-elses-queue' },
      policies: prev.policies,
      state: prev.state,
    }));
    const changes = await applySchedules(client, [changed, daily]);
    expect(changes.find((c) => c.id === 'rec-hourly')).toMatchObject({
      action: 'updated',
      reason: expect.stringContaining('action.taskQueue'),
    });
    expect((await client.schedule.getHandle('rec-hourly').describe()).action.taskQueue).toBe(TASK_QUEUES.cpu);
  });

  it('deletes managed schedules no longer declared and leaves unmanaged ones alone', async () => {
    await client.schedule.create({
      scheduleId: 'someone-elses',
      spec: { intervals: [{ every: '1h' }] },
      action: { type: 'startWorkflow', workflowType: SCORING_WORKFLOW, taskQueue: 'elsewhere', args: [] },
      state: { paused: true },
    });
    await waitForListed(['rec-hourly', 'rec-daily', 'someone-elses']);

    const changed = testSchedule('rec-hourly', { run: { ...hourly.run, shardSize: 250 } });
    const dry = await applySchedules(client, [changed], { dryRun: true });
    expect(summary(dry)).toEqual({ 'rec-hourly': 'unchanged', 'rec-daily': 'deleted' });
    await client.schedule.getHandle('rec-daily').describe();

    const changes = await applySchedules(client, [changed]);
    expect(summary(changes)).toEqual({ 'rec-hourly': 'unchanged', 'rec-daily': 'deleted' });
    await expect(client.schedule.getHandle('rec-daily').describe()).rejects.toThrow();
    expect((await client.schedule.getHandle('someone-elses').describe()).action.taskQueue).toBe('elsewhere');
  });

  it('refuses, changing nothing, when a declared id belongs to a schedule it does not manage', async () => {
    const taken = testSchedule('someone-elses');
    const extra = testSchedule('rec-extra');
    await expect(applySchedules(client, [taken, extra])).rejects.toThrow(
      /"someone-elses" exists on the server but is not managed by fleetscore/,
    );
    await expect(client.schedule.getHandle('rec-extra').describe()).rejects.toThrow();
    expect((await client.schedule.getHandle('someone-elses').describe()).action.taskQueue).toBe('elsewhere');
  });

  it('names the open runs that still score the previous store when a declaration moves the schedule', async () => {
    const id = 'rec-moved';
    const scope = 'moved';
    const before = testSchedule(id, { run: { ...hourly.run, store: '/tmp/fleetscore-old-store' } });
    await applySchedules(client, [before], { scope });
    const handle = client.schedule.getHandle(id);
    try {
      // A run it starts now (no worker polls here: it stays open), with the old store.
      await handle.trigger();
      let recent = (await handle.describe()).info.recentActions;
      for (let i = 0; i < 100 && recent.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        recent = (await handle.describe()).info.recentActions;
      }
      const workflowId = recent[0]!.action.workflow.workflowId;
      const notice =
        `${id} has 1 open run(s) started before this change that score a store it no longer declares: they ` +
        `carry on there; \`fleetscore runs cancel --workflow-id ID\` stops one (${workflowId} ` +
        `/tmp/fleetscore-old-store)`;
      const movedTo = (store: string) => ({ ...before, run: { ...before.run, store } });
      expect(await applySchedules(client, [movedTo('/tmp/fleetscore-middle-store')], { scope })).toEqual([
        expect.objectContaining({ action: 'updated', notice }),
      ]);
      // Moved again: the run still scores the store it started with, not the one the schedule held since.
      expect(await applySchedules(client, [movedTo('/tmp/fleetscore-new-store')], { scope, dryRun: true })).toEqual([
        expect.objectContaining({ action: 'updated', notice }),
      ]);
      // Back to the run's store, written another way: nothing open scores another store.
      const [back] = await applySchedules(client, [movedTo('file:///tmp/fleetscore-old-store')], { scope });
      expect(back).toMatchObject({ action: 'updated' });
      expect(back!.notice).toBeUndefined();
      await client.workflow.getHandle(workflowId).terminate('test over');
    } finally {
      await handle.delete();
    }
  });

  it('rejects an invalid declaration before touching the server', async () => {
    await expect(applySchedules(client, [testSchedule('rec-bad', { catchupWindow: 'soon' as never })])).rejects.toThrow(
      /schedule "rec-bad" catchupWindow: catchupWindow must be a duration/,
    );
  });
});
