import { backfillRange } from '../../schedules/backfill-range';
import { fleetSchedules } from '../../schedules/fleet-schedules';
import { validateSchedules, type FleetSchedule } from '../../schedules/schedule-declaration';
import { compileSchedule, scheduledRunInput } from '../../schedules/schedule-reconciler';
import { TASK_QUEUES, SCORING_WORKFLOW } from '../../lib/shared/names';
import { InvalidScheduleDeclaration } from '../../lib/shared/errors';
import { testSchedule } from '../support/test-schedule';

const H = 3_600_000;

const hourly = (overrides: Partial<FleetSchedule> = {}): FleetSchedule =>
  testSchedule('fleetscore-hourly', {
    run: { store: '/tmp/store', shardSize: 500, maxParallelShards: 8 },
    ...overrides,
  });

/** The message of the InvalidScheduleDeclaration that validating `declared` throws. */
function invalid(declared: FleetSchedule[]): string {
  try {
    validateSchedules(declared);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidScheduleDeclaration);
    return (err as Error).message;
  }
  throw new Error('expected the declaration to be rejected');
}

describe('fleetSchedules', () => {
  it('declares valid schedules, storing into FLEETSCORE_STORE when set', () => {
    const declared = fleetSchedules({ FLEETSCORE_STORE: 's3://bucket/fleet' });
    expect(validateSchedules(declared)).toHaveLength(declared.length);
    expect(declared[0]).toMatchObject({ id: 'fleetscore-hourly', windowHours: 1, run: { store: 's3://bucket/fleet' } });
  });

  it('compiles to a scoringRun action on the cpu queue with no window and the schedule id set', () => {
    const { options } = compileSchedule(hourly());
    expect(options.spec).toEqual({ intervals: [{ every: H, offset: 5 * 60_000 }], timezone: 'UTC', jitter: 30_000 });
    expect(options.action).toMatchObject({
      workflowType: SCORING_WORKFLOW,
      taskQueue: TASK_QUEUES.cpu,
      workflowId: 'fleetscore-hourly',
    });
    expect(options.action.args).toEqual([
      {
        store: '/tmp/store',
        scheduleId: 'fleetscore-hourly',
        windowHours: 1,
        shardSize: 500,
        maxParallelShards: 8,
        settle: 5 * 60_000,
      },
    ]);
    expect(options.policies).toEqual({ overlap: 'BUFFER_ONE', catchupWindow: 2 * H });
  });

  it('hashes durations by value, so rewriting 1h as 60m changes nothing', () => {
    const a = compileSchedule(hourly()).hash;
    expect(compileSchedule(hourly({ spec: { intervals: [{ every: '60m', offset: 300_000 }] } })).hash).toBe(a);
    expect(
      compileSchedule(hourly({ run: { store: '/tmp/store', shardSize: 100, maxParallelShards: 8 } })).hash,
    ).not.toBe(a);
  });
});

describe('validateSchedules', () => {
  it('names the schedule and field of a bad duration', () => {
    const message = invalid([hourly({ spec: { intervals: [{ every: '1h', offset: 'five minutes' as never }] } })]);
    expect(message).toContain('schedule "fleetscore-hourly" spec.intervals[0].offset:');
    expect(message).toContain(`must be a duration like '1h'`);
  });

  it('rejects an unknown overlap policy and lists the known ones', () => {
    const message = invalid([hourly({ overlap: 'BUFFER_TWO' as never })]);
    expect(message).toContain('schedule "fleetscore-hourly" overlap: unknown overlap policy "BUFFER_TWO"');
    expect(message).toContain('BUFFER_ONE');
  });

  it('rejects duplicate ids', () => {
    const message = invalid([hourly(), hourly({ description: 'again' })]);
    expect(message).toContain('schedule "fleetscore-hourly" id: is declared more than once');
  });

  it('rejects an offset that is not shorter than the window', () => {
    const message = invalid([hourly({ spec: { intervals: [{ every: '1h', offset: '1h' }] } })]);
    expect(message).toContain(
      'schedule "fleetscore-hourly" spec.intervals[0].offset: must be shorter than the window (1h)',
    );
  });

  it('rejects a settle time longer than the offset, which would refuse every run the schedule starts', () => {
    const base = hourly();
    const message = invalid([hourly({ run: { ...base.run, settle: '10m' } })]);
    expect(message).toContain('schedule "fleetscore-hourly" run.settle: must be at most the offset ("5m"), got "10m"');
  });

  it('rejects an interval that does not match the window length', () => {
    const message = invalid([hourly({ id: 'two-hourly', windowHours: 2 })]);
    expect(message).toContain(
      'schedule "two-hourly" spec.intervals[0].every: must equal the window length (windowHours 2 = 2h)',
    );
  });

  it('rejects jitter of half a window or more, an unknown time zone and a bad run setting, all at once', () => {
    const message = invalid([
      hourly({ jitter: '30m', timezone: 'Mars/Olympus', run: { store: '/s', shardSize: 0, maxParallelShards: 8 } }),
    ]);
    expect(message).toContain('schedule "fleetscore-hourly" jitter: must be less than half the window');
    expect(message).toContain('schedule "fleetscore-hourly" timezone: must be an IANA time zone');
    expect(message).toContain('schedule "fleetscore-hourly" run.shardSize:');
  });

  it('names each unknown field by its own path, an unknown pool, a shard size over the limit and the file', () => {
    const schedule = {
      ...hourly(),
      cron: '5 * * * *',
      run: { store: '/s', shardSize: 20_001, maxParallelShards: 8, pool: 'tpu', shardsize: 5 },
    } as unknown as FleetSchedule;
    let message = '';
    try {
      validateSchedules([schedule], 'schedules/staging.ts');
    } catch (err) {
      expect(err).toMatchObject({ name: 'InvalidScheduleDeclaration', file: 'schedules/staging.ts' });
      message = (err as Error).message;
    }
    expect(message).toMatch(/^invalid schedule declaration in schedules\/staging\.ts:\n/);
    expect(message).toContain('schedule "fleetscore-hourly" cron: unknown field; the known ones are id, description');
    expect(message).toContain('schedule "fleetscore-hourly" run.shardsize: unknown field');
    expect(message).toContain('schedule "fleetscore-hourly" run.pool: unknown pool "tpu"; use one of cpu, gpu');
    expect(message).toContain('schedule "fleetscore-hourly" run.shardSize: must be a whole number from 1 to 20000');
  });

  it('accepts an aggregates layout it knows, passes it to the run, and names one it does not', () => {
    const partitioned = hourly({
      run: { store: '/s', shardSize: 500, maxParallelShards: 8, aggregatesLayout: 'device-partitioned' },
    });
    validateSchedules([partitioned]);
    expect(scheduledRunInput(partitioned).aggregatesLayout).toBe('device-partitioned');
    expect(scheduledRunInput(hourly()).aggregatesLayout).toBeUndefined();
    const bad = hourly({
      run: { store: '/s', shardSize: 500, maxParallelShards: 8, aggregatesLayout: 'by-hash' as never },
    });
    expect(invalid([bad])).toMatch(/schedule "fleetscore-hourly" run\.aggregatesLayout: .*device-partitioned/);
  });

  it('says a missing field is required', () => {
    const { windowHours: _windowHours, ...rest } = hourly();
    expect(invalid([rest as FleetSchedule])).toContain('schedule "fleetscore-hourly" windowHours: is required');
  });

  it('rejects more than one interval and a bad id', () => {
    const twoIntervals = hourly({ spec: { intervals: [{ every: '1h' }, { every: '1h' }] as never } });
    expect(invalid([twoIntervals])).toContain('spec.intervals: must hold exactly one interval');
    expect(invalid([hourly({ id: 'Fleet Hourly' })])).toContain('schedule "Fleet Hourly" id: must be lowercase');
  });
});

describe('backfillRange', () => {
  const t = (iso: string) => Date.parse(iso);

  it('maps windows [from, to) to the scheduled times that score them, with half a window of margin', () => {
    const range = backfillRange(
      { windowHours: 1, offsetMs: 5 * 60_000 },
      t('2026-11-21T10:00Z'),
      t('2026-11-21T13:00Z'),
    );
    expect(range.windowStarts.map((w) => new Date(w).toISOString())).toEqual([
      '2026-11-21T10:00:00.000Z',
      '2026-11-21T11:00:00.000Z',
      '2026-11-21T12:00:00.000Z',
    ]);
    // The run at 13:05 scores [12:00, 13:00).
    expect(range.scheduledTimes.map((s) => new Date(s).toISOString())).toEqual([
      '2026-11-21T11:05:00.000Z',
      '2026-11-21T12:05:00.000Z',
      '2026-11-21T13:05:00.000Z',
    ]);
    expect(range.start.toISOString()).toBe('2026-11-21T10:35:00.000Z');
    expect(range.end.toISOString()).toBe('2026-11-21T13:35:00.000Z');
  });

  it('rejects an empty range and ranges that are not whole windows', () => {
    const two = { windowHours: 2, offsetMs: 0 };
    expect(() => backfillRange(two, t('2026-11-21T12:00Z'), t('2026-11-21T12:00Z'))).toThrow('must be after --from');
    expect(() => backfillRange(two, t('2026-11-21T11:00Z'), t('2026-11-21T13:00Z'))).toThrow(
      '--from 2026-11-21T11:00Z is not the start of a 2h window; the nearest earlier one starts at 2026-11-21T10:00Z',
    );
    expect(() => backfillRange(two, t('2026-11-21T10:00Z'), t('2026-11-21T13:00Z'))).toThrow(
      'is not a whole number of 2h windows',
    );
  });
});
